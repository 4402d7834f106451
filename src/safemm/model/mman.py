"""User-space ABI constants: page size, address-space limits, PROT_*, MAP_*, MREMAP_*, MADV_*,
MLOCK_*.

Values are those of x86-64 Linux (include/uapi/asm-generic/mman-common.h,
include/uapi/linux/mman.h, arch/x86/include/asm/page_64_types.h).
"""

from __future__ import annotations

__all__ = [
    "HPAGE_SIZE",
    "MADV_DODUMP",
    "MADV_DOFORK",
    "MADV_DONTDUMP",
    "MADV_DONTFORK",
    "MADV_DONTNEED",
    "MADV_KEEPONFORK",
    "MADV_NORMAL",
    "MADV_RANDOM",
    "MADV_SEQUENTIAL",
    "MADV_WILLNEED",
    "MADV_WIPEONFORK",
    "MAP_ANONYMOUS",
    "MAP_FIXED",
    "MAP_FIXED_NOREPLACE",
    "MAP_HUGETLB",
    "MAP_LOCKED",
    "MAP_NONBLOCK",
    "MAP_NORESERVE",
    "MAP_POPULATE",
    "MAP_PRIVATE",
    "MAP_SHARED",
    "MAP_SHARED_VALIDATE",
    "MLOCK_ONFAULT",
    "MMAP_MIN_ADDR",
    "MREMAP_DONTUNMAP",
    "MREMAP_FIXED",
    "MREMAP_MAYMOVE",
    "PAGE_MASK",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "PROT_EXEC",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "TASK_SIZE",
]

#: log2 of the page size (4 KiB pages).
PAGE_SHIFT = 12
#: Size of a page in bytes (4096 on x86-64).
PAGE_SIZE = 1 << PAGE_SHIFT
#: Clears the offset within a page: ``addr & PAGE_MASK`` is the page's start.
PAGE_MASK = ~(PAGE_SIZE - 1)
#: log2 of the huge page size (PMD level: 2 MiB) for hugetlb mappings.
HPAGE_SHIFT = 21
#: Huge page size (PMD level: 2 MiB) for hugetlb mappings.
HPAGE_SIZE = 1 << HPAGE_SHIFT
#: Top of the user address space with 4-level paging (TASK_SIZE_MAX on x86-64).
TASK_SIZE = (1 << 47) - PAGE_SIZE
#: Default ``vm.mmap_min_addr``.
MMAP_MIN_ADDR = 0x10000
#: Default ``vm.max_map_count`` (include/linux/mm.h DEFAULT_MAX_MAP_COUNT = USHRT_MAX - 5).
DEFAULT_MAX_MAP_COUNT = 65530

#: ``mmap``/``mprotect`` protection: no access.
PROT_NONE = 0x0
#: ``mmap``/``mprotect`` protection: the pages may be read.
PROT_READ = 0x1
#: ``mmap``/``mprotect`` protection: the pages may be written.
PROT_WRITE = 0x2
#: ``mmap``/``mprotect`` protection: the pages may be executed.
PROT_EXEC = 0x4
PROT_SEM = 0x8
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000

#: ``mmap``: share the mapping; stores reach the file or device and other mappers.
MAP_SHARED = 0x01
#: ``mmap``: a private copy-on-write mapping.
MAP_PRIVATE = 0x02
#: ``mmap``: MAP_SHARED that refuses flags it does not know (EOPNOTSUPP).
MAP_SHARED_VALIDATE = 0x03
MAP_DROPPABLE = 0x08
MAP_TYPE = 0x0F
#: ``mmap``: map exactly at ``addr``, replacing whatever is mapped there.
MAP_FIXED = 0x10
#: ``mmap``: memory backed by no file, zero-filled.
MAP_ANONYMOUS = 0x20
MAP_32BIT = 0x40
MAP_GROWSDOWN = 0x0100
MAP_DENYWRITE = 0x0800
MAP_EXECUTABLE = 0x1000
#: ``mmap``: lock the pages in memory, like ``mlock`` (VM_LOCKED).
MAP_LOCKED = 0x2000
#: ``mmap``: do not reserve swap (commit charge) for the mapping.
MAP_NORESERVE = 0x4000
#: ``mmap``: prefault the page tables.
MAP_POPULATE = 0x8000
#: ``mmap``: with MAP_POPULATE, no prefaulting (MAP_POPULATE then does nothing).
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
#: ``mmap``: back the mapping with huge pages (hugetlbfs).
MAP_HUGETLB = 0x40000
MAP_SYNC = 0x80000
#: ``mmap``: map exactly at ``addr``, or fail with EEXIST if anything is mapped there.
MAP_FIXED_NOREPLACE = 0x100000
MAP_UNINITIALIZED = 0x4000000
#: hugetlb page-size encoding field (MAP_HUGE_SHIFT = 26, 6 bits).
MAP_HUGE_SHIFT = 26
MAP_HUGE_MASK = 0x3F

#: Flags mmap accepts with MAP_SHARED_VALIDATE (include/linux/mman.h LEGACY_MAP_MASK).
LEGACY_MAP_MASK = (
    MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_UNINITIALIZED
    | MAP_GROWSDOWN
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB
    | MAP_32BIT
    | (MAP_HUGE_MASK << MAP_HUGE_SHIFT)
)

#: ``mremap``: the mapping may move to a new address if it cannot grow in place.
MREMAP_MAYMOVE = 1
#: ``mremap``: move to ``new_addr``, replacing what is there (needs MREMAP_MAYMOVE).
MREMAP_FIXED = 2
#: ``mremap``: move the pages but leave the old range mapped, empty.
MREMAP_DONTUNMAP = 4

#: ``madvise``: no special treatment (include/uapi/asm-generic/mman-common.h).
MADV_NORMAL = 0
#: ``madvise``: expect random access (no readahead).
MADV_RANDOM = 1
#: ``madvise``: expect sequential access (aggressive readahead).
MADV_SEQUENTIAL = 2
#: ``madvise``: the range will be needed soon (readahead).
MADV_WILLNEED = 3
#: ``madvise``: drop the range's pages; the next access faults them in anew.
MADV_DONTNEED = 4
MADV_FREE = 8
MADV_REMOVE = 9
#: ``madvise``: a child of ``fork`` does not get the range (VM_DONTCOPY).
MADV_DONTFORK = 10
#: ``madvise``: undo MADV_DONTFORK.
MADV_DOFORK = 11
MADV_MERGEABLE = 12
MADV_UNMERGEABLE = 13
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
#: ``madvise``: leave the range out of core dumps (VM_DONTDUMP).
MADV_DONTDUMP = 16
#: ``madvise``: undo MADV_DONTDUMP.
MADV_DODUMP = 17
#: ``madvise``: a child of ``fork`` sees the range zero-filled (VM_WIPEONFORK).
MADV_WIPEONFORK = 18
#: ``madvise``: undo MADV_WIPEONFORK.
MADV_KEEPONFORK = 19
MADV_COLD = 20
MADV_PAGEOUT = 21
MADV_POPULATE_READ = 22
MADV_POPULATE_WRITE = 23
MADV_DONTNEED_LOCKED = 24
MADV_COLLAPSE = 25
MADV_GUARD_INSTALL = 102
MADV_GUARD_REMOVE = 103
MADV_HWPOISON = 100
MADV_SOFT_OFFLINE = 101

#: ``mlock2`` flag: lock pages as they are faulted in (include/uapi/asm-generic/mman-common.h).
MLOCK_ONFAULT = 0x01


def page_aligned(x: int) -> bool:
    """Whether ``x`` is a multiple of PAGE_SIZE (``PAGE_ALIGNED``)."""
    return x & (PAGE_SIZE - 1) == 0


def page_align(x: int) -> int:
    """Round ``x`` up to a multiple of PAGE_SIZE (``PAGE_ALIGN``)."""
    return (x + PAGE_SIZE - 1) & PAGE_MASK

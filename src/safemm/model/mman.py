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

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
#: Huge page size (PMD level) for hugetlb mappings.
HPAGE_SHIFT = 21
HPAGE_SIZE = 1 << HPAGE_SHIFT
#: Top of the user address space with 4-level paging (TASK_SIZE_MAX on x86-64).
TASK_SIZE = (1 << 47) - PAGE_SIZE
#: Default ``vm.mmap_min_addr``.
MMAP_MIN_ADDR = 0x10000
#: Default ``vm.max_map_count`` (include/linux/mm.h DEFAULT_MAX_MAP_COUNT = USHRT_MAX - 5).
DEFAULT_MAX_MAP_COUNT = 65530

PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
PROT_SEM = 0x8
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_DROPPABLE = 0x08
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_32BIT = 0x40
MAP_GROWSDOWN = 0x0100
MAP_DENYWRITE = 0x0800
MAP_EXECUTABLE = 0x1000
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
MAP_HUGETLB = 0x40000
MAP_SYNC = 0x80000
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

MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MREMAP_DONTUNMAP = 4

#: ``madvise`` advice (include/uapi/asm-generic/mman-common.h).
MADV_NORMAL = 0
MADV_RANDOM = 1
MADV_SEQUENTIAL = 2
MADV_WILLNEED = 3
MADV_DONTNEED = 4
MADV_FREE = 8
MADV_REMOVE = 9
MADV_DONTFORK = 10
MADV_DOFORK = 11
MADV_MERGEABLE = 12
MADV_UNMERGEABLE = 13
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_DONTDUMP = 16
MADV_DODUMP = 17
MADV_WIPEONFORK = 18
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

#: ``mlock2`` flags (include/uapi/asm-generic/mman-common.h).
MLOCK_ONFAULT = 0x01


def page_aligned(x: int) -> bool:
    """Whether ``x`` is a multiple of PAGE_SIZE (``PAGE_ALIGNED``)."""
    return x & (PAGE_SIZE - 1) == 0


def page_align(x: int) -> int:
    """Round ``x`` up to a multiple of PAGE_SIZE (``PAGE_ALIGN``)."""
    return (x + PAGE_SIZE - 1) & PAGE_MASK

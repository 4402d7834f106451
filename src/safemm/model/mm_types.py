"""The core mm data structures: ``mm_struct``, ``vm_area_struct``, ``vm_operations_struct``.

Mirrors include/linux/mm_types.h and include/linux/mm.h. These are plain records; the rules
that change them live in the files named after the kernel's (memory.py, vma.py, mmap.py, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from typing_extensions import override

from .locking import VM_LOCK_CLASS, LockClass, RwSemaphore, VmLockMap
from .maple_tree import MapleTree
from .mman import MMAP_MIN_ADDR, PAGE_SHIFT, TASK_SIZE
from .pgtable import PageTables

if TYPE_CHECKING:
    from .fs import File
    from .kernel import Kernel
    from .page_alloc import Page
    from .sched import Task
    from .userfaultfd import UserfaultfdCtx

__all__ = ["AnonVma", "MmStruct", "VmFault", "VmOperationsStruct", "Vma"]

#: Fault flags (include/linux/mm_types.h enum fault_flag).
FAULT_FLAG_WRITE = 0x1
FAULT_FLAG_USER = 0x40
FAULT_FLAG_VMA_LOCK = 0x1000

#: Fault results (include/linux/mm_types.h enum vm_fault_reason).
VM_FAULT_OOM = 0x000001
VM_FAULT_SIGBUS = 0x000002
VM_FAULT_MAJOR = 0x000004
VM_FAULT_SIGSEGV = 0x000040
VM_FAULT_NOPAGE = 0x000100
VM_FAULT_LOCKED = 0x000200
VM_FAULT_RETRY = 0x000400
VM_FAULT_DONE_COW = 0x001000
VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV

#: mmap_base with address-space randomisation off: TASK_SIZE minus the 128 MiB minimum gap
#: (arch/x86/mm/mmap.c mmap_base).
MMAP_BASE = TASK_SIZE - (128 << 20)


MMAP_LOCK_CLASS = LockClass("&mm->mmap_lock")


class AnonVma:
    """An ``anon_vma``: which anonymous pages a VMA (and its fork copies) may share.

    Only its identity matters to the model: it decides which VMAs may merge
    (``is_mergeable_anon_vma``) and which page tables fork copies (``vma_needs_copy``).
    """

    __slots__ = ("id", "root")

    def __init__(self, kernel: Kernel, root: AnonVma | None = None) -> None:
        self.id = kernel.new_id("anon_vma")
        self.root: AnonVma = self if root is None else root

    @override
    def __repr__(self) -> str:
        return f"<anon_vma {self.id}>"


@dataclass(frozen=True, eq=False)
class VmOperationsStruct:
    """A ``vm_operations_struct``: a driver's per-VMA hooks (None = not provided).

    Hooks signal failure by raising :class:`KernelError`; ``fault``, ``page_mkwrite`` and
    ``pfn_mkwrite`` return ``VM_FAULT_*`` bits instead, as in C. ``map_pages`` says whether the
    VMA can be faulted under the per-VMA lock (``vmf_can_call_fault``). ``owner`` identifies
    the driver that provided the table (strict-mode ownership checks).
    """

    name: str
    open: Callable[[Vma], None] | None = None
    close: Callable[[Vma], None] | None = None
    may_split: Callable[[Vma, int], None] | None = None
    mremap: Callable[[Vma], None] | None = None
    mprotect: Callable[[Vma, int, int, int], None] | None = None
    fault: Callable[[VmFault], int] | None = None
    page_mkwrite: Callable[[VmFault], int] | None = None
    pfn_mkwrite: Callable[[VmFault], int] | None = None
    map_pages: bool = False
    owner: object = None


class Vma:
    """A ``vm_area_struct``: one mapping ``[vm_start, vm_end)`` of an mm.

    Invariant (while attached): ``vm_start < vm_end``, both page aligned; the VMA is in
    ``vm_mm.mm_mt`` under exactly that range, and, when ``vm_file`` is set, in
    ``vm_file.f_mapping.i_mmap`` under ``[vm_pgoff, vm_pgoff + pages - 1]``. ``vm_lock_seq ==
    vm_mm.mm_lock_seq`` means write-locked (only while the mmap lock is write-held);
    ``readers`` holds the tasks holding its per-VMA read lock. ``detached`` is set once the VMA
    has been removed from the tree; ``freed`` once it is gone for good.
    """

    __slots__ = (
        "anon_vma",
        "anon_vma_chain",
        "closed",
        "detached",
        "freed",
        "id",
        "in_setup",
        "readers",
        "vm_end",
        "vm_file",
        "vm_flags",
        "vm_lock",
        "vm_lock_seq",
        "vm_mm",
        "vm_ops",
        "vm_pgoff",
        "vm_private_data",
        "vm_start",
        "vm_userfaultfd_ctx",
    )

    def __init__(self, mm: MmStruct, start: int, end: int, pgoff: int, flags: int) -> None:
        self.id = mm.kernel.new_id("vma")
        self.vm_mm = mm
        self.vm_start = start
        self.vm_end = end
        self.vm_pgoff = pgoff
        self.vm_flags = flags
        self.vm_ops: VmOperationsStruct | None = None
        self.vm_file: File | None = None
        self.vm_private_data: object = None
        self.anon_vma: AnonVma | None = None
        #: Length of the anon_vma chain (1 = ``list_is_singular``; fork adds one).
        self.anon_vma_chain = 0
        self.vm_userfaultfd_ctx: UserfaultfdCtx | None = None
        self.vm_lock_seq = -1
        self.vm_lock = VmLockMap(f"vma#{self.id}->vm_lock", VM_LOCK_CLASS)
        self.readers: list[Task] = []
        self.detached = True
        self.freed = False
        #: ->close has run (vms->closed_vm_ops); it must not run twice.
        self.closed = False
        #: The VMA is inside its file's ``->mmap`` (not yet linked; the mmap write lock is
        #: held), so it may be written without a VMA lock (``vm_flags_init`` rules).
        self.in_setup = False

    @property
    def pages(self) -> int:
        """``vma_pages``."""
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    def is_anonymous(self) -> bool:
        """``vma_is_anonymous``: no vm_ops."""
        return self.vm_ops is None

    def linear_page_index(self, addr: int) -> int:
        """``linear_page_index``: file page offset of ``addr``."""
        return self.vm_pgoff + ((addr - self.vm_start) >> PAGE_SHIFT)

    @override
    def __repr__(self) -> str:
        return f"<vma#{self.id} {self.vm_start:#x}-{self.vm_end:#x} flags={self.vm_flags:#x}>"


class VmFault:
    """A ``struct vm_fault``: what a ``->fault`` handler is told and answers.

    The handler either sets ``page`` to a page it holds a new reference on (the fault path
    maps it and the PTE takes over that reference) and returns 0, or installs PTEs itself and
    returns ``VM_FAULT_NOPAGE``, or fails with ``VM_FAULT_SIGBUS`` / ``VM_FAULT_OOM``.
    """

    __slots__ = ("address", "cow_page", "flags", "page", "pgoff", "real_address", "vma")

    def __init__(self, vma: Vma, address: int, flags: int) -> None:
        self.vma = vma
        self.real_address = address
        self.address = address & ~((1 << PAGE_SHIFT) - 1)
        self.pgoff = vma.linear_page_index(self.address)
        self.flags = flags
        self.page: Page | None = None
        self.cow_page: Page | None = None

    @property
    def write(self) -> bool:
        """Whether this is a write fault."""
        return bool(self.flags & FAULT_FLAG_WRITE)


class MmStruct:
    """An ``mm_struct``: an address space.

    Invariant: ``mm_users >= 0``, ``mm_count >= 1`` while the struct is alive (all users
    together hold one ``mm_count``); once ``mm_users`` reached 0 the address space was torn
    down (``exited``) and never comes back; ``mm_mt`` holds the attached VMAs, disjoint.
    ``mm_lock_seq`` is the kernel's ``mm_lock_seq`` seqcount: odd while the mmap lock is
    write-held (``mm_lock_seqcount_begin`` in ``mmap_write_lock``), even after
    ``vma_end_write_all``.
    """

    __slots__ = (
        "exited",
        "freed",
        "id",
        "kernel",
        "mm_count",
        "mm_lock_seq",
        "mm_mt",
        "mm_users",
        "mmap_base",
        "mmap_lock",
        "owner_pid",
        "pgtables",
        "rss_anon",
        "rss_file",
        "rss_shmem",
    )

    def __init__(self, kernel: Kernel, owner_pid: int) -> None:
        self.kernel = kernel
        self.id = kernel.new_id("mm")
        self.owner_pid = owner_pid
        self.mm_users = 1
        self.mm_count = 1
        self.mmap_lock = RwSemaphore(f"mm{self.id}->mmap_lock", MMAP_LOCK_CLASS)
        self.mm_lock_seq = 0
        self.mm_mt: MapleTree[Vma] = MapleTree(0, TASK_SIZE)
        self.pgtables = PageTables()
        self.mmap_base = MMAP_BASE
        self.rss_anon = 0
        self.rss_file = 0
        self.rss_shmem = 0
        self.exited = False
        self.freed = False
        kernel.mms[self.id] = self

    @property
    def map_count(self) -> int:
        """Number of VMAs (``mm->map_count``)."""
        return len(self.mm_mt)

    @property
    def mmap_min_addr(self) -> int:
        """``vm.mmap_min_addr``."""
        return MMAP_MIN_ADDR

    def vmas(self) -> list[Vma]:
        """The VMAs, ascending."""
        return [v for _, _, v in self.mm_mt]

    @override
    def __repr__(self) -> str:
        return f"<mm {self.id} users={self.mm_users} count={self.mm_count}>"

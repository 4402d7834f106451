"""Broken drivers: each plausible, each passing ``mypy --strict`` and its happy-path test
(tests/fuzz/test_broken.py), each with one bug the fuzzer must find.

- :class:`SplitCloseDriver` frees the mapping's pages in ``->close``, which runs once per
  piece: after a partial munmap the other half still maps them, and its own ``->close``
  frees them again.
- :class:`StartKeyedDriver` keeps its per-mapping state in a dict keyed by the VMA's start
  address; mremap moves the VMA and ``->close`` no longer finds it.
- :class:`RefuseLeakDriver` allocates its page before checking the offset, and refuses the
  mmap without freeing it.
- :class:`MmUsersDriver` pins the opener's address space with an ``mm_users`` reference
  (``mmget``) that ``->release`` drops — but when the process exits with the file still
  mapped, the mapping keeps the file open and the file keeps the address space: neither is
  ever torn down.
- :class:`ForkFaultDriver` serves faults from one page it frees in ``->close`` of the
  mapping; a fork child's copy of the mapping outlives it and faults on the freed page.
- :class:`AnyVmaInsertDriver` has an ioctl that inserts a page into whatever VM_MIXEDMAP VMA
  is at a user-supplied address, without checking that the VMA is its own.
- :class:`RacyAllocDriver` is correct one call at a time; two threads racing its ioctl leak
  a page (found only with ``concurrency=True``).
"""

from __future__ import annotations

import errno

from typing_extensions import override

from safemm import PAGE_SIZE, KernelError
from safemm.fs import File, FileOperations, VmFault, VmFaultReason, VmOperations
from safemm.mm import OwnedMmWithUser
from safemm.page import Page, PageLock
from safemm.sync import Mutex
from safemm.task import current
from safemm.virt import VmAreaNew, VmAreaOwnedRef

__all__ = [
    "ALLOC",
    "INSERT_AT",
    "AnyVmaInsertDriver",
    "ForkFaultDriver",
    "MmUsersDriver",
    "RacyAllocDriver",
    "RefuseLeakDriver",
    "SplitCloseDriver",
    "StartKeyedDriver",
]

#: AnyVmaInsertDriver's ioctl: insert a page at the address given.
INSERT_AT = 0x4008_6601


class Pages:
    """The pages behind one mapping. Invariant: owned until freed in ``->close``."""

    def __init__(self, n: int) -> None:
        self.pages = [Page.alloc_page() for _ in range(n)]


# ------------------------------------------------------------------------------------------


class SplitCloseVmOps(VmOperations[Pages]):
    @override
    def close(self, vma: VmAreaOwnedRef[Pages]) -> None:
        # BUG: ->close runs for every piece of a split mapping; the first one frees pages
        # the other pieces still use.
        for page in vma.private_data.pages:
            page.free()


class SplitCloseDriver(FileOperations[None]):
    """Maps up to 8 pages of driver memory; frees them when the mapping closes."""

    def __init__(self) -> None:
        super().__init__(type(None), "splitclose")
        self.vm_ops = SplitCloseVmOps(Pages, "splitclose_vm_ops")

    @override
    def mmap(self, file: File[None], vma: VmAreaNew) -> None:
        n = (vma.end - vma.start) // PAGE_SIZE
        if n > 8 or vma.writable or vma.executable:
            raise KernelError(errno.EINVAL, "at most 8 pages, read-only")
        vma.try_clear_maywrite()
        vma.try_clear_mayexec()
        mixed = vma.set_mixedmap()
        state = Pages(n)
        vma.set_vm_ops(self.vm_ops, state)
        for i, page in enumerate(state.pages):
            mixed.vm_insert_page(vma.start + i * PAGE_SIZE, page)


# ------------------------------------------------------------------------------------------


class StartKeyedVmOps(VmOperations[None]):
    def __init__(self, driver: StartKeyedDriver) -> None:
        super().__init__(type(None), "startkeyed_vm_ops")
        self.driver = driver

    @override
    def close(self, vma: VmAreaOwnedRef[None]) -> None:
        # BUG: the key is where the VMA started at mmap time; mremap moves it.
        state = self.driver.by_start.pop(vma.start)
        for page in state.pages:
            page.free()


class StartKeyedDriver(FileOperations[None]):
    """One page per mapping, found again by the mapping's start address."""

    def __init__(self) -> None:
        super().__init__(type(None), "startkeyed")
        self.by_start: dict[int, Pages] = {}
        self.vm_ops = StartKeyedVmOps(self)

    @override
    def mmap(self, file: File[None], vma: VmAreaNew) -> None:
        if vma.end - vma.start != PAGE_SIZE or vma.writable or vma.executable:
            raise KernelError(errno.EINVAL, "one read-only page only")
        vma.try_clear_maywrite()
        vma.try_clear_mayexec()
        mixed = vma.set_mixedmap()
        state = Pages(1)
        vma.set_vm_ops(self.vm_ops, None)
        mixed.vm_insert_page(vma.start, state.pages[0])
        self.by_start[vma.start] = state


# ------------------------------------------------------------------------------------------


class RefuseLeakDriver(FileOperations[None]):
    """One page of driver memory at file offset 0."""

    def __init__(self) -> None:
        super().__init__(type(None), "refuseleak")

    @override
    def mmap(self, file: File[None], vma: VmAreaNew) -> None:
        page = Page.alloc_page()
        page.write(0, b"refuseleak")
        if vma.pgoff != 0 or vma.end - vma.start != PAGE_SIZE or vma.writable or vma.executable:
            # BUG: the page is dropped without free().
            raise KernelError(errno.EINVAL, "only the first page, read-only")
        vma.try_clear_maywrite()
        vma.try_clear_mayexec()
        mixed = vma.set_mixedmap()
        mixed.vm_insert_page(vma.start, page)
        page.free()  # the mapping holds its own reference


# ------------------------------------------------------------------------------------------


class MmUsersState:
    """Per-open state. Invariant: ``user`` is an mm_users reference until ``->release``."""

    def __init__(self, user: OwnedMmWithUser) -> None:
        self.user = user


class MmUsersDriver(FileOperations[MmUsersState]):
    """Keeps the opener's address space usable (for later zaps) while the file is open."""

    def __init__(self) -> None:
        super().__init__(MmUsersState, "mmusers")

    @override
    def open(self, file: File[MmUsersState]) -> None:
        mm = current().mm()
        if mm is None:
            raise KernelError(errno.ESRCH, "no mm")
        # BUG: an mm_users reference (mmget) where an mm_count one (mmgrab) was needed.
        user = mm.mmget_not_zero()
        if user is None:
            raise KernelError(errno.ESRCH, "the address space is going away")
        file.private_data = MmUsersState(user)

    @override
    def mmap(self, file: File[MmUsersState], vma: VmAreaNew) -> None:
        vma.set_dontcopy()

    @override
    def release(self, file: File[MmUsersState]) -> None:
        state = file.private_data
        assert state is not None
        state.user.mmput()


# ------------------------------------------------------------------------------------------


class ForkFaultState:
    """Per-mapping state. Invariant: ``page`` is owned until ``->close`` frees it."""

    def __init__(self) -> None:
        self.page = Page.alloc_page()
        self.page.write(0, b"forkfault")


class ForkFaultVmOps(VmOperations[ForkFaultState]):
    @override
    def fault(self, vmf: VmFault[ForkFaultState]) -> PageLock | VmFaultReason:
        if vmf.pgoff != 0:
            return VmFaultReason.SIGBUS
        lock = vmf.vma.private_data.page.trylock()
        return VmFaultReason.NOPAGE if lock is None else lock

    @override
    def close(self, vma: VmAreaOwnedRef[ForkFaultState]) -> None:
        # BUG: with no ->open, the driver does not know a fork made a copy of the mapping;
        # the copy's faults find the page freed.
        vma.private_data.page.free()


class ForkFaultDriver(FileOperations[None]):
    """One page, faulted in on first touch, freed with the mapping."""

    def __init__(self) -> None:
        super().__init__(type(None), "forkfault")
        self.vm_ops = ForkFaultVmOps(ForkFaultState, "forkfault_vm_ops")

    @override
    def mmap(self, file: File[None], vma: VmAreaNew) -> None:
        if vma.end - vma.start != PAGE_SIZE:
            raise KernelError(errno.EINVAL, "one page only")
        vma.set_dontexpand()
        vma.set_vm_ops(self.vm_ops, ForkFaultState())


# ------------------------------------------------------------------------------------------


class AnyVmaInsertDriver(FileOperations[None]):
    """Maps nothing at mmap time; an ioctl inserts a page where the caller asks."""

    def __init__(self) -> None:
        super().__init__(type(None), "anyvma")

    @override
    def mmap(self, file: File[None], vma: VmAreaNew) -> None:
        if vma.writable or vma.executable:
            raise KernelError(errno.EPERM, "read-only")
        vma.try_clear_maywrite()
        vma.try_clear_mayexec()
        vma.set_mixedmap()

    @override
    def ioctl(self, file: File[None], cmd: int, arg: object) -> object:
        if cmd != INSERT_AT:
            raise KernelError(errno.ENOTTY, f"unknown ioctl {cmd:#x}")
        if not isinstance(arg, int) or arg % PAGE_SIZE:
            raise KernelError(errno.EINVAL, "a page-aligned address")
        mm = current().mm()
        if mm is None:
            raise KernelError(errno.ESRCH, "no mm")
        page = Page.alloc_page()
        try:
            with mm.mmap_read_lock() as guard:
                vma = guard.vma_lookup(arg)
                # BUG: any VM_MIXEDMAP VMA will do; it should be checked to be this
                # driver's own (vm_ops.check_vma).
                mixed = None if vma is None else vma.as_mixedmap_vma()
                if mixed is None:
                    raise KernelError(errno.EFAULT, "no mapping there")
                mixed.vm_insert_page(arg, page)
        finally:
            page.free()
        return 0


# ------------------------------------------------------------------------------------------

#: RacyAllocDriver's ioctl: make sure the open file has its buffer page.
ALLOC = 0x6602


class RacyState:
    """Per-open state. Invariant: ``page`` is owned until ``->release``; ``lock`` protects
    it."""

    def __init__(self) -> None:
        self.lock = Mutex("racy.lock")
        self.page: Page | None = None


class RacyAllocDriver(FileOperations[RacyState]):
    """One lazily allocated buffer page per open file. Correct one call at a time; two
    threads of one process calling ALLOC at once both see no page, both allocate, and the
    second store drops the first page (a check-then-act race around a sleeping
    allocation)."""

    def __init__(self) -> None:
        super().__init__(RacyState, "racy")

    @override
    def open(self, file: File[RacyState]) -> None:
        file.private_data = RacyState()

    @override
    def ioctl(self, file: File[RacyState], cmd: int, arg: object) -> object:
        state = file.private_data
        assert state is not None
        if cmd != ALLOC:
            raise KernelError(errno.ENOTTY, f"unknown ioctl {cmd:#x}")
        with state.lock.lock():
            have = state.page is not None
        if not have:
            page = Page.alloc_page()  # no lock held: GFP_KERNEL may reclaim
            with state.lock.lock():
                # BUG: no second check; a racing ALLOC's page is dropped.
                state.page = page
        return 0

    @override
    def release(self, file: File[RacyState]) -> None:
        state = file.private_data
        assert state is not None
        if state.page is not None:
            state.page.free()

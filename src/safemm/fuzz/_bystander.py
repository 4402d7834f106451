"""A well-behaved neighbour for the fuzzed driver: :class:`BystanderDriver`.

Real processes map more than one device. The fuzzer registers this driver at
``/dev/fuzz-other`` (the first time a program opens it), so that the driver under test meets
VMAs that are not its own: an ioctl that inserts into "whatever VMA is at this address", a
``MAP_FIXED`` over another driver's mapping, a zap of a foreign VMA. It is written only
against the safe layer and is correct under everything the fuzzer does.
"""

from __future__ import annotations

import errno

from typing_extensions import override

from safemm import KernelError
from safemm.fs import File, FileOperations, VmFault, VmFaultReason, VmOperations
from safemm.page import GFP_KERNEL, Gfp, Page, PageLock
from safemm.sync import Mutex
from safemm.virt import VmAreaNew

__all__ = ["BystanderDriver"]

#: Pages a bystander file can back; faults past them get SIGBUS.
BYSTANDER_PAGES = 64


class BystanderFile:
    """Per-open state. Invariant: ``pages`` (file page offset → page) is owned by this
    state and changes only under ``lock``; every page is freed in ``->release`` (a mapping
    holds references of its own, so the frames outlive the file as long as they are mapped).
    """

    def __init__(self) -> None:
        self.lock = Mutex("bystander.lock")
        self.pages: dict[int, Page] = {}


class BystanderVmOps(VmOperations[BystanderFile]):
    """Faults in one zeroed page per file offset."""

    @override
    def fault(self, vmf: VmFault[BystanderFile]) -> PageLock | VmFaultReason:
        state = vmf.vma.private_data
        if vmf.pgoff >= BYSTANDER_PAGES:
            return VmFaultReason.SIGBUS
        with state.lock.lock():
            page = state.pages.get(vmf.pgoff)
            if page is not None:
                return _locked(page)
        # Allocate with no lock held (GFP_KERNEL may reclaim), then publish.
        new = Page.alloc_page(GFP_KERNEL | Gfp.ZERO)
        with state.lock.lock():
            page = state.pages.get(vmf.pgoff)
            if page is None:
                state.pages[vmf.pgoff] = new
                return _locked(new)
            locked = _locked(page)
        new.free()
        return locked


def _locked(page: Page) -> PageLock | VmFaultReason:
    """The page locked for the kernel (``VM_FAULT_LOCKED``), taken under ``state.lock`` so
    the page is still the file's; if another fault holds its lock, retry the access."""
    lock = page.trylock()
    return VmFaultReason.NOPAGE if lock is None else lock


class BystanderDriver(FileOperations[BystanderFile]):
    """``/dev/fuzz-other``: read-only mappings (shared or private, as VM_MIXEDMAP, so that a
    careless driver may insert into them) of zeroed pages that fault in."""

    def __init__(self) -> None:
        super().__init__(BystanderFile, "bystander")
        self.vm_ops = BystanderVmOps(BystanderFile, "bystander_vm_ops")

    @override
    def open(self, file: File[BystanderFile]) -> None:
        file.private_data = BystanderFile()

    @override
    def mmap(self, file: File[BystanderFile], vma: VmAreaNew) -> None:
        state = file.private_data
        assert state is not None
        if vma.writable or vma.executable:
            raise KernelError(errno.EACCES, "bystander pages are read-only")
        # Read-only for ever: a VM_MIXEDMAP VMA must not gain VM_WRITE/VM_EXEC once pages are
        # in it (access-after-insert).
        vma.try_clear_maywrite()
        vma.try_clear_mayexec()
        vma.set_mixedmap()
        vma.set_vm_ops(self.vm_ops, state)

    @override
    def release(self, file: File[BystanderFile]) -> None:
        state = file.private_data
        assert state is not None
        with state.lock.lock():
            pages = list(state.pages.values())
            state.pages.clear()
        for page in pages:
            page.free()

"""The test driver and set-up shared by the safe-layer tests."""

from __future__ import annotations

from collections.abc import Callable

from typing_extensions import override

from safemm import MAP_SHARED, PAGE_SIZE, PROT_READ, Kernel, Process
from safemm.fs import File, FileOperations, VmFault, VmFaultReason, VmOperations
from safemm.mm import OwnedMm, OwnedMmWithUser
from safemm.page import Page, PageLock
from safemm.task import current
from safemm.virt import VmAreaNew, VmAreaOwnedRef


class Mapping:
    """Per-open state of the test driver: the opener's mm and the pages it mapped."""

    def __init__(self) -> None:
        self.mm: OwnedMm | None = None
        self.pages: list[Page] = []
        self.opens = 0
        self.closes = 0


class SampleVmOps(VmOperations[Mapping]):
    """vm_ops that count open/close and fault pages in from the mapping's page list."""

    @override
    def open(self, vma: VmAreaOwnedRef[Mapping]) -> None:
        vma.private_data.opens += 1

    @override
    def close(self, vma: VmAreaOwnedRef[Mapping]) -> None:
        vma.private_data.closes += 1

    @override
    def fault(self, vmf: VmFault[Mapping]) -> PageLock | VmFaultReason:
        pages = vmf.vma.private_data.pages
        if vmf.pgoff >= len(pages):
            return VmFaultReason.SIGBUS
        locked = pages[vmf.pgoff].trylock()
        return VmFaultReason.NOPAGE if locked is None else locked


class SampleDriver(FileOperations[Mapping]):
    """A device whose ->mmap inserts ``insert`` pages (0 = rely on faults) and whose ioctl runs
    a callback in driver context (so tests can exercise the safe layer from inside a hook)."""

    def __init__(self, insert: int = 1, npages: int = 4) -> None:
        super().__init__(Mapping, "testdrv")
        self.vm_ops = SampleVmOps(Mapping, "testdrv_vm_ops")
        self.insert = insert
        self.npages = npages
        self.action: Callable[[File[Mapping]], object] | None = None

    @override
    def open(self, file: File[Mapping]) -> None:
        state = Mapping()
        mm = current().mm()
        assert mm is not None
        state.mm = mm.mmgrab()
        file.private_data = state

    @override
    def release(self, file: File[Mapping]) -> None:
        state = file.private_data
        assert state is not None
        for page in state.pages:
            page.free()
        state.pages.clear()
        if state.mm is not None:
            state.mm.mmdrop()
            state.mm = None

    @override
    def mmap(self, file: File[Mapping], vma: VmAreaNew) -> None:
        state = file.private_data
        assert state is not None
        vma.try_clear_maywrite()
        mixed = vma.set_mixedmap()
        vma.set_vm_ops(self.vm_ops, state)
        for i in range(self.npages):
            page = Page.alloc_page()
            page.write(0, f"page {i}".encode())
            state.pages.append(page)
            if i < self.insert:
                mixed.vm_insert_page(vma.start + i * PAGE_SIZE, page)

    @override
    def ioctl(self, file: File[Mapping], cmd: int, arg: object) -> object:
        assert self.action is not None
        return self.action(file)


class Setup:
    """A kernel with the test driver registered, one process, the device open and mapped."""

    def __init__(self, kernel: Kernel, driver: SampleDriver) -> None:
        self.kernel = kernel
        self.driver = driver
        kernel.register_device("/dev/test", driver)
        self.proc: Process = kernel.spawn()
        self.fd = self.proc.open("/dev/test")
        self.addr = self.proc.mmap(None, 4 * PAGE_SIZE, PROT_READ, MAP_SHARED, self.fd)

    def run(self, action: Callable[[File[Mapping]], object]) -> object:
        """Run ``action`` inside the driver's ioctl (driver context, as the process)."""
        self.driver.action = action
        try:
            return self.proc.ioctl(self.fd, 0)
        finally:
            self.driver.action = None


def user_of(file: File[Mapping]) -> OwnedMmWithUser:
    """A new mm_users reference on the mm that opened ``file``; ``with user_of(file) as
    user:`` releases it."""
    state = file.private_data
    assert state is not None
    assert state.mm is not None
    user = state.mm.mmget_not_zero()
    assert user is not None
    return user

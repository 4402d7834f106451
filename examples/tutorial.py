"""A minimal driver: map one page of driver memory into a process, read-only.

This is the tutorial in the README, runnable (``python -m examples.tutorial``) and
type-checked with the rest of the project. It shows the life of a driver written against the
safe layer: ``->open`` keeps the opener's mm (an ``mm_count`` reference, like binder),
``->mmap`` gets a :class:`~safemm.virt.VmAreaNew`, refuses writable mappings, sets
VM_MIXEDMAP — which returns the only type that can insert pages — and inserts a page; an
ioctl later looks the VMA up again under the mmap read lock, proves it is still this driver's
(``check_vma``), and zaps the page; ``->release`` frees everything.
"""

from __future__ import annotations

import errno

from typing_extensions import override

from safemm import MAP_SHARED, PAGE_SIZE, PROT_READ, BusError, Kernel, KernelError
from safemm.fs import File, FileOperations, VmOperations
from safemm.mm import OwnedMm
from safemm.page import Page
from safemm.task import current
from safemm.virt import VmAreaNew

#: ioctl: zap the page from the caller's mapping.
HELLO_ZAP = 1


class Hello:
    """Per-open state. Invariant: ``mm`` holds an mm_count reference until release;
    ``page`` is owned by this state until release."""

    def __init__(self, mm: OwnedMm) -> None:
        self.mm = mm
        self.page: Page | None = None
        self.addr = 0


class HelloVmOps(VmOperations[Hello]):
    """The driver's vm_ops: they only tag the VMA as this driver's (no hooks needed)."""


class HelloDriver(FileOperations[Hello]):
    """``/dev/hello``: one read-only page per open file."""

    def __init__(self) -> None:
        super().__init__(Hello, "hello")
        self.vm_ops = HelloVmOps(Hello, "hello_vm_ops")

    @override
    def open(self, file: File[Hello]) -> None:
        mm = current().mm()
        if mm is None:
            raise KernelError(errno.ESRCH, "no mm")
        file.private_data = Hello(mm.mmgrab())

    @override
    def mmap(self, file: File[Hello], vma: VmAreaNew) -> None:
        state = file.private_data
        assert state is not None
        if state.page is not None:
            raise KernelError(errno.EBUSY, "already mapped")
        try:
            vma.try_clear_maywrite()  # refuse PROT_WRITE now and forever
            vma.try_clear_mayexec()  # and PROT_EXEC (access-after-insert; found by safemm fuzz)
        except KernelError:
            raise KernelError(errno.EPERM, "hello pages are read-only") from None
        mixed = vma.set_mixedmap()  # the capability to insert pages
        vma.set_vm_ops(self.vm_ops, state)  # tags the VMA as ours (check_vma)
        page = Page.alloc_page()
        page.write(0, b"hello, world")
        mixed.vm_insert_page(vma.start, page)
        state.page = page
        state.addr = vma.start

    @override
    def ioctl(self, file: File[Hello], cmd: int, arg: object) -> object:
        state = file.private_data
        assert state is not None
        if cmd != HELLO_ZAP:
            raise KernelError(errno.ENOTTY, f"unknown ioctl {cmd}")
        user = state.mm.mmget_not_zero()  # the address space may be gone
        if user is None:
            raise KernelError(errno.ESRCH, "the process has exited")
        with user, user.mmap_read_lock() as guard:  # mmput() when the block ends
            vma = guard.vma_lookup(state.addr)
            mine = None if vma is None else self.vm_ops.check_vma(vma, state)
            if mine is None:  # unmapped, or another VMA now sits there
                raise KernelError(errno.ENXIO, "no hello mapping at that address")
            mine.zap_page_range_single(mine.start, PAGE_SIZE)
        return 0

    @override
    def release(self, file: File[Hello]) -> None:
        state = file.private_data
        assert state is not None
        if state.page is not None:
            state.page.free()
        state.mm.mmdrop()


def main() -> None:
    """Run the tutorial: map, read, zap, fault, tear down; print what happened."""
    kernel = Kernel()
    kernel.register_device("/dev/hello", HelloDriver())
    proc = kernel.spawn()
    fd = proc.open("/dev/hello")
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    print(proc.maps(), end="")
    print("read:", proc.read(addr, 12))
    proc.ioctl(fd, HELLO_ZAP)
    try:
        proc.read(addr, 12)
    except BusError as e:  # no ->fault handler: the kernel sends SIGBUS
        print("after zap:", e)
    proc.exit()
    kernel.check_invariants()
    print("dmesg:", kernel.dmesg or "clean")


if __name__ == "__main__":
    main()

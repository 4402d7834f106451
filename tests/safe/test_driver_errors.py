"""The mistakes a driver author makes in the first hour get a message that names the fix:
a subclass that forgot ``super().__init__``, a hook with the wrong signature, a device path
registered twice, one driver instance at two paths or in two kernels, private data of the
wrong type, a ``->fault`` that returns nothing."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from typing_extensions import override

from safemm import MAP_SHARED, PAGE_SIZE, PROT_READ, Kernel, KernelError
from safemm.fs import File, FileOperations, VmFault, VmFaultReason, VmOperations
from safemm.page import Page, PageLock
from safemm.testing import driver_context
from safemm.virt import VmAreaNew, VmAreaOwnedRef


class State:
    """Per-open state."""


class Ops(VmOperations[State]):
    """vm_ops that only tag the VMA."""


class Driver(FileOperations[State]):
    """A correct driver: ``->open`` sets the state, ``->mmap`` tags the VMA."""

    def __init__(self, vm_ops: VmOperations[State] | None = None) -> None:
        super().__init__(State, "drv")
        self.vm_ops = Ops(State, "drv_vm_ops") if vm_ops is None else vm_ops

    @override
    def open(self, file: File[State]) -> None:
        file.private_data = State()

    @override
    def mmap(self, file: File[State], vma: VmAreaNew) -> None:
        state = file.private_data
        assert state is not None
        vma.set_vm_ops(self.vm_ops, state)


def _map(kernel: Kernel, path: str = "/dev/drv") -> int:
    proc = kernel.spawn()
    return proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, proc.open(path))


def test_forgotten_super_init_of_file_operations() -> None:
    """Without ``super().__init__`` the driver has no name or state type: register_device
    says so and shows the line to add (not ``AttributeError: ... no attribute 'name'``)."""

    class Forgetful(FileOperations[State]):
        def __init__(self) -> None:
            self.count = 0

    with pytest.raises(
        TypeError, match=r"Forgetful.__init__ did not call super\(\).__init__"
    ) as e:
        Kernel().register_device("/dev/f", Forgetful())
    assert 'super().__init__(MyState, "forgetful")' in str(e.value)


def test_forgotten_super_init_of_vm_operations() -> None:
    """The same for VmOperations, at set_vm_ops in ->mmap and at check_vma."""

    class ForgetfulOps(VmOperations[State]):
        def __init__(self) -> None:
            pass

    kernel = Kernel()
    ops = ForgetfulOps()
    kernel.register_device("/dev/drv", Driver(ops))
    with pytest.raises(TypeError, match=r"ForgetfulOps.__init__ did not call super\(\)"):
        _map(kernel)


class WrongMmap(FileOperations[State]):
    def __init__(self) -> None:
        super().__init__(State, "wrong")

    @override
    def mmap(self, vma: VmAreaNew) -> None:  # type: ignore[override]
        pass


class WrongIoctl(FileOperations[State]):
    def __init__(self) -> None:
        super().__init__(State, "wrong")

    @override
    def ioctl(self, file: File[State], cmd: int) -> object:  # type: ignore[override]
        return 0


class AsyncOpen(FileOperations[State]):
    def __init__(self) -> None:
        super().__init__(State, "wrong")

    @override
    async def open(self, file: File[State]) -> None:  # type: ignore[override]
        pass


@pytest.mark.parametrize(
    ("driver", "message"),
    [
        (
            WrongMmap,
            r"WrongMmap.mmap\(self, vma\) has the wrong signature: .*mmap\(self, file, vma\)",
        ),
        (
            WrongIoctl,
            r"WrongIoctl.ioctl\(self, file, cmd\) has the wrong signature: "
            r".*ioctl\(self, file, cmd, arg\)",
        ),
        (AsyncOpen, r"AsyncOpen.open is async def: hooks run synchronously"),
    ],
)
def test_hook_with_the_wrong_signature(
    driver: Callable[[], FileOperations[State]], message: str
) -> None:
    """A hook the kernel could not call is refused at registration, with the signature the
    kernel calls it with, instead of a TypeError from deep inside the first syscall."""
    kernel = Kernel()
    with pytest.raises(TypeError, match=message):
        kernel.register_device("/dev/w", driver())
    assert kernel.devices == {}


def test_vm_hook_with_the_wrong_signature() -> None:
    """The same for a vm_operations hook, when ->mmap attaches the ops."""

    class WrongFault(VmOperations[State]):
        @override
        def fault(self, vma: VmAreaOwnedRef[State], vmf: VmFault[State]) -> Page:  # type: ignore[override]
            raise AssertionError("never called")

    kernel = Kernel()
    kernel.register_device("/dev/drv", Driver(WrongFault(State)))
    with pytest.raises(
        TypeError, match=r"WrongFault.fault.* has the wrong signature: .*fault\(self, vmf\)"
    ):
        _map(kernel)


def test_device_path_registered_twice() -> None:
    """A second device at a taken path is EEXIST, naming the path, the driver holding it and
    the fix: a free path to register at instead."""
    kernel = Kernel()
    kernel.register_device("/dev/drv", Driver())
    with pytest.raises(
        KernelError,
        match=r"/dev/drv already exists \(driver '.+'\); .*pick another path, e\.g\. "
        r"register_device\('/dev/drv1', \.\.\.\)",
    ) as e:
        kernel.register_device("/dev/drv", Driver())
    assert e.value.errno == errno.EEXIST
    kernel.register_device("/dev/drv1", Driver())


def test_one_instance_at_two_paths() -> None:
    """One driver instance holds one device's state: registering it again (at another path,
    or in another kernel) is refused, with the call that fixes it."""
    kernel = Kernel()
    driver = Driver()
    kernel.register_device("/dev/a", driver)
    with pytest.raises(
        RuntimeError,
        match=r"already registered at /dev/a: .*register_device\('/dev/b', Driver\(...\)\)",
    ):
        kernel.register_device("/dev/b", driver)
    assert set(kernel.devices) == {"/dev/a"}
    with pytest.raises(RuntimeError, match="already registered at /dev/a of another Kernel"):
        Kernel().register_device("/dev/a", driver)


def test_vm_ops_shared_between_kernels() -> None:
    """A VmOperations instance shared by the drivers of two kernels would run its hooks in
    the first: the second kernel's ->mmap is refused, saying to make one per driver."""
    ops = Ops(State, "shared")
    first, second = Kernel(), Kernel()
    first.register_device("/dev/drv", Driver(ops))
    second.register_device("/dev/drv", Driver(ops))
    assert _map(first)
    with pytest.raises(RuntimeError, match="already serves another Kernel"):
        _map(second)


def test_private_data_of_the_wrong_type() -> None:
    """set_vm_ops with private data that is not the ops' type would make check_vma and the
    hooks never find it: refused at once."""

    class Mistyped(Driver):
        @override
        def mmap(self, file: File[State], vma: VmAreaNew) -> None:
            vma.set_vm_ops(self.vm_ops, file)  # type: ignore[misc]

    kernel = Kernel()
    kernel.register_device("/dev/drv", Mistyped())
    with pytest.raises(TypeError, match=r"private data must be a State .* got File"):
        _map(kernel)


def test_fault_returning_nothing() -> None:
    """A ->fault that falls off its end is told what to return."""

    class Forgets(VmOperations[State]):
        @override
        def fault(self, vmf: VmFault[State]) -> PageLock | VmFaultReason:
            return None  # type: ignore[return-value]

    kernel = Kernel(panic_on_warn=False)
    kernel.register_device("/dev/drv", Driver(Forgets(State, "forgets")))
    proc = kernel.spawn()
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, proc.open("/dev/drv"))
    with pytest.raises(
        TypeError, match=r"returned NoneType: return the page .*locked .*VmFaultReason"
    ):
        proc.read(addr, 1)


def test_fault_returning_an_unlocked_page() -> None:
    """A ->fault that returns a bare Page (around the types) is refused with the fix: the
    page must come locked (page.trylock()), or reclaim can free it before it is mapped."""

    class Bare(VmOperations[State]):
        @override
        def fault(self, vmf: VmFault[State]) -> PageLock | VmFaultReason:
            page = Page.alloc_page()
            pages.append(page)
            return page  # type: ignore[return-value]

    pages: list[Page] = []
    kernel = Kernel(panic_on_warn=False)
    ops = Bare(State, "bare")
    kernel.register_device("/dev/drv", Driver(ops))
    proc = kernel.spawn()
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, proc.open("/dev/drv"))
    with pytest.raises(TypeError, match=r"returned an unlocked Page: return page.trylock\(\)"):
        proc.read(addr, 1)
    with driver_context(kernel):
        for page in pages:
            page.free()

"""H6 and H7: ``->open``/``->close`` accounting, and driver state keyed on the VMA's address,
through split, mremap and fork (mm/vma.c ``__split_vma`` and ``copy_vma`` call ``->open`` on
the new VMA, never ``->close``; mm/mremap.c ``move_vma`` calls ``->mremap`` on the copy;
kernel/fork.c ``dup_mmap`` calls ``->open`` on the child's copy, which shares
``vm_private_data``).

H6: a driver that assumes one VMA per mmap — it frees its per-mapping state in the first
``->close`` — leaves the other pieces mapping state that is gone. The next fault on one of
them hands out a freed page: a BUG in ``get_page`` (DEBUG_VM, ``page-refcount``) for a C
driver, a ``StaleReferenceError`` in the safe layer (a :class:`~safemm.page.Page` used after
``free()``). The correct driver counts pieces (``1 + opens - closes``) and frees in
``->release``, when no VMA can be left (each holds a file reference).

H7: aio's ``aio_ring_mremap`` pattern — ``->mremap`` stores the new address in the driver's
state — runs for a fork child's copy too (the aio NULL dereference after fork): the child's
mremap moves the *parent's* cached address, and the parent's next insert lands in whatever
VMA the parent has there: ``foreign-vma`` in strict mode, silent in Linux. ``check_vma`` (plus
the file-offset check) refuses it, and a hook that ignores other mms' copies fixes it.
"""

from __future__ import annotations

import errno

import pytest
from typing_extensions import override

from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    KernelBug,
    KernelError,
    Process,
    StaleReferenceError,
)
from safemm.demo.drivers import FaultAndUnmapDriver, InsertOnReceiveDriver
from safemm.demo.drivers.abi import (
    DEVICE_PATH,
    SAFEBINDER_GET_ID,
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
    parse_recv,
)
from safemm.demo.drivers.alloc import Area
from safemm.model.fs import File as RawFile
from safemm.model.fs import FileOperationsStruct
from safemm.model.mm_types import Vma, VmFault, VmOperationsStruct
from safemm.model.page_alloc import GFP_KERNEL
from safemm.model.page_alloc import Page as RawPage
from safemm.testing import SplatKind, expect_splat
from safemm.virt import VmAreaOwnedRef

from .support import (
    BASE,
    ELSEWHERE,
    NPAGES,
    Buf,
    BufVmOps,
    HazardDriver,
    P,
    Rig,
    contracts,
    doc_splat,
    insert_checked,
    insert_unchecked_write,
    splat,
)

# ---------------------------------------------------------------------------- H6


class OneVmaOps(BufVmOps):
    """Broken: "the mapping is gone" on the first ``->close`` — the pages are freed there."""

    @override
    def close(self, vma: VmAreaOwnedRef[Buf]) -> None:
        state = vma.private_data
        if not state.freed:
            for page in state.pages:
                page.free()
            state.freed = True


class OneVmaDriver(HazardDriver):
    """:class:`HazardDriver` with :class:`OneVmaOps`."""

    def __init__(self) -> None:
        super().__init__("onevma")
        self.vm_ops = OneVmaOps("onevma")


def test_h6_safe_layer_refuses_the_freed_page() -> None:
    """H6 (__split_vma: ->close runs for the unmapped piece only): after munmap of one page the
    broken driver has freed every page; the next fault on the surviving piece returns a freed
    Page and the safe layer raises StaleReferenceError instead of mapping it."""
    rig = Rig(driver=OneVmaDriver())
    rig.proc.munmap(BASE + P, P)
    assert rig.proc.read(BASE, 13) == b"onevma page 0"  # inserted earlier: its own reference
    with pytest.raises(StaleReferenceError, match=r"Page\.free\(\)"):
        rig.proc.read(BASE + 2 * P, 1)
    assert rig.kernel.dmesg == []
    rig.finish()


class RawOneVmaDriver:
    """The same bug in a C-style driver: ``->close`` frees the pages, ``->fault`` does
    ``get_page`` on whatever its array holds."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.pages: list[RawPage] = []
        self.freed = False
        self.vm_ops = VmOperationsStruct(
            "rawonevma_vm_ops", close=self._close, fault=self._fault, owner=self
        )
        kernel.register_device(
            "/dev/rawonevma", FileOperationsStruct("rawonevma", mmap=self._mmap, owner=self)
        )

    def _mmap(self, file: RawFile, vma: Vma) -> None:
        for _ in range(NPAGES):
            self.pages.append(self.kernel.pages.alloc_page(int(GFP_KERNEL)))
        vma.vm_ops = self.vm_ops

    def _close(self, vma: Vma) -> None:
        if not self.freed:
            for page in self.pages:
                self.kernel.pages.put_page(page)
            self.freed = True

    def _fault(self, vmf: VmFault) -> int:
        page = self.pages[vmf.pgoff]
        self.kernel.pages.get_page(page)  # VM_BUG_ON_PAGE(page_ref_zero_or_close_to_overflow)
        vmf.page = page
        return 0


@doc_splat("h6")
def demo_h6() -> str:
    """The C driver's fault on a page its ->close freed."""
    k = Kernel(strict=False)
    RawOneVmaDriver(k)
    proc = k.spawn("victim")
    fd = proc.open("/dev/rawonevma")
    proc.mmap(BASE, NPAGES * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    proc.munmap(BASE + P, P)
    try:
        proc.read(BASE + 2 * P, 1)
    except KernelBug:
        pass
    return splat(k, "page-refcount").render()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h6_c_driver_faults_a_freed_page(strict: bool) -> None:
    """H6, C driver: the fault on the surviving piece takes a reference on a freed page —
    get_page's DEBUG_VM BUG (page-refcount), in both modes."""
    k = Kernel(strict=strict)
    RawOneVmaDriver(k)
    proc = k.spawn("victim")
    fd = proc.open("/dev/rawonevma")
    proc.mmap(BASE, NPAGES * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    proc.munmap(BASE + P, P)
    with expect_splat("page-refcount", SplatKind.BUG) as bug:
        proc.read(BASE + 2 * P, 1)
    assert "get_page on a free page" in str(bug.error)


def _vmas_of(procs: list[Process], fd_file: RawFile) -> int:
    """How many VMAs of the live ``procs`` map ``fd_file``."""
    return sum(1 for p in procs if p.alive for v in p.mm.vmas() if v.vm_file is fd_file)


def test_h6_correct_driver_counts_every_piece() -> None:
    """H6, correct driver: counting ->open and ->close, ``1 + opens - closes`` equals the
    VMAs that map the file after every split, mremap, fork, munmap and exit; the pages are
    freed only in ->release."""
    rig = Rig(driver=HazardDriver(insert=0))
    f = rig.proc.fds[rig.fd]
    state = f.private_data
    assert isinstance(state, Buf)
    procs = [rig.proc]

    def check() -> None:
        assert 1 + state.opens - state.closes == _vmas_of(procs, f)

    rig.proc.munmap(BASE + P, P)  # split: ->close on the middle piece only
    check()
    rig.proc.mremap(BASE + 2 * P, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, ELSEWHERE)
    check()
    child = rig.proc.fork()  # ->open on every copy
    procs.append(child)
    check()
    assert child.read(ELSEWHERE, 13) == b"hazard page 2"
    child.exit()
    check()
    assert not state.freed and all(p.pfn for p in state.pages)
    rig.proc.munmap(BASE, NPAGES * P)
    rig.proc.munmap(ELSEWHERE, P)
    check()
    assert (state.opens, state.closes) == (7, 8)  # 2 splits + split, copy + 3 fork copies
    rig.finish()
    assert state.freed


def test_h6_demo_driver_vma_count_is_exact() -> None:
    """H6, demo driver: the fault-and-unmap driver's ``area.vma_count`` (->open +1, ->close
    -1) tracks the VMAs mapping its file through split, mremap, fork and exit."""
    k = Kernel()
    driver = FaultAndUnmapDriver()
    k.register_device(DEVICE_PATH, driver)
    proc = k.spawn("victim")
    fd = proc.open(DEVICE_PATH)
    proc.mmap(BASE, 8 * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    f = proc.fds[fd]
    area = f.private_data
    assert isinstance(area, Area)
    procs = [proc]
    proc.munmap(BASE + 2 * P, P)
    assert area.vma_count == _vmas_of(procs, f) == 2
    proc.mremap(BASE + 5 * P, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, ELSEWHERE)
    assert area.vma_count == _vmas_of(procs, f) == 4
    child = proc.fork()
    procs.append(child)
    assert area.vma_count == _vmas_of(procs, f) == 8
    child.exit()
    assert area.vma_count == _vmas_of(procs, f) == 4
    proc.exit()
    assert area.vma_count == 0
    assert k.dmesg == []
    k.check_invariants()


# ---------------------------------------------------------------------------- H7


def _fork_and_move(*, strict: bool = True, same_mm_only: bool = False) -> tuple[Rig, Process]:
    """The parent maps the device (no VM_DONTCOPY) and has an anonymous mapping at
    ELSEWHERE; the child moves its copy of the device mapping to ELSEWHERE."""
    driver = HazardDriver(insert=0, dontcopy=False)
    driver.vm_ops.follow_mremap = True
    driver.vm_ops.same_mm_only = same_mm_only
    rig = Rig(strict=strict, panic_on_warn=False, driver=driver)
    rig.proc.mmap(ELSEWHERE, NPAGES * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    child = rig.proc.fork()
    child.munmap(ELSEWHERE, NPAGES * P)
    child.mremap(BASE, NPAGES * P, NPAGES * P, MREMAP_MAYMOVE | MREMAP_FIXED, ELSEWHERE)
    return rig, child


@doc_splat("h7")
def demo_h7() -> str:
    """The parent's insert at the address a fork child's mremap recorded."""
    rig, _ = _fork_and_move()
    rig.run(lambda f: insert_unchecked_write(f, 1))
    return splat(rig.kernel, "foreign-vma").render()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h7_fork_child_mremap_moves_the_parents_cached_address(strict: bool) -> None:
    """H7 (->mremap runs on the fork child's copy, which shares vm_private_data): the aio-style
    hook records the child's new address in the shared state; the parent's next insert there
    lands in the parent's own anonymous VMA — foreign-vma in strict mode, silent in Linux,
    where the parent then reads the driver's page in its anonymous memory."""
    rig, child = _fork_and_move(strict=strict)

    def base(file: object) -> object:
        f = rig.proc.fds[rig.fd]
        assert isinstance(f.private_data, Buf)
        return f.private_data.base

    assert base(None) == ELSEWHERE
    rig.run(lambda f: insert_unchecked_write(f, 1))
    assert contracts(rig.kernel) == (["foreign-vma"] if strict else [])
    assert rig.proc.read(ELSEWHERE + P, 13) == b"hazard page 1"
    child.exit()
    rig.finish()


def test_h7_check_vma_refuses_and_the_fixed_hook_keeps_the_address() -> None:
    """H7, safe layer: check_vma refuses the parent's anonymous VMA (ESRCH, no report); the
    correct ->mremap ignores copies in other mms (``vma.mm.is_same_mm(owner)``), so the
    parent's insert goes to its own mapping and the child's copy faults its pages in."""
    rig, child = _fork_and_move()
    with pytest.raises(KernelError) as err:
        rig.run(lambda f: insert_checked(rig.driver, f, 1))
    assert err.value.errno == errno.ESRCH
    child.exit()
    rig.finish()
    good, gchild = _fork_and_move(same_mm_only=True)
    good.run(lambda f: insert_checked(good.driver, f, 1))
    assert good.proc.read(BASE + P, 13) == b"hazard page 1"
    assert gchild.read(ELSEWHERE + P, 13) == b"hazard page 1"
    assert good.kernel.dmesg == []
    gchild.exit()
    good.finish()


def test_h7_own_vma_at_the_wrong_offset() -> None:
    """H7 (state keyed on address, own VMA): mremap puts file page 3 where page 2 was; the
    VMA there is the driver's own (check_vma passes, the model sees no foreign VMA), but the
    offset check refuses to put page 2 at an address that maps page 3."""
    rig = Rig(driver=HazardDriver(insert=0))
    rig.proc.mremap(BASE + 3 * P, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, BASE + 2 * P)
    with pytest.raises(KernelError, match="no longer maps page 2") as err:
        rig.run(lambda f: insert_checked(rig.driver, f, 2))
    assert err.value.errno == errno.ESRCH
    assert rig.kernel.dmesg == []
    rig.finish()


def test_h7_demo_insert_on_receive_follows_mremap() -> None:
    """H7, demo driver: the insert-on-receive driver's ->mremap follows the mapping of file
    offset 0 (as aio does; VM_DONTCOPY keeps fork copies out of it), and every insert is
    ownership- and offset-checked: after the receiver moves its mapping and maps anonymous
    memory at the old address, RECV inserts at the new address, the anonymous memory is
    untouched, and the model has nothing to report."""
    k = Kernel()
    driver = InsertOnReceiveDriver()
    k.register_device(DEVICE_PATH, driver)
    receiver, sender = k.spawn("receiver"), k.spawn("sender")
    rfd, sfd = receiver.open(DEVICE_PATH), sender.open(DEVICE_PATH)
    receiver.mmap(BASE, NPAGES * P, PROT_READ, MAP_SHARED | MAP_FIXED, rfd)
    target = receiver.ioctl(rfd, SAFEBINDER_GET_ID)
    receiver.mremap(BASE, NPAGES * P, NPAGES * P, MREMAP_MAYMOVE | MREMAP_FIXED, ELSEWHERE)
    receiver.mmap(
        BASE, NPAGES * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    )
    receiver.write(BASE, b"mine")
    sender.ioctl(sfd, SAFEBINDER_SEND, (target, b"hello"))
    addr, length = parse_recv(receiver.ioctl(rfd, SAFEBINDER_RECV))
    assert addr == ELSEWHERE
    assert receiver.read(addr, length) == b"hello"
    assert receiver.read(BASE, 4) == b"mine"
    assert k.dmesg == []
    receiver.exit()
    sender.exit()
    k.check_invariants()

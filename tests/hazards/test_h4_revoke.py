"""H4: revoking user mappings with a per-VMA zap misses split, moved and fork-copied VMAs;
``unmap_mapping_range`` reaches them all (mm/memory.c ``zap_page_range_single`` versus
``unmap_mapping_range`` → ``unmap_mapping_range_tree`` over ``mapping->i_mmap``).

A driver that revokes its pages by looking up "its" VMA at the cached address and zapping
there reaches only the VMA that is still there, in the one mm it knows: a piece mremap moved,
and every fork copy (another mm), keep their PTEs. The kernel has nothing to check — it is a
design choice. What goes wrong next depends on the PTEs: refcounted pages stay readable (the
revoke silently failed, and the "freed" frames stay allocated); special PTEs (``vmf_insert_mixed``,
``remap_pfn_range``) keep pointing at memory the driver frees — strict mode's
``pfn-outlives-page`` (H11) names that. The safe layer's ``zap_page_range_single`` refuses a
range that no longer fits the (split) VMA (WARN ``zap-range``), and its answer is
``AddressSpace.unmap_mapping_range`` on the file's own address space.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from safemm import (
    MAP_FIXED,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    Kernel,
    KernelError,
    Process,
)
from safemm.demo.drivers import FaultAndUnmapDriver
from safemm.demo.drivers.abi import (
    DEVICE_PATH,
    SAFEBINDER_FREE,
    SAFEBINDER_GET_ID,
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
    parse_recv,
)
from safemm.fs import File
from safemm.model import memory as raw_mem
from safemm.model import mmap_lock as raw_lock
from safemm.model.fs import File as RawFile
from safemm.model.page_alloc import GFP_KERNEL
from safemm.testing import SplatKind, expect_splat

from .support import (
    BASE,
    ELSEWHERE,
    NPAGES,
    Buf,
    HazardDriver,
    P,
    RawMixedDriver,
    Rig,
    doc_splat,
    splat,
    state_of,
    user_of,
    zap_checked,
)

#: Where the parent's mapping puts each page after :func:`_reshape`.
PARENT_LAYOUT = {0: BASE, 1: BASE + P, 2: ELSEWHERE, 3: BASE + 3 * P}


def _reshape(proc: Process) -> Process:
    """Fault every page in, move page 2 away (a split and a move), fork; returns the child,
    whose mapping is a copy of the parent's."""
    for i in range(NPAGES):
        proc.read(BASE + i * P, 1)
    proc.mremap(BASE + 2 * P, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, ELSEWHERE)
    return proc.fork()


def _mapped(proc: Process) -> dict[int, int]:
    """Page index → pfn of every driver page still mapped in ``proc`` (by layout)."""
    out = {}
    for i, addr in PARENT_LAYOUT.items():
        pte = proc.mm.pgtables.lookup(addr // P)
        if pte is not None:
            out[i] = pte.pfn
    return out


def _revoke_per_vma(driver: HazardDriver) -> Callable[[File[Buf]], object]:
    """The per-VMA revoke, done right as far as it goes: each page is zapped in the VMA at
    its cached address if that VMA is this file's (check_vma); ESRCH pages are missed."""

    def action(file: File[Buf]) -> object:
        missed = []
        for i in range(NPAGES):
            try:
                zap_checked(driver, file, i)
            except KernelError as e:
                if e.errno != errno.ESRCH:
                    raise
                missed.append(i)
        return missed

    return action


def test_h4_per_vma_zap_misses_split_moved_and_forked_vmas() -> None:
    """H4 (zap_page_range_single per VMA): the ownership-checked per-VMA revoke zaps pages 0,
    1 and 3 in the opener's mm; the page mremap moved and all four in the fork child stay
    mapped (the child still reads the revoked data). unmap_mapping_range then reaches every
    one of them."""
    rig = Rig(driver=HazardDriver(insert=0, own_mapping=True))
    child = _reshape(rig.proc)
    assert rig.run(_revoke_per_vma(rig.driver)) == [2]  # nothing at base + 2 pages now
    assert set(_mapped(rig.proc)) == {2}
    assert set(_mapped(child)) == {0, 1, 2, 3}
    assert child.read(BASE, 13) == b"hazard page 0"

    def revoke(file: File[Buf]) -> object:
        file.mapping.unmap_mapping_range(0, 0)  # the whole file, in every mm
        return None

    rig.run(revoke)
    assert _mapped(rig.proc) == {}
    assert _mapped(child) == {}
    assert rig.kernel.dmesg == []
    child.exit()
    rig.finish()


@doc_splat("h4-zap-range")
def demo_h4_zap_range() -> str:
    """The safe layer's range check on a split VMA."""
    rig = Rig(panic_on_warn=False, driver=HazardDriver(insert=0))
    _reshape(rig.proc).exit()
    rig.run(_zap_original_range)
    return splat(rig.kernel, "zap-range").render()


def _zap_original_range(file: File[Buf]) -> object:
    """Zap the mapping's original range in the VMA at its cached base."""
    state = state_of(file)
    with user_of(file) as user, user.mmap_read_lock() as guard:
        vma = guard.vma_lookup(state.base)
        assert vma is not None
        vma.zap_page_range_single(state.base, NPAGES * P)
    return None


def test_h4_safe_layer_refuses_a_zap_beyond_the_split_vma() -> None:
    """H4, safe layer (rust/kernel/mm/virt.rs zap_page_range_single range check): the
    original range no longer fits the VMA at the cached base once it was split: WARN
    zap-range and nothing is zapped."""
    rig = Rig(driver=HazardDriver(insert=0))
    _reshape(rig.proc).exit()
    with expect_splat("zap-range", SplatKind.WARNING):
        rig.run(_zap_original_range)
    assert set(_mapped(rig.proc)) == {0, 1, 2, 3}
    rig.finish()


# ---------------------------------------------------------------------------- special PTEs


def _mixed_rig(strict: bool) -> tuple[Kernel, RawMixedDriver, Process, Process]:
    k = Kernel(strict=strict, panic_on_warn=False)
    drv = RawMixedDriver(k, "/dev/mixed")
    proc = k.spawn("victim")
    fd = proc.open("/dev/mixed")
    proc.mmap(BASE, NPAGES * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    child = _reshape(proc)
    drv.action = _raw_revoke_per_vma_and_free(drv)
    proc.ioctl(fd, 0)
    return k, drv, proc, child


def _raw_revoke_per_vma_and_free(drv: RawMixedDriver) -> Callable[[RawFile], object]:
    """The C driver's revoke: for each page, the VMA at the cached address, if it is ours,
    is zapped there; then the pages are freed."""

    def action(file: RawFile) -> object:
        k = file.kernel
        mm = k.current.mm
        assert mm is not None
        raw_lock.mmap_read_lock(mm)
        try:
            for i in range(NPAGES):
                vma = raw_lock.vma_lookup(mm, BASE + i * P)
                if vma is not None and vma.vm_ops is drv.vm_ops:
                    raw_mem.zap_page_range_single(vma, BASE + i * P, P)
        finally:
            raw_lock.mmap_read_unlock(mm)
        drv.free_pages()
        return None

    return action


@doc_splat("h4-special")
def demo_h4_special() -> str:
    """Freeing after the incomplete revoke, strict mode."""
    k, *_ = _mixed_rig(strict=True)
    return splat(k, "pfn-outlives-page").render()


def test_h4_special_ptes_left_behind_point_at_freed_memory() -> None:
    """H4 with special PTEs (vmf_insert_mixed takes no reference): after the per-VMA revoke
    the driver frees its pages while the moved piece and the child still map them — strict
    mode reports pfn-outlives-page for each; in Linux (strict off) nothing is said, and the
    child reads whatever the frame holds next."""
    k, _, proc, child = _mixed_rig(strict=True)
    assert [s.contract for s in k.splats] == ["pfn-outlives-page"] * NPAGES
    assert "special PTE(s) still map it" in k.dmesg[0]
    lk, _, lproc, lchild = _mixed_rig(strict=False)
    assert lk.dmesg == []
    reused = lk.pages.alloc_page(int(GFP_KERNEL))  # a freed frame goes to someone else
    reused.write(0, b"someone else's")
    where = {pfn: PARENT_LAYOUT[i] for i, pfn in _mapped(lchild).items()}
    assert lchild.read(where[reused.pfn], 14) == b"someone else's"
    for p in (child, proc, lchild, lproc):
        p.exit()


# ---------------------------------------------------------------------------- demo driver


def test_h4_demo_fault_and_unmap_driver_reclaims_every_copy() -> None:
    """H4, correct driver: the demo's fault-and-unmap driver (Jann Horn's proposal: one
    anonymous inode per open file, pages fault in, reclaim uses unmap_mapping_range_trylock)
    takes a freed buffer's pages back from the split piece, the moved piece and the fork
    child alike, with nothing for the model to report."""
    k = Kernel()
    driver = FaultAndUnmapDriver()
    k.register_device(DEVICE_PATH, driver)
    receiver, sender = k.spawn("receiver"), k.spawn("sender")
    rfd, sfd = receiver.open(DEVICE_PATH), sender.open(DEVICE_PATH)
    receiver.mmap(BASE, NPAGES * P, PROT_READ, MAP_SHARED | MAP_FIXED, rfd)
    target = receiver.ioctl(rfd, SAFEBINDER_GET_ID)
    sender.ioctl(sfd, SAFEBINDER_SEND, (target, b"x" * (NPAGES * P)))
    addr, length = parse_recv(receiver.ioctl(rfd, SAFEBINDER_RECV))
    assert (addr, length) == (BASE, NPAGES * P)
    child = _reshape(receiver)
    for a in PARENT_LAYOUT.values():
        assert child.read(a, 1) == b"x"  # the copy faults the pages in from the same slots
    assert set(_mapped(receiver)) == set(_mapped(child)) == {0, 1, 2, 3}
    receiver.ioctl(rfd, SAFEBINDER_FREE, addr)
    assert k.shrink() == NPAGES
    assert _mapped(receiver) == {}
    assert _mapped(child) == {}
    assert k.dmesg == []
    for p in (child, receiver, sender):
        p.exit()
    k.check_invariants()

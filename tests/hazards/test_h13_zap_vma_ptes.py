"""H13: ``zap_vma_ptes`` on a VM_MIXEDMAP VMA silently does nothing (mm/memory.c
``zap_vma_ptes``, 6.12: ``if (!range_in_vma(...) || !(vma->vm_flags & VM_PFNMAP)) return;``;
2026's ``zap_special_vma_range`` accepts VM_MIXEDMAP too).

A driver that "revokes" its VM_MIXEDMAP pages with ``zap_vma_ptes`` leaves every PTE in
place and is never told. The model's ``zap_vma_ptes`` mirrors 6.12 exactly (a no-op) and, in
strict mode, reports the no-op (``zap-vma-ptes``). The safe layer has no ``zap_vma_ptes``
(reject/r11_no_raw_pfn_api.py); its ``zap_page_range_single`` works on any VMA.
"""

from __future__ import annotations

import pytest

from safemm import MAP_FIXED, MAP_SHARED, PROT_READ
from safemm.fs import File
from safemm.model import memory as raw_mem
from safemm.model import mmap_lock as raw_lock
from safemm.model.fs import File as RawFile
from safemm.testing import SplatKind, expect_splat

from .support import (
    BASE,
    ELSEWHERE,
    NPAGES,
    Buf,
    P,
    RawPfnDriver,
    Rig,
    doc_splat,
    raw_mm,
    splat,
    state_of,
    user_of,
)


def _zap_vma_ptes(file: File[Buf]) -> object:
    """The driver's revoke of page 0 with zap_vma_ptes, under the mmap read lock."""
    mm = raw_mm(file)
    raw_lock.mmap_read_lock(mm)
    try:
        vma = raw_lock.vma_lookup(mm, BASE)
        assert vma is not None
        raw_mem.zap_vma_ptes(vma, BASE, P)
    finally:
        raw_lock.mmap_read_unlock(mm)
    return None


@doc_splat("h13")
def demo_h13() -> str:
    """zap_vma_ptes on the driver's VM_MIXEDMAP VMA, strict mode."""
    rig = Rig(panic_on_warn=False)
    rig.run(_zap_vma_ptes)
    return splat(rig.kernel, "zap-vma-ptes").render()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h13_zap_vma_ptes_on_mixedmap_is_a_silent_no_op(strict: bool) -> None:
    """H13 (zap_vma_ptes): on the driver's own VM_MIXEDMAP VMA nothing is zapped — silently
    in Linux, reported as zap-vma-ptes in strict mode; the user still reads the page."""
    rig = Rig(strict=strict)
    if strict:
        with expect_splat("zap-vma-ptes", SplatKind.STRICT) as exc:
            rig.run(_zap_vma_ptes)
        assert "it is VM_MIXEDMAP" in str(exc.error)
    else:
        rig.run(_zap_vma_ptes)
        assert rig.kernel.dmesg == []
    assert rig.pte_pfn(BASE) is not None
    assert rig.proc.read(BASE, 13) == b"hazard page 0"
    rig.finish()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h13_zap_vma_ptes_works_on_pfnmap(strict: bool) -> None:
    """H13, the case zap_vma_ptes is for: on a VM_PFNMAP VMA it zaps, in both modes, with no
    report."""
    rig = Rig(strict=strict)
    drv = RawPfnDriver(rig.kernel, "/dev/pfn", device_memory=True)
    fd = rig.proc.open("/dev/pfn")
    rig.proc.mmap(ELSEWHERE, NPAGES * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)

    def zap(file: RawFile) -> object:
        mm = rig.proc.mm
        raw_lock.mmap_read_lock(mm)
        try:
            vma = raw_lock.vma_lookup(mm, ELSEWHERE)
            assert vma is not None
            raw_mem.zap_vma_ptes(vma, ELSEWHERE, NPAGES * P)
        finally:
            raw_lock.mmap_read_unlock(mm)
        return None

    drv.action = zap
    assert rig.pte_pfn(ELSEWHERE) is not None
    rig.proc.ioctl(fd, 0)
    assert rig.pte_pfn(ELSEWHERE) is None
    assert rig.kernel.dmesg == []
    rig.finish()


def test_h13_safe_layer_zaps_mixedmap() -> None:
    """H13, safe layer: there is no zap_vma_ptes (AttributeError; reject/r11); the VMA's
    zap_page_range_single removes the VM_MIXEDMAP PTE."""
    rig = Rig()

    def action(file: File[Buf]) -> object:
        state = state_of(file)
        with user_of(file) as user, user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(state.base)
            assert vma is not None
            with pytest.raises(AttributeError):
                vma.zap_vma_ptes(state.base, P)  # type: ignore[attr-defined]
            mine = rig.driver.vm_ops.check_vma(vma, state)
            assert mine is not None
            mine.zap_page_range_single(state.base, P)
        return None

    rig.run(action)
    assert rig.pte_pfn(BASE) is None
    assert rig.kernel.dmesg == []
    rig.finish()

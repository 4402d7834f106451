"""H12: a VMA used after the mmap lock it was looked up under was dropped — including across
munmap's downgrade to the read lock (include/linux/mmap_lock.h ``vma_assert_locked``; mm/vma.c
``vms_gather_munmap_vmas`` detaches the VMAs, ``vms_complete_munmap_vmas`` downgrades to the
read lock before zapping and calling ``->close``).

A cached ``vm_area_struct *`` (C binder's ``alloc->vma``) may be detached, freed after an RCU
grace period, or replaced by the time it is used. During munmap's downgraded window anybody
can take the mmap *read* lock and still use the cached, already detached VMA — the race
Carlos Llamas fixed in binder by looking the VMA up again. Linux asserts only the per-VMA lock
and only under lockdep; strict mode reports ``vma-locked`` (no lock held) and
``vma-attached`` (the VMA was unmapped). The safe layer scopes every VMA handle to the guard it
came from: using it after the guard ended, or after its VMA was unmapped, raises
``StaleReferenceError``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    StaleReferenceError,
)
from safemm.fs import File
from safemm.model import fork as raw_fork
from safemm.model import memory as raw_mem
from safemm.model import mmap_lock as raw_lock
from safemm.model.mm_types import Vma
from safemm.model.shrinker import ShrinkControl, Shrinker
from safemm.testing import SplatKind, expect_splat
from safemm.virt import VmAreaRef

from .support import BASE, NPAGES, Buf, P, Rig, contracts, doc_splat, raw_mm, splat, user_of

RW = PROT_READ | PROT_WRITE


def test_h12_safe_layer_handles_end_with_their_guard() -> None:
    """H12, safe layer: a VmAreaRef kept past its guard, or a VmAreaMut past the write
    guard's downgrade, raises StaleReferenceError naming what ended it; nothing reaches the
    model."""
    rig = Rig()
    kept: list[VmAreaRef] = []

    def action(file: File[Buf]) -> object:
        with user_of(file) as user:
            with user.mmap_read_lock() as guard:
                vma = guard.vma_lookup(BASE)
                assert vma is not None
                kept.append(vma)
            with pytest.raises(StaleReferenceError, match=r"MmapReadGuard\.unlock\(\)"):
                kept[0].zap_page_range_single(BASE, P)
            wguard = user.mmap_write_lock()
            mut = wguard.vma_lookup(BASE)
            assert mut is not None
            rguard = wguard.downgrade()
            with pytest.raises(StaleReferenceError, match=r"downgrade\(\)"):
                mut.set_dontdump()
            rguard.unlock()
        return None

    rig.run(action)
    assert rig.kernel.dmesg == []
    rig.finish()


def _cache_vma(rig: Rig) -> Vma:
    """The driver caches the raw VMA it looked up (``alloc->vma``)."""
    cached: list[Vma] = []

    def action(file: File[Buf]) -> object:
        mm = raw_mm(file)
        raw_lock.mmap_read_lock(mm)
        try:
            vma = raw_lock.vma_lookup(mm, BASE)
            assert vma is not None
            cached.append(vma)
        finally:
            raw_lock.mmap_read_unlock(mm)
        return None

    rig.run(action)
    return cached[0]


def _zap_cached(vma: Vma, *, lock: bool) -> Callable[[File[Buf]], object]:
    """The driver zaps through its cached VMA, with or without taking the read lock."""

    def action(file: File[Buf]) -> object:
        mm = raw_mm(file)
        if lock:
            raw_lock.mmap_read_lock(mm)
        try:
            raw_mem.zap_page_range_single(vma, BASE, P)
        finally:
            if lock:
                raw_lock.mmap_read_unlock(mm)
        return None

    return action


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h12_cached_vma_used_without_the_lock(strict: bool) -> None:
    """H12 (vma_assert_locked): the cached VMA used later with no lock held: strict mode
    reports vma-locked; Linux zaps silently."""
    rig = Rig(strict=strict)
    vma = _cache_vma(rig)
    if strict:
        with expect_splat("vma-locked", SplatKind.STRICT):
            rig.run(_zap_cached(vma, lock=False))
    else:
        rig.run(_zap_cached(vma, lock=False))
        assert rig.kernel.dmesg == []
    rig.finish()


@doc_splat("h12")
def demo_h12() -> str:
    """The cached VMA after munmap, under a fresh read lock."""
    rig = Rig(panic_on_warn=False)
    vma = _cache_vma(rig)
    rig.proc.munmap(BASE, NPAGES * P)
    rig.proc.mmap(BASE, NPAGES * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    rig.run(_zap_cached(vma, lock=True))
    return splat(rig.kernel, "vma-attached").render()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h12_cached_vma_after_munmap_zaps_the_new_mapping(strict: bool) -> None:
    """H12 (vms_gather_munmap_vmas detached it): the cached VMA, used after munmap under a
    freshly taken read lock: strict mode reports vma-attached; in Linux the stale zap wipes
    the user's new anonymous page at that address — its data is silently gone."""
    rig = Rig(strict=strict, panic_on_warn=False)
    vma = _cache_vma(rig)
    rig.proc.munmap(BASE, NPAGES * P)
    rig.proc.mmap(BASE, NPAGES * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    rig.proc.write(BASE, b"user data")
    rig.run(_zap_cached(vma, lock=True))
    assert contracts(rig.kernel) == (["vma-attached"] if strict else [])
    assert rig.proc.read(BASE, 9) == bytes(9)  # refaulted: a fresh zero page
    rig.finish()


class CachedVmaShrinker:
    """A C-style shrinker that zaps through a cached VMA (``alloc->vma``) under
    ``mmap_read_trylock`` — or, fixed, looks the VMA up again under it (``vma_lookup``)."""

    def __init__(self, kernel: Kernel, owner: object, vma: Vma, *, lookup: bool) -> None:
        self.kernel = kernel
        self.vma = vma
        self.lookup = lookup
        self.trylock_ok: list[bool] = []
        self.raw = Shrinker("cached-vma", self.count, self.scan, owner=owner)
        kernel.register_shrinker(self.raw)

    def count(self, sc: ShrinkControl) -> int:
        return 1

    def scan(self, sc: ShrinkControl) -> int:
        mm = self.vma.vm_mm
        if not raw_fork.mmget_not_zero(mm):
            return 0
        try:
            ok = raw_lock.mmap_read_trylock(mm)
            self.trylock_ok.append(ok)
            if not ok:
                return 0
            try:
                vma = raw_lock.vma_lookup(mm, BASE) if self.lookup else self.vma
                if vma is not None:
                    raw_mem.zap_page_range_single(vma, BASE, P)
            finally:
                raw_lock.mmap_read_unlock(mm)
        finally:
            raw_fork.mmput_async(mm)
        return 1


def _munmap_with_kswapd(strict: bool, lookup: bool) -> tuple[Rig, CachedVmaShrinker]:
    """munmap the driver's mapping; when its ->close runs (munmap has detached the VMA and
    downgraded to the read lock), kswapd runs the driver's shrinker on another CPU."""
    rig = Rig(strict=strict, panic_on_warn=False)
    vma = _cache_vma(rig)
    shrinker = CachedVmaShrinker(rig.kernel, rig.driver, vma, lookup=lookup)
    rig.driver.vm_ops.on_close = rig.kernel.shrink
    rig.proc.munmap(BASE, NPAGES * P)
    rig.driver.vm_ops.on_close = None
    rig.kernel.unregister_shrinker(shrinker.raw)
    return rig, shrinker


@doc_splat("h12-downgrade")
def demo_h12_downgrade() -> str:
    """The shrinker in munmap's downgraded window."""
    rig, _ = _munmap_with_kswapd(strict=True, lookup=False)
    return splat(rig.kernel, "vma-attached").render()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h12_across_munmaps_downgrade(strict: bool) -> None:
    """H12 across munmap's downgrade (vms_complete_munmap_vmas): the munmapping task holds
    only the read lock while it zaps and closes, so the shrinker's mmap_read_trylock succeeds
    and it zaps the detached, cached VMA: strict mode reports vma-attached; Linux says
    nothing (binder's use-after-free)."""
    rig, shrinker = _munmap_with_kswapd(strict, lookup=False)
    assert shrinker.trylock_ok == [True]
    assert contracts(rig.kernel) == (["vma-attached"] if strict else [])
    rig.finish()


def test_h12_lookup_again_under_the_lock() -> None:
    """H12, correct driver: looking the VMA up again under the trylock finds nothing in the
    window (the VMA is already out of the tree) and touches nothing."""
    rig, shrinker = _munmap_with_kswapd(strict=True, lookup=True)
    assert shrinker.trylock_ok == [True]
    assert rig.kernel.dmesg == []
    rig.finish()

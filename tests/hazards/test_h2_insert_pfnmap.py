"""H2: a refcounted page inserted into a VM_PFNMAP VMA (mm/memory.c ``vm_insert_page``:
``BUG_ON(vma->vm_flags & VM_PFNMAP)``).

A VM_PFNMAP VMA holds raw pfns that the mm never refcounts (``vm_normal_page`` says "no
struct page"); a struct page inserted there would be freed behind the PTE's back. The kernel
catches it (only while VM_MIXEDMAP is unset) with a BUG, in both modes of the model. The safe
layer never offers the insert: ``as_mixedmap_vma()`` is None on a PFNMAP VMA and
``VmAreaMut.set_mixedmap()`` refuses it (EINVAL); the static rule is r1/r2.
"""

from __future__ import annotations

import errno

import pytest

from safemm import MAP_FIXED, MAP_SHARED, PROT_READ, KernelBug, KernelError
from safemm.fs import File
from safemm.model import memory as raw_mem
from safemm.model import mmap_lock as raw_lock
from safemm.model.fs import File as RawFile
from safemm.model.page_alloc import GFP_KERNEL
from safemm.testing import SplatKind, expect_splat
from safemm.virt import VmAreaMixedMapRef

from .support import (
    ELSEWHERE,
    NPAGES,
    Buf,
    P,
    RawPfnDriver,
    Rig,
    doc_splat,
    splat,
    state_of,
    user_of,
)


def _pfn_rig(strict: bool) -> tuple[Rig, RawPfnDriver]:
    rig = Rig(strict=strict)
    drv = RawPfnDriver(rig.kernel, "/dev/pfn", device_memory=True)
    fd = rig.proc.open("/dev/pfn")
    rig.proc.mmap(ELSEWHERE, NPAGES * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    drv.action = _own_insert
    return rig, drv


def _own_insert(file: RawFile) -> object:
    """The PFN driver's own ioctl inserts a struct page into its VM_PFNMAP VMA, under the mmap
    write lock (so H1's BUG_ON is not what stops it)."""
    k = file.kernel
    mm = k.current.mm
    assert mm is not None
    page = k.pages.alloc_page(int(GFP_KERNEL))
    raw_lock.mmap_write_lock(mm)
    try:
        vma = raw_lock.vma_lookup(mm, ELSEWHERE)
        assert vma is not None
        raw_mem.vm_insert_page(vma, ELSEWHERE, page)
    finally:
        raw_lock.mmap_write_unlock(mm)
        k.pages.put_page(page)
    return None


@doc_splat("h2")
def demo_h2() -> str:
    """The kernel's BUG (strict mode adds nothing: Linux catches this)."""
    rig, _ = _pfn_rig(strict=False)
    fd = rig.proc.open("/dev/pfn")
    try:
        rig.proc.ioctl(fd, 0)
    except KernelBug:
        pass
    return splat(rig.kernel, "insert-pfnmap").render()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h2_refcounted_page_into_pfnmap_is_a_bug(strict: bool) -> None:
    """H2 (vm_insert_page BUG_ON(VM_PFNMAP)): a driver inserting a struct page into its own
    VM_PFNMAP VMA under the write lock is a BUG in both modes; nothing is mapped."""
    rig, _ = _pfn_rig(strict)
    fd = rig.proc.open("/dev/pfn")
    with expect_splat("insert-pfnmap", SplatKind.BUG) as exc:
        rig.proc.ioctl(fd, 0)
    assert "BUG_ON(vma->vm_flags & VM_PFNMAP)" in str(exc.error)
    pte = rig.proc.mm.pgtables.lookup(ELSEWHERE // P)
    assert pte is not None
    assert pte.special  # still the device pfn remap_pfn_range put there
    rig.finish()


def test_h2_safe_layer_refuses() -> None:
    """H2, safe layer: on a VM_PFNMAP VMA as_mixedmap_vma() is None and set_mixedmap() is
    EINVAL, so no typed path reaches vm_insert_page; the unbound call around the types is the
    kernel's BUG."""
    rig, _ = _pfn_rig(strict=True)

    def action(file: File[Buf]) -> object:
        state = state_of(file)
        with user_of(file) as user:
            with user.mmap_read_lock() as guard:
                vma = guard.vma_lookup(ELSEWHERE)
                assert vma is not None
                assert vma.as_mixedmap_vma() is None
            with user.mmap_write_lock() as wguard:
                mut = wguard.vma_lookup(ELSEWHERE)
                assert mut is not None
                with pytest.raises(KernelError) as err:
                    mut.set_mixedmap()
                assert err.value.errno == errno.EINVAL
                with expect_splat("insert-pfnmap", SplatKind.BUG):
                    VmAreaMixedMapRef.vm_insert_page(mut, ELSEWHERE, state.pages[0])  # type: ignore[arg-type]
        return None

    rig.run(action)
    rig.finish()

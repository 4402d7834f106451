"""H8: userfaultfd and VM_MIXEDMAP (include/linux/userfaultfd_k.h ``vma_can_userfault``;
fs/userfaultfd.c ``userfaultfd_register``; review, Jann Horn: "a userfaultfd context
associated with a VMA which becomes VM_MIXEDMAP ... a weird state that probably shouldn't be
permitted").

Registering userfaultfd on a driver's VM_MIXEDMAP VMA is refused by the kernel (EINVAL: only
anonymous, shmem and hugetlb VMAs can userfault, except async write-protect-only
registration, which any VMA accepts). The other direction is not checked by Linux: a VMA that
already has a userfaultfd context becoming VM_MIXEDMAP — through ``vm_insert_page`` under the
write lock, or a flag write. Strict mode reports it (``mixedmap-uffd``, in ``vm_flags_set``);
the safe layer's ``VmAreaMut.set_mixedmap()`` refuses it (EINVAL).
"""

from __future__ import annotations

import errno

import pytest

from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    KernelError,
)
from safemm.fs import File
from safemm.model import vm_flags_update as raw_flags
from safemm.model.userfaultfd import vma_can_userfault
from safemm.model.vm_flags import VM_MIXEDMAP, VM_UFFD_MISSING, VM_UFFD_WP
from safemm.testing import SplatKind, expect_splat
from safemm.virt import VmAreaMixedMapRef

from .support import (
    BASE,
    ELSEWHERE,
    NPAGES,
    Buf,
    P,
    Rig,
    contracts,
    doc_splat,
    raw_mm,
    splat,
    state_of,
    user_of,
)


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h8_register_on_the_driver_vma_is_einval(strict: bool) -> None:
    """H8 (vma_can_userfault): UFFDIO_REGISTER on the driver's VM_MIXEDMAP VMA fails with
    EINVAL in both modes; the VMA gets no userfaultfd context."""
    rig = Rig(strict=strict)
    with pytest.raises(KernelError) as err:
        rig.proc.userfaultfd_register(BASE, NPAGES * P)
    assert err.value.errno == errno.EINVAL
    assert rig.vma_at(BASE).vm_userfaultfd_ctx is None
    rig.finish()


def test_h8_async_write_protect_is_the_exception() -> None:
    """H8 (vma_can_userfault): async WP-only registration is allowed on any VMA, a driver's
    VM_MIXEDMAP one included — the kernel's documented exception."""
    rig = Rig()
    vma = rig.vma_at(BASE)
    assert not vma_can_userfault(vma, VM_UFFD_MISSING)
    assert not vma_can_userfault(vma, VM_UFFD_WP)
    assert vma_can_userfault(vma, VM_UFFD_WP, wp_async=True)
    rig.finish()


def _uffd_rig(*, strict: bool = True, panic_on_warn: bool = True) -> Rig:
    """The process has an anonymous VMA at ELSEWHERE registered with userfaultfd."""
    rig = Rig(strict=strict, panic_on_warn=panic_on_warn)
    rw = PROT_READ | PROT_WRITE
    rig.proc.mmap(ELSEWHERE, NPAGES * P, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    rig.proc.userfaultfd_register(ELSEWHERE, NPAGES * P)
    assert rig.vma_at(ELSEWHERE).vm_userfaultfd_ctx is not None
    return rig


def _raw_set_mixedmap(file: File[Buf]) -> object:
    """Around the types: the raw vm_flags_set under the mmap write lock."""
    with user_of(file) as user, user.mmap_write_lock():
        vma = raw_mm(file).mm_mt.load(ELSEWHERE)
        assert vma is not None
        raw_flags.vm_flags_set(vma, VM_MIXEDMAP)
    return None


@doc_splat("h8")
def demo_h8() -> str:
    """The flag write, strict mode."""
    rig = _uffd_rig(panic_on_warn=False)
    rig.run(_raw_set_mixedmap)
    return splat(rig.kernel, "mixedmap-uffd").render()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h8_uffd_vma_becomes_mixedmap(strict: bool) -> None:
    """H8 (vm_flags_set): VM_MIXEDMAP set on a VMA with a userfaultfd context is reported in
    strict mode (mixedmap-uffd); Linux lets it happen silently."""
    rig = _uffd_rig(strict=strict)
    if strict:
        with expect_splat("mixedmap-uffd", SplatKind.STRICT):
            rig.run(_raw_set_mixedmap)
        assert not rig.vma_at(ELSEWHERE).vm_flags & VM_MIXEDMAP
    else:
        rig.run(_raw_set_mixedmap)
        vma = rig.vma_at(ELSEWHERE)
        assert vma.vm_flags & VM_MIXEDMAP and vma.vm_userfaultfd_ctx is not None
        assert rig.kernel.dmesg == []
    rig.finish()


def test_h8_insert_slow_path_sets_mixedmap_on_a_uffd_vma() -> None:
    """H8 through vm_insert_page: under the write lock it sets VM_MIXEDMAP itself; strict
    mode reports the foreign VMA and the userfaultfd context."""
    rig = _uffd_rig(panic_on_warn=False)

    def insert(file: File[Buf]) -> object:
        state = state_of(file)
        with user_of(file) as user, user.mmap_write_lock() as guard:
            mut = guard.vma_lookup(ELSEWHERE)
            assert mut is not None
            VmAreaMixedMapRef.vm_insert_page(mut, ELSEWHERE, state.pages[1])  # type: ignore[arg-type]
        return None

    rig.run(insert)
    assert contracts(rig.kernel) == ["foreign-vma", "mixedmap-uffd"]
    rig.finish()


def test_h8_safe_layer_set_mixedmap_refuses() -> None:
    """H8, safe layer: VmAreaMut.set_mixedmap() on a VMA with a userfaultfd context is EINVAL,
    and nothing is reported (the flag was never written)."""
    rig = _uffd_rig()

    def action(file: File[Buf]) -> object:
        with user_of(file) as user, user.mmap_write_lock() as guard:
            mut = guard.vma_lookup(ELSEWHERE)
            assert mut is not None
            with pytest.raises(KernelError, match="userfaultfd context") as err:
                mut.set_mixedmap()
            assert err.value.errno == errno.EINVAL
        return None

    rig.run(action)
    assert rig.kernel.dmesg == []
    rig.finish()

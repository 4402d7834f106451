"""H10: VMA flags written without the mmap write lock and the VMA write lock
(include/linux/mm.h ``vm_flags_set``/``vm_flags_clear``/``vm_flags_mod`` → ``vma_start_write``
→ ``mmap_assert_write_locked``; ``vm_flags_reset`` → ``vma_assert_write_locked``).

A flag write under only the mmap read lock (or a per-VMA read lock, or no lock) races with
every reader of the flags: the fault path, ``lock_vma_under_rcu``, other writers. The kernel's
lockdep (or, without it, a WARN on the rwsem count) catches it, so the model reports it in
both modes (``mmap-write-lock-held``, ``vma-write-locked``); under a VMA read lock
``vma_start_write`` then waits for the caller itself — a deadlock, reported. The safe layer
has flag setters only on :class:`~safemm.virt.VmAreaMut` (from ``MmapWriteGuard``) and
:class:`~safemm.virt.VmAreaNew` (reject/r03_flag_setters.py, r07_wrong_state.py), and
``flags`` is read-only (r4).
"""

from __future__ import annotations

import pytest

from safemm.fs import File
from safemm.model import mmap_lock as raw_lock
from safemm.model import vm_flags_update as raw_flags
from safemm.model.vm_flags import VM_DONTCOPY, VM_DONTDUMP
from safemm.testing import SplatKind, expect_splat
from safemm.virt import VmAreaMut, VmFlags

from .support import BASE, Buf, Rig, doc_splat, raw_mm, splat, state_of, user_of


def _under_read_lock(file: File[Buf]) -> object:
    mm = raw_mm(file)
    raw_lock.mmap_read_lock(mm)
    try:
        vma = raw_lock.vma_lookup(mm, BASE)
        assert vma is not None
        raw_flags.vm_flags_set(vma, VM_DONTDUMP)
    finally:
        raw_lock.mmap_read_unlock(mm)
    return None


def _under_vma_lock(file: File[Buf]) -> object:
    mm = raw_mm(file)
    vma = raw_lock.lock_vma_under_rcu(mm, BASE)
    assert vma is not None
    try:
        raw_flags.vm_flags_set(vma, VM_DONTDUMP)
    finally:
        raw_lock.vma_end_read(vma)
    return None


def _no_lock(file: File[Buf]) -> object:
    vma = raw_mm(file).mm_mt.load(BASE)
    assert vma is not None
    raw_flags.vm_flags_clear(vma, VM_DONTCOPY)
    return None


def _reset_without_vma_write_lock(file: File[Buf]) -> object:
    mm = raw_mm(file)
    raw_lock.mmap_write_lock(mm)
    try:
        vma = raw_lock.vma_lookup(mm, BASE)
        assert vma is not None
        raw_flags.vm_flags_reset(vma, vma.vm_flags | VM_DONTDUMP)  # no vma_start_write first
    finally:
        raw_lock.mmap_write_unlock(mm)
    return None


@doc_splat("h10")
def demo_h10() -> str:
    """vm_flags_set under the mmap read lock."""
    rig = Rig(panic_on_warn=False)
    rig.run(_under_read_lock)
    return splat(rig.kernel, "mmap-write-lock-held").render()


CASES = {
    "mmap-read-lock": (_under_read_lock, "mmap-write-lock-held"),
    "no-lock": (_no_lock, "mmap-write-lock-held"),
    "vma-lock": (_under_vma_lock, "mmap-write-lock-held"),
    "reset-without-vma_start_write": (_reset_without_vma_write_lock, "vma-write-locked"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h10_flag_write_under_the_wrong_lock(case: str, strict: bool) -> None:
    """H10 (vm_flags_set → vma_start_write → mmap_assert_write_locked; vm_flags_reset →
    vma_assert_write_locked): each wrong-lock flag write is the kernel's lockdep WARN, in both
    modes."""
    action, contract = CASES[case]
    rig = Rig(strict=strict)
    with expect_splat(contract, SplatKind.WARNING):
        rig.run(action)
    rig.finish()


def test_h10_vma_lock_only_then_deadlocks() -> None:
    """H10 on a kernel without panic_on_warn: after the WARN, vma_start_write waits for the
    VMA read lock the caller holds — reported as a deadlock, not hung."""
    rig = Rig(panic_on_warn=False)
    with expect_splat("deadlock", SplatKind.DEADLOCK):
        rig.run(_under_vma_lock)
    assert [s.contract for s in rig.kernel.splats] == ["mmap-write-lock-held", "deadlock"]
    rig.finish()


def test_h10_safe_layer() -> None:
    """H10, safe layer: a read guard gives a VmAreaRef without setters (AttributeError naming
    the write lock — the run-time twin of reject/r3); a setter forced onto it is the kernel's
    WARN; ``flags`` cannot be assigned; the write guard's VmAreaMut changes flags silently."""
    rig = Rig()

    def action(file: File[Buf]) -> object:
        state = state_of(file)
        with user_of(file) as user:
            with user.mmap_read_lock() as guard:
                vma = guard.vma_lookup(state.base)
                assert vma is not None
                with pytest.raises(AttributeError, match="write lock"):
                    vma.set_dontdump()  # type: ignore[attr-defined]
                with pytest.raises(AttributeError):
                    vma.flags = VmFlags.NONE  # type: ignore[misc]
                with expect_splat("mmap-write-lock-held", SplatKind.WARNING):
                    VmAreaMut.set_dontdump(vma)  # type: ignore[arg-type]
            with user.mmap_write_lock() as wguard:
                mut = wguard.vma_lookup(state.base)
                assert mut is not None
                mut.set_dontdump()
                assert VmFlags.DONTDUMP in mut.flags
        return None

    rig.run(action)
    assert [s.contract for s in rig.kernel.splats] == ["mmap-write-lock-held"]
    rig.finish()

"""H1: ``vm_insert_page`` on a VMA without VM_MIXEDMAP while holding only the mmap read lock
or a per-VMA lock (mm/memory.c ``vm_insert_page``).

Without VM_MIXEDMAP, ``vm_insert_page`` sets the flag itself, which needs the mmap write lock.
The kernel's only guard is ``BUG_ON(mmap_read_trylock(vma->vm_mm))``: it fires when the read
trylock succeeds, i.e. not when a writer is queued — then the flag is written unsynchronised
and only the write-lock assertion in ``vm_flags_set`` (lockdep / WARN) complains. Strict mode
reports the contract every time. The safe layer has ``vm_insert_page`` only on
:class:`~safemm.virt.VmAreaMixedMapRef` (tests/typing/reject/r01_insert_needs_mixedmap.py,
r02_mixedmap_unchecked.py); the calls below go around the types with an unbound method.
"""

from __future__ import annotations

import pytest

from safemm import KernelBug
from safemm.fs import File
from safemm.model import mmap_lock as raw_lock
from safemm.testing import SplatKind, expect_splat
from safemm.virt import VmAreaMixedMapRef

from .support import (
    BASE,
    Buf,
    HazardDriver,
    Rig,
    doc_splat,
    insert_checked,
    raw_mm,
    splat,
    state_of,
    user_of,
)


def _rig(*, strict: bool = True, panic_on_warn: bool = True) -> Rig:
    """The driver forgot VM_MIXEDMAP in ->mmap: its VMA has none."""
    driver = HazardDriver(mixedmap=False, insert=0)
    return Rig(strict=strict, panic_on_warn=panic_on_warn, driver=driver)


def _writer_arrives(file: File[Buf], queued: bool) -> None:
    """Another task calls mmap_write_lock now and waits behind our read lock."""
    raw_mm(file).mmap_lock.queued_writers = int(queued)


def _insert_under_read_lock(file: File[Buf], writer: bool = False) -> None:
    """The broken driver: mmap read lock, vma_lookup, insert around the types."""
    state = state_of(file)
    with user_of(file) as user, user.mmap_read_lock() as guard:
        vma = guard.vma_lookup(state.base)
        assert vma is not None
        _writer_arrives(file, writer)
        try:
            VmAreaMixedMapRef.vm_insert_page(vma, state.base, state.pages[0])  # type: ignore[arg-type]
        finally:
            _writer_arrives(file, False)


def _insert_under_vma_lock(file: File[Buf], writer: bool = False) -> None:
    """The broken driver, on the per-VMA lock fast path."""
    state = state_of(file)
    with user_of(file) as user:
        guard = user.lock_vma_under_rcu(state.base)
        assert guard is not None
        with guard:
            _writer_arrives(file, writer)
            try:
                VmAreaMixedMapRef.vm_insert_page(guard.vma, state.base, state.pages[0])  # type: ignore[arg-type]
            finally:
                _writer_arrives(file, False)


@doc_splat("h1-strict")
def demo_h1_strict() -> str:
    """Strict mode: the BUG under the mmap read lock, even with a writer queued."""
    rig = _rig()
    try:
        # A writer queued behind the read lock: the kernel's BUG_ON would not fire.
        rig.run(lambda f: _insert_under_read_lock(f, writer=True))
    except KernelBug:
        pass
    return splat(rig.kernel, "insert-needs-mixedmap").render()


@pytest.mark.parametrize("queued_writer", [False, True], ids=["no-writer", "writer-queued"])
def test_h1_strict_read_lock_is_a_bug_every_time(queued_writer: bool) -> None:
    """H1 (vm_insert_page): under only the mmap read lock, strict mode reports
    insert-needs-mixedmap deterministically, whether or not a writer is queued."""
    rig = _rig()
    with expect_splat("insert-needs-mixedmap", SplatKind.BUG) as exc:
        rig.run(lambda f: _insert_under_read_lock(f, writer=queued_writer))
    assert "while holding the mmap read lock" in str(exc.error)
    assert rig.pte_pfn(BASE) is None
    rig.finish()


def test_h1_strict_vma_lock_is_a_bug() -> None:
    """H1 (vm_insert_page): under only a per-VMA read lock (lock_vma_under_rcu), strict mode
    reports insert-needs-mixedmap."""
    rig = _rig()
    with expect_splat("insert-needs-mixedmap", SplatKind.BUG) as exc:
        rig.run(_insert_under_vma_lock)
    assert "while holding a VMA read lock" in str(exc.error)
    rig.finish()


def test_h1_kernel_bug_on_fires_when_the_trylock_succeeds() -> None:
    """H1, strict off (exactly Linux): BUG_ON(mmap_read_trylock()) fires when no writer is
    queued; the successful trylock is leaked, as in the kernel."""
    rig = _rig(strict=False)
    with expect_splat("insert-needs-mixedmap", SplatKind.BUG):
        rig.run(_insert_under_read_lock)
    mm = rig.proc.mm
    assert rig.proc.task in mm.mmap_lock.readers  # the BUG_ON's read lock, never released
    with rig.kernel.enter(rig.proc.task, "test cleanup"):
        raw_lock.mmap_read_unlock(mm)
    rig.finish()


def test_h1_kernel_misses_it_with_a_queued_writer() -> None:
    """H1, strict off: with a writer queued the trylock fails, the BUG_ON passes, and only
    vm_flags_set's write-lock assertion (a WARN) reports the unsynchronised flag write; on a
    kernel without panic_on_warn the insert goes through."""
    rig = _rig(strict=False, panic_on_warn=False)
    rig.run(lambda f: _insert_under_read_lock(f, writer=True))
    assert [s.contract for s in rig.kernel.splats] == ["mmap-write-lock-held"]
    assert rig.vma_at(BASE).vm_flags & 0x10000000  # VM_MIXEDMAP, written under a read lock
    assert rig.pte_pfn(BASE) is not None
    rig.finish()


def test_h1_kernel_vma_lock_and_queued_writer_deadlocks() -> None:
    """H1, strict off, per-VMA lock and a queued writer: vm_flags_set's vma_start_write waits
    for the VMA read lock the caller holds — reported as a deadlock, not hung."""
    rig = _rig(strict=False, panic_on_warn=False)
    with expect_splat("deadlock", SplatKind.DEADLOCK):
        rig.run(lambda f: _insert_under_vma_lock(f, writer=True))
    assert [s.contract for s in rig.kernel.splats] == ["mmap-write-lock-held", "deadlock"]
    rig.finish()


def test_h1_safe_layer_refuses_and_the_correct_driver_passes() -> None:
    """H1, safe layer: a VmAreaRef has no vm_insert_page (AttributeError naming the fix, the
    run-time twin of reject/r1); as_mixedmap_vma() is None without VM_MIXEDMAP; the correct
    driver sets VM_MIXEDMAP in ->mmap and inserts under the read lock, silently."""
    rig = _rig()

    def refused(file: File[Buf]) -> object:
        state = state_of(file)
        with user_of(file) as user, user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(state.base)
            assert vma is not None
            with pytest.raises(AttributeError, match="as_mixedmap_vma"):
                vma.vm_insert_page(state.base, state.pages[0])  # type: ignore[attr-defined]
            assert vma.as_mixedmap_vma() is None
        return None

    rig.run(refused)
    rig.finish()
    good = Rig()  # the default driver sets VM_MIXEDMAP in ->mmap

    def insert(file: File[Buf]) -> object:
        insert_checked(good.driver, file, 1)
        return None

    good.run(insert)
    assert good.proc.read(BASE + 4096, 13) == b"hazard page 1"
    assert good.kernel.dmesg == []
    good.finish()


def test_h1_legal_insert_with_mixedmap_is_silent_in_both_modes() -> None:
    """H1 (strict mode adds no report to a legal insert): with VM_MIXEDMAP set, an insert
    under the read lock or a VMA lock is legal in both modes."""
    for strict in (True, False):
        rig = Rig(strict=strict)

        def insert(file: File[Buf]) -> object:
            state = state_of(file)
            with user_of(file) as user:
                guard = user.lock_vma_under_rcu(state.base)
                assert guard is not None
                with guard:
                    mixed = guard.vma.as_mixedmap_vma()
                    assert mixed is not None
                    mixed.vm_insert_page(state.base + 4096, state.pages[1])
            return None

        rig.run(insert)
        assert rig.kernel.dmesg == []
        rig.finish()

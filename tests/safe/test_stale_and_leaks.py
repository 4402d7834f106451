"""Run-time lifetimes: handles used after their guard, downgrade, unmap, ->mmap or free raise
StaleReferenceError naming what ended them; guards are per task; leaks are reported."""

from __future__ import annotations

import gc

import pytest
from typing_extensions import override

from safemm import (
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    InvariantError,
    Kernel,
    StaleReferenceError,
)
from safemm.fs import File
from safemm.mm import MmapReadGuard, MmWithUser
from safemm.page import Page
from safemm.testing import SplatKind, expect_splat
from safemm.virt import VmAreaMut, VmAreaNew, VmAreaRef

from .safe_support import Mapping, SampleDriver, Setup, user_of


def test_vma_stale_after_unlock(setup: Setup) -> None:
    """A VmAreaRef from a read guard is stale after unlock(), and so is the guard."""

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user:
            guard = user.mmap_read_lock()
            vma = guard.vma_lookup(setup.addr)
            assert vma is not None
            assert vma.start == setup.addr
            guard.unlock()
            with pytest.raises(StaleReferenceError, match="unlock"):
                _ = vma.end
            with pytest.raises(StaleReferenceError, match="unlock"):
                guard.vma_lookup(setup.addr)
            with pytest.raises(StaleReferenceError):
                guard.unlock()
        return 0

    setup.run(action)


def test_vma_stale_after_downgrade(setup: Setup) -> None:
    """A VmAreaMut from a write guard is stale after downgrade(); the read guard works."""

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user:
            guard = user.mmap_write_lock()
            vma = guard.vma_lookup(setup.addr)
            assert isinstance(vma, VmAreaMut)
            read = guard.downgrade()
            with pytest.raises(StaleReferenceError, match="downgrade"):
                vma.set_dontdump()
            with pytest.raises(StaleReferenceError, match="downgrade"):
                guard.vma_lookup(setup.addr)
            again = read.vma_lookup(setup.addr)
            assert again is not None
            assert again.start == setup.addr
            read.unlock()
        return 0

    setup.run(action)


def test_vma_stale_after_unmap(setup: Setup) -> None:
    """A handle whose VMA was unmapped is stale even while a guard is nominally alive (here
    kept across a munmap by a leaked guard: the lockdep report and the stale error both fire)."""
    kept: list[VmAreaRef] = []
    guards: list[MmapReadGuard] = []

    def keep(file: File[Mapping]) -> object:
        with user_of(file) as user:
            guard = user.mmap_read_lock()
            vma = guard.vma_lookup(setup.addr)
            assert vma is not None
            kept.append(vma)
            guards.append(guard)
        return 0

    kernel = Kernel(panic_on_warn=False)
    s = Setup(kernel, SampleDriver())
    setup = s
    s.run(keep)
    assert any("lock held when returning to user space" in d for d in kernel.dmesg)
    # The leaked read lock makes munmap's write lock a deadlock: the model reports it.

    with expect_splat("deadlock", SplatKind.DEADLOCK):
        s.proc.munmap(s.addr, PAGE_SIZE)
    # Release the leaked lock from the wrong task: reported, and the lock stays held.
    other = kernel.spawn()
    from safemm.testing import driver_context

    with driver_context(kernel, other):
        guards[0].unlock()
    assert any("up_read" in d or "bad unlock" in d for d in kernel.dmesg)


def test_vmareanew_stale_after_mmap_returns() -> None:
    """The VmAreaNew given to ->mmap cannot be used after ->mmap returned."""
    kept: list[VmAreaNew] = []

    class Keeper(SampleDriver):
        @override
        def mmap(self, file: File[Mapping], vma: VmAreaNew) -> None:
            super().mmap(file, vma)
            kept.append(vma)

    kernel = Kernel()
    s = Setup(kernel, Keeper())
    with pytest.raises(StaleReferenceError, match=r"->mmap returned"):
        kept[0].set_dontcopy()
    s.proc.exit()
    kernel.check_invariants()


def test_page_stale_after_free(setup: Setup) -> None:
    """A Page cannot be used after free()."""

    def action(file: File[Mapping]) -> object:
        page = Page.alloc_page()
        page.write(0, b"x")
        page.free()
        with pytest.raises(StaleReferenceError, match="free"):
            page.read(0, 1)
        with pytest.raises(StaleReferenceError, match="free"):
            page.free()
        return 0

    setup.run(action)


def test_borrowed_mm_stale_after_hook() -> None:
    """current().mm() is borrowed for the hook: after it returns the handle is stale."""
    kept: list[MmWithUser] = []

    class Borrower(SampleDriver):
        @override
        def open(self, file: File[Mapping]) -> None:
            super().open(file)
            from safemm.task import current

            mm = current().mm()
            assert mm is not None
            with pytest.raises(AttributeError, match="a borrowed one is not yours"):
                mm.mmput()  # type: ignore[attr-defined]
            kept.append(mm)

    kernel = Kernel()
    s = Setup(kernel, Borrower())
    with pytest.raises(StaleReferenceError, match="->open returned"):
        kept[0].mmap_read_lock()
    s.proc.exit()
    kernel.check_invariants()


def test_guard_held_on_return_is_reported() -> None:
    """A guard not unlocked before the hook returns: lockdep's "lock held when returning to
    user space" (KernelWarning under panic_on_warn)."""
    kernel = Kernel()
    s = Setup(kernel, SampleDriver())
    kept: list[MmapReadGuard] = []

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user:
            kept.append(user.mmap_read_lock())
        return 0

    with expect_splat("lock-held-return", SplatKind.LOCKDEP, match="lock held when returning"):
        s.run(action)
    assert kept[0].alive


def test_dropped_references_are_leaks() -> None:
    """An owned mm reference, a Page or a guard dropped without release is a leak; the next
    check_invariants() raises naming it."""
    kernel = Kernel(panic_on_warn=False)
    s = Setup(kernel, SampleDriver())

    def action(file: File[Mapping]) -> object:
        user = user_of(file)
        Page.alloc_page()  # dropped at once
        user.mmgrab()  # dropped at once
        return 0  # `user` (an mm_users reference) is dropped too

    s.run(action)
    gc.collect()
    with pytest.raises(InvariantError, match="no-leaks") as exc:
        kernel.check_invariants()
    text = str(exc.value)
    assert "Page" in text
    assert "mm_count" in text
    assert "mm_users" in text


def test_quiescent_leak_of_mm_reference() -> None:
    """With every process gone and every file closed, an mm still referenced is a leak."""
    kernel = Kernel()
    held: list[object] = []

    class Hoarder(SampleDriver):
        @override
        def release(self, file: File[Mapping]) -> None:
            state = file.private_data
            assert state is not None
            held.append(state.mm)  # forgets to mmdrop
            state.mm = None
            super().release(file)

    s = Setup(kernel, Hoarder())
    s.proc.exit()
    with pytest.raises(InvariantError, match="outlives every process"):
        kernel.check_invariants()


def test_clean_run_has_no_splat() -> None:
    """The sample driver used correctly leaves dmesg empty and all invariants intact."""
    kernel = Kernel()
    s = Setup(kernel, SampleDriver(insert=2))
    assert s.proc.read(s.addr, 6) == b"page 0"
    assert s.proc.read(s.addr + 2 * PAGE_SIZE, 6) == b"page 2"  # faulted in
    child = s.proc.fork()
    s.proc.munmap(s.addr + PAGE_SIZE, PAGE_SIZE)
    s.proc.exit()
    child.exit()
    kernel.check_invariants()
    assert kernel.dmesg == []
    addr = kernel.spawn().mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED | 0x20)
    assert addr

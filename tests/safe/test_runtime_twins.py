"""The run-time twin of every type-test rejection: the same illegal thing done around the
types (an unbound call, a cast a user could write, or the raw model) is caught at run time
with the documented splat or error."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typing_extensions import override

from safemm import PAGE_SIZE, StaleReferenceError
from safemm.fs import File
from safemm.mm import (
    Mm,
    MmapReadGuard,
    MmapWriteGuard,
    MmWithUser,
    MmWithUserAsync,
    OwnedMm,
    OwnedMmWithUser,
)
from safemm.model import fork as raw_fork
from safemm.model import mmap_lock as raw_lock
from safemm.model import vm_flags_update as raw_flags
from safemm.model.vm_flags import VM_HUGETLB, VM_PFNMAP, VM_WRITE
from safemm.page import Page
from safemm.task import current
from safemm.testing import SplatKind, expect_splat
from safemm.virt import (
    VmAreaMixedMapRef,
    VmAreaMut,
    VmAreaNew,
    VmAreaOwnedRef,
    VmAreaRef,
)

from .safe_support import Mapping, Setup, user_of


def test_r1_insert_without_mixedmap_under_read_lock(setup: Setup) -> None:
    """r1 twin: vm_insert_page on a VMA without VM_MIXEDMAP under the read lock (the unbound
    method around the types, or the raw model) is a BUG every time (strict mode)."""
    proc, kernel = setup.proc, setup.kernel
    from safemm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ

    anon = proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)

    def action(file: File[Mapping]) -> object:
        page = Page.alloc_page()
        try:
            with user_of(file) as user, user.mmap_read_lock() as guard:
                vma = guard.vma_lookup(anon)
                assert vma is not None
                with expect_splat("insert-needs-mixedmap", SplatKind.BUG):
                    VmAreaMixedMapRef.vm_insert_page(vma, anon, page)  # type: ignore[arg-type]
        finally:
            page.free()
        return 0

    setup.run(action)
    assert any("vm_insert_page" in line for line in kernel.dmesg)


def test_r1_nonstrict_kernel_bug_on_trylock(lenient: Setup) -> None:
    """r1 twin without strict mode: the kernel's own BUG_ON(mmap_read_trylock()) fires when no
    writer is queued, but not when one is (the nondeterminism strict mode removes)."""
    lenient.kernel.strict = False
    from safemm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ

    proc = lenient.proc
    anon = proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
    page_holder: list[Page] = []

    def action(file: File[Mapping]) -> object:
        page = Page.alloc_page()
        page_holder.append(page)
        with user_of(file) as user:
            guard = user.mmap_read_lock()
            vma = guard.vma_lookup(anon)
            assert vma is not None
            with expect_splat("insert-needs-mixedmap", SplatKind.BUG):
                VmAreaMixedMapRef.vm_insert_page(vma, anon, page)  # type: ignore[arg-type]
            # The BUG_ON's trylock succeeded and is never released, as in the kernel; drop both.
            raw_lock.mmap_read_unlock(proc.mm)
            guard.unlock()
        return 0

    lenient.run(action)
    page_holder[0].free()


def test_r2_unchecked_mixedmap_is_none(setup: Setup) -> None:
    """r2 twin: as_mixedmap_vma() really returns None on a VMA without VM_MIXEDMAP."""
    from safemm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ

    anon = setup.proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user, user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(anon)
            assert vma is not None
            assert vma.as_mixedmap_vma() is None
            mine = guard.vma_lookup(setup.addr)
            assert mine is not None
            assert mine.as_mixedmap_vma() is not None
        return 0

    setup.run(action)


def test_r3_flag_setter_under_read_lock(setup: Setup) -> None:
    """r3 twin: a VmAreaMut setter forced onto a VmAreaRef under the read lock: the model's
    vma_start_write asserts the write lock (WARN mmap-write-lock-held)."""

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user, user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(setup.addr)
            assert vma is not None
            with expect_splat("mmap-write-lock-held", SplatKind.WARNING):
                VmAreaMut.set_dontcopy(vma)  # type: ignore[arg-type]
        return 0

    setup.run(action)


def test_r3_setup_only_setter_on_live_vma(setup: Setup) -> None:
    """r3 twin: set_io (setup only) forced onto a live VmAreaMut: strict live-flags report."""

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user, user.mmap_write_lock() as guard:
            vma = guard.vma_lookup(setup.addr)
            assert vma is not None
            with expect_splat("live-flags", SplatKind.STRICT):
                VmAreaNew.set_io(vma)  # type: ignore[arg-type]
        return 0

    setup.run(action)


def test_r4_forbidden_flag_changes_raw(setup: Setup) -> None:
    """r4 twin: the raw model's vm_flags_* from driver code: setting VM_WRITE or VM_PFNMAP, or
    clearing VM_MIXEDMAP, on a live VMA is reported (live-flags, flags-sticky, exclusive)."""
    seen: list[str] = []

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user, user.mmap_write_lock():
            vma = setup.proc.mm.mm_mt.load(setup.addr)
            assert vma is not None
            changes: list[tuple[Callable[[], None], str, SplatKind]] = [
                (lambda: raw_flags.vm_flags_set(vma, VM_WRITE), "live-flags", SplatKind.STRICT),
                (lambda: raw_flags.vm_flags_set(vma, VM_HUGETLB), "live-flags", SplatKind.STRICT),
                (
                    lambda: raw_flags.vm_flags_set(vma, VM_PFNMAP),
                    "mixedmap-pfnmap-exclusive",
                    SplatKind.WARNING,
                ),
                (
                    lambda: raw_flags.vm_flags_clear(vma, 0x10000000),
                    "flags-sticky",
                    SplatKind.STRICT,
                ),
            ]
            for change, contract, kind in changes:
                with expect_splat(contract, kind):
                    change()
                seen.append(contract)
        return 0

    setup.run(action)
    assert len(seen) == 4


def test_r5_vma_lookup_without_lock_raw(setup: Setup) -> None:
    """r5 twin: the raw vma_lookup without the mmap lock: WARN mmap-lock-held; the C-style
    helper in safemm.mm refuses at run time too."""
    from safemm import mm as mmmod

    with expect_splat("mmap-lock-held", SplatKind.WARNING):
        raw_lock.vma_lookup(setup.proc.mm, setup.addr)
    with pytest.raises(TypeError, match="guard"):
        mmmod.vma_lookup(object(), setup.addr)  # type: ignore[arg-type, deprecated]


def test_r6_lock_on_bare_mm(setup: Setup) -> None:
    """r6 twin: the lock method forced onto a bare Mm (mm_count only) is refused; the raw
    model reports a driver locking an mm whose mm_users is 0 (strict mm-users)."""
    mms: list[Mm] = []

    def action(file: File[Mapping]) -> object:
        state = file.private_data
        assert state is not None
        assert state.mm is not None
        mms.append(state.mm)
        with pytest.raises(TypeError, match="mm_count"):
            MmWithUser.mmap_read_lock(state.mm)  # type: ignore[arg-type]
        with pytest.raises(AttributeError, match="mmget_not_zero"):
            state.mm.mmap_read_lock()  # type: ignore[attr-defined]
        return 0

    setup.run(action)
    # After exit the mm has no users; a driver taking its lock through the raw model is caught.
    other = setup.kernel.spawn()
    mm = setup.proc.mm
    fd = other.open("/dev/test")
    setup.proc.exit()
    assert mm.mm_users == 0

    def raw_lock_dead(file: File[Mapping]) -> object:
        with expect_splat("mm-users", SplatKind.STRICT):
            raw_lock.mmap_read_lock(mm)
        return 0

    setup.driver.action = raw_lock_dead
    other.ioctl(fd, 0)
    other.exit()


def test_r7_read_guard_as_write_guard(setup: Setup) -> None:
    """r7 twin: downgrade forced onto a read guard: unlock-balance report."""

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user:
            guard = user.mmap_read_lock()
            with expect_splat("unlock-balance", SplatKind.LOCKDEP):
                MmapWriteGuard.downgrade(guard)  # type: ignore[arg-type]
            guard.unlock()
        return 0

    setup.run(action)


def test_r8_no_public_constructors() -> None:
    """r8 twin: constructing a state without the private token is a TypeError."""
    for cls in (VmAreaRef, VmAreaMut, VmAreaNew, VmAreaMixedMapRef, VmAreaOwnedRef):
        with pytest.raises(TypeError, match="no public constructor"):
            cls(object(), object(), object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no public constructor"):
        MmapReadGuard(object(), object(), object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no public constructor"):
        Page(object(), object(), object())  # type: ignore[arg-type]
    for mm_cls in (Mm, MmWithUser, OwnedMm, OwnedMmWithUser, MmWithUserAsync):
        with pytest.raises(TypeError, match="no public constructor"):
            mm_cls(object(), object(), None)  # type: ignore[arg-type]


def test_r8_leaf_states_cannot_be_subclassed() -> None:
    """r8 twin: subclassing a final state fails at run time too."""
    for cls in (
        VmAreaMixedMapRef,
        VmAreaNew,
        VmAreaOwnedRef,
        MmapWriteGuard,
        OwnedMm,
        OwnedMmWithUser,
        MmWithUserAsync,
    ):
        with pytest.raises(TypeError, match="final state"):
            type("Forged", (cls,), {})


def test_r9_bad_arguments(setup: Setup) -> None:
    """r9 twin: a non-Page or a non-int address is a TypeError at run time."""

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user, user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(setup.addr)
            assert vma is not None
            mixed = vma.as_mixedmap_vma()
            assert mixed is not None
            page = Page.alloc_page()
            try:
                with pytest.raises(TypeError, match="Page"):
                    mixed.vm_insert_page(vma.start, b"data")  # type: ignore[arg-type]
                with pytest.raises(TypeError, match="address"):
                    mixed.vm_insert_page("0x1000", page)  # type: ignore[arg-type]
            finally:
                page.free()
        return 0

    setup.run(action)


def test_missing_method_messages_name_the_fix(setup: Setup) -> None:
    """An illegal call around the types tells the user the legal spelling."""

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user, user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(setup.addr)
            assert vma is not None
            with pytest.raises(AttributeError, match="as_mixedmap_vma"):
                vma.vm_insert_page(vma.start, None)  # type: ignore[attr-defined]
            with pytest.raises(AttributeError, match="->mmap"):
                vma.set_io()  # type: ignore[attr-defined]
            with pytest.raises(AttributeError, match="write lock"):
                vma.set_dontcopy()  # type: ignore[attr-defined]
        return 0

    setup.run(action)


def test_r12_borrowed_mm_has_no_release(setup: Setup) -> None:
    """r12 twin: a borrowed mm (``current().mm()``, ``VmAreaRef.mm``) has no release method
    and is no context manager at run time either; the release methods called unbound refuse
    it; no count changes."""
    mm_struct = setup.proc.mm

    def action(file: File[Mapping]) -> object:
        counts = (mm_struct.mm_users, mm_struct.mm_count)
        mm = current().mm()
        assert mm is not None
        with pytest.raises(AttributeError, match="a borrowed one is not yours to release"):
            mm.mmput()  # type: ignore[attr-defined]
        with pytest.raises(AttributeError, match="a borrowed one is not yours to release"):
            mm.mmdrop()  # type: ignore[attr-defined]
        with (
            pytest.raises(AttributeError, match="only an owned reference is a context"),
            mm,  # type: ignore[attr-defined]
        ):
            pass
        with pytest.raises(AttributeError, match="mmget_not_zero"):
            mm.into_mmput_async()  # type: ignore[attr-defined]
        with pytest.raises(TypeError, match=r"mmput\(\) on <MmWithUser mm=\d+ borrowed>"):
            OwnedMmWithUser.mmput(mm)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"mmdrop\(\) on <MmWithUser mm=\d+ borrowed>"):
            OwnedMm.mmdrop(mm)  # type: ignore[arg-type]
        with user_of(file) as user, user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(setup.addr)
            assert vma is not None
            with pytest.raises(AttributeError, match="a borrowed one is not yours to release"):
                vma.mm.mmput()  # type: ignore[attr-defined]
            assert (mm_struct.mm_users, mm_struct.mm_count) == (counts[0] + 1, counts[1])
        assert (mm_struct.mm_users, mm_struct.mm_count) == counts
        return 0

    setup.run(action)


def test_r12_owned_mm_released_once_by_its_own_method(setup: Setup) -> None:
    """r12 twin: an owned reference is released once — by its own method or at the end of
    its ``with`` block, not both; after that it is stale; the other kind's release refuses
    it; and the raw model's second mmput is the mm-ref-owned BUG."""
    mm_struct = setup.proc.mm

    def action(file: File[Mapping]) -> object:
        users = mm_struct.mm_users
        user = user_of(file)
        with user as same:
            assert same is user
            assert mm_struct.mm_users == users + 1
        assert mm_struct.mm_users == users
        with pytest.raises(StaleReferenceError, match=r"used after mmput\(\)"):
            user.mmap_read_lock()
        with pytest.raises(StaleReferenceError, match=r"used after mmput\(\)"):
            user.mmput()
        with user_of(file) as released_early:
            released_early.mmput()  # the block's end does not release it again
        with user_of(file) as moved:
            later = moved.into_mmput_async()  # the reference moves out of the block
        assert mm_struct.mm_users == users + 1
        with later:
            pass
        assert mm_struct.mm_users == users
        borrowed = current().mm()
        assert borrowed is not None
        with borrowed.mmgrab() as grabbed:
            with pytest.raises(TypeError, match=r"mmput\(\) on <OwnedMm .* released with "):
                OwnedMmWithUser.mmput(grabbed)  # type: ignore[arg-type]
            assert mm_struct.mm_count > 0
        assert mm_struct.mm_users == users
        return 0

    setup.run(action)
    # The raw model, as C code can: once the process has exited no one holds mm_users, and
    # one more mmput (a borrowed reference released) is the BUG.
    raw_fork.mmgrab(mm_struct)
    setup.proc.exit()
    with expect_splat("mm-ref-owned", SplatKind.BUG):
        raw_fork.mmput(mm_struct)
    raw_fork.mmdrop(mm_struct)


class _Unused(VmAreaRef):
    """Subclassing a non-final state is allowed (the safe layer's own classes do it)."""

    @override
    def __repr__(self) -> str:
        return "unused"


def test_stale_error_names_what_ended_it(setup: Setup) -> None:
    """A handle kept past its guard raises StaleReferenceError naming the unlock."""
    kept: list[VmAreaRef] = []

    def action(file: File[Mapping]) -> object:
        with user_of(file) as user, user.mmap_read_lock() as guard:
            vma = guard.vma_lookup(setup.addr)
            assert vma is not None
            kept.append(vma)
        with pytest.raises(StaleReferenceError, match=r"MmapReadGuard.unlock\(\)"):
            _ = kept[0].start
        return 0

    setup.run(action)

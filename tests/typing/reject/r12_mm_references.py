"""Contract mm-ref-owned: only an owned mm reference is released, once, by its own release
method; a borrowed one (``current().mm()``, ``VmAreaRef.mm``, a parameter) has none."""

from safemm.mm import Mm, MmWithUser, MmWithUserAsync, OwnedMm, OwnedMmWithUser
from safemm.task import current
from safemm.virt import VmAreaRef


def needs_owned_user(mm: OwnedMmWithUser) -> None: ...
def needs_owned_mm(mm: OwnedMm) -> None: ...


def release_current_mm() -> None:
    mm = current().mm()
    if mm is not None:
        mm.mmput()  # type: ignore[attr-defined]
        mm.mmdrop()  # type: ignore[attr-defined]
        mm.into_mmput_async()  # type: ignore[attr-defined]
        with mm:  # type: ignore[attr-defined]
            pass


def release_vma_mm(vma: VmAreaRef) -> None:
    vma.mm.mmput()  # type: ignore[attr-defined]
    vma.mm.mmdrop()  # type: ignore[attr-defined]
    with vma.mm:  # type: ignore[attr-defined]
        pass


def release_lent(user: MmWithUser, mm: Mm) -> None:
    user.mmput()  # type: ignore[attr-defined]
    user.mmdrop()  # type: ignore[attr-defined]
    mm.mmdrop()  # type: ignore[attr-defined]
    mm.mmput()  # type: ignore[attr-defined]
    with mm:  # type: ignore[attr-defined]
        pass


def borrowed_for_owned(user: MmWithUser, mm: Mm) -> None:
    needs_owned_user(user)  # type: ignore[arg-type]
    needs_owned_mm(mm)  # type: ignore[arg-type]


def wrong_release(grabbed: OwnedMm, owned: OwnedMmWithUser, later: MmWithUserAsync) -> None:
    grabbed.mmput()  # type: ignore[attr-defined]
    owned.mmdrop()  # type: ignore[attr-defined]
    later.mmdrop()  # type: ignore[attr-defined]
    later.into_mmput_async()  # type: ignore[attr-defined]
    needs_owned_user(later)  # type: ignore[arg-type]
    needs_owned_mm(owned)  # type: ignore[arg-type]


def count_is_not_users(grabbed: OwnedMm) -> None:
    grabbed.mmap_read_lock()  # type: ignore[attr-defined]
    grabbed.into_mmput_async()  # type: ignore[attr-defined]

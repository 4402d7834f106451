"""Contract mm-users: only an MmWithUser (mm_users held) can take the mmap or VMA lock."""

from safemm import mm as mmmod
from safemm.mm import Mm


def lock_bare(mm: Mm) -> None:
    mm.mmap_read_lock()  # type: ignore[attr-defined]
    mm.mmap_read_trylock()  # type: ignore[attr-defined]
    mm.mmap_write_lock()  # type: ignore[attr-defined]
    mm.lock_vma_under_rcu(0x1000)  # type: ignore[attr-defined]


def unchecked_mmget(mm: Mm) -> None:
    mm.mmget_not_zero().mmap_read_lock()  # type: ignore[union-attr]
    mm.mmget_not_zero().lock_vma_under_rcu(0x1000)  # type: ignore[union-attr]


def unchecked_trylock(mm: Mm) -> None:
    user = mm.mmget_not_zero()
    if user is not None:
        user.mmap_read_trylock().vma_lookup(0x1000)  # type: ignore[union-attr]


def c_spelling(mm: Mm) -> None:
    mmmod.mmap_read_lock(mm)  # type: ignore[arg-type, deprecated]

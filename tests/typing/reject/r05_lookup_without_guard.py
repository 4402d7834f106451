"""Contract mmap-lock-held: vma_lookup exists only on a lock guard."""

from safemm import mm as mmmod
from safemm.mm import Mm, MmWithUser


def on_mm(mm: Mm) -> None:
    mm.vma_lookup(0x1000)  # type: ignore[attr-defined]


def on_mm_with_user(mm: MmWithUser) -> None:
    mm.vma_lookup(0x1000)  # type: ignore[attr-defined]


def as_free_function(mm: MmWithUser) -> None:
    mmmod.vma_lookup(mm, 0x1000)  # type: ignore[arg-type, deprecated]

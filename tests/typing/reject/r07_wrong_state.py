"""Contracts mmap-write-lock-held and vma-write-locked: a weaker state where a stronger one
is required."""

from safemm.mm import Mm, MmapReadGuard, MmapWriteGuard, MmWithUser
from safemm.virt import VmAreaMixedMapRef, VmAreaMut, VmAreaNew, VmAreaRef


def needs_mut(vma: VmAreaMut) -> None: ...
def needs_new(vma: VmAreaNew) -> None: ...
def needs_mixedmap(vma: VmAreaMixedMapRef) -> None: ...
def needs_write_guard(guard: MmapWriteGuard) -> None: ...
def needs_user(mm: MmWithUser) -> None: ...


def ref_for_mut(vma: VmAreaRef) -> None:
    needs_mut(vma)  # type: ignore[arg-type]


def mut_for_new(vma: VmAreaMut) -> None:
    needs_new(vma)  # type: ignore[arg-type]


def ref_for_mixedmap(vma: VmAreaRef) -> None:
    needs_mixedmap(vma)  # type: ignore[arg-type]


def read_guard_for_write(guard: MmapReadGuard) -> None:
    needs_write_guard(guard)  # type: ignore[arg-type]


def read_guard_downgrade(guard: MmapReadGuard) -> None:
    guard.downgrade()  # type: ignore[attr-defined]


def read_guard_gives_ref(guard: MmapReadGuard) -> None:
    vma = guard.vma_lookup(0x1000)
    if vma is not None:
        needs_mut(vma)  # type: ignore[arg-type]


def bare_mm_for_user(mm: Mm) -> None:
    needs_user(mm)  # type: ignore[arg-type]

"""Contract foreign-vma (H3): a VMA's private data, and the typed state proving the VMA is the
driver's own, come only from the ownership check ``VmOperations.check_vma`` (Rust binder's
``check_vma``), which may fail; an owned VMA of one driver is not another driver's."""

from safemm.fs import VmOperations
from safemm.virt import VmAreaMixedMapRef, VmAreaMut, VmAreaNew, VmAreaOwnedRef, VmAreaRef


class Mine:
    """This driver's per-mapping state."""


class Theirs:
    """Another driver's per-mapping state."""


def needs_owned(vma: VmAreaOwnedRef[Mine]) -> None: ...


def private_data_without_check(vma: VmAreaRef, mut: VmAreaMut, mixed: VmAreaMixedMapRef) -> None:
    vma.private_data  # type: ignore[attr-defined]
    mut.private_data  # type: ignore[attr-defined]
    mixed.private_data  # type: ignore[attr-defined]


def private_data_in_mmap(vma: VmAreaNew) -> None:
    vma.private_data  # type: ignore[attr-defined]


def unchecked_result(ops: VmOperations[Mine], vma: VmAreaRef, owner: Mine) -> None:
    ops.check_vma(vma, owner).private_data  # type: ignore[union-attr]
    ops.check_vma(vma, owner).as_mixedmap_vma()  # type: ignore[union-attr]
    ops.check_vma(vma).zap_page_range_single(vma.start, 4096)  # type: ignore[union-attr]


def looked_up_is_not_owned(vma: VmAreaRef, mixed: VmAreaMixedMapRef, mut: VmAreaMut) -> None:
    needs_owned(vma)  # type: ignore[arg-type]
    needs_owned(mixed)  # type: ignore[arg-type]
    needs_owned(mut)  # type: ignore[arg-type]


def wrong_owner(ops: VmOperations[Mine], vma: VmAreaRef, other: Theirs) -> None:
    ops.check_vma(vma, other)  # type: ignore[arg-type]


def other_drivers_vma(vma: VmAreaOwnedRef[Theirs]) -> Mine:
    needs_owned(vma)  # type: ignore[arg-type]
    return vma.private_data  # type: ignore[return-value]

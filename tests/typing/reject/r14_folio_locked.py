"""Contract folio-locked: what needs the folio lock (``folio->index``, removal from the page
cache, handing the folio to ``->fault``'s caller) exists only on a locked state — a
``FolioGuard`` this code took, or the ``CachedFolio`` reclaim lends to ``release_folio`` —
and the lock reclaim holds is not the hook's to release."""

from typing_extensions import override

from safemm.folio import CachedFolio, Folio, FolioGuard, LockedFolio
from safemm.fs import (
    AddressSpaceOperations,
    AddressSpaceOwned,
    VmFault,
    VmFaultReason,
    VmOperations,
)
from safemm.page import Gfp


class Area:
    """The driver's state for one open file."""

    def __init__(self, mapping: AddressSpaceOwned["Area"], folio: Folio) -> None:
        self.mapping = mapping
        self.folio = folio


def unlocked(folio: Folio) -> None:
    folio.index  # type: ignore[attr-defined]
    folio.filemap_remove_folio()  # type: ignore[attr-defined]
    folio.unlock()  # type: ignore[attr-defined]


def borrowed(folio: LockedFolio) -> None:
    folio.unlock()  # type: ignore[attr-defined]
    folio.filemap_remove_folio()  # type: ignore[attr-defined]


class KeepsLock(AddressSpaceOperations[Area]):
    @override
    def release_folio(self, folio: CachedFolio[Area], gfp: Gfp) -> bool:
        folio.unlock()  # type: ignore[attr-defined]
        return True


class NoGfp(AddressSpaceOperations[Area]):
    @override
    def release_folio(self, folio: CachedFolio[Area]) -> bool:  # type: ignore[override]
        return True


class UnlockedFault(VmOperations[Area]):
    @override
    def fault(self, vmf: VmFault[Area]) -> FolioGuard | VmFaultReason:
        return vmf.vma.private_data.folio  # type: ignore[return-value]


def forge(folio: Folio, raw: object) -> None:
    FolioGuard(raw, folio)  # type: ignore[call-arg, arg-type]

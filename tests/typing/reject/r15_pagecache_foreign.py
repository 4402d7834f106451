"""Contract pagecache-foreign: only the mapping a driver created with its
``AddressSpaceOperations`` (an ``AddressSpaceOwned``) offers page-cache insertion; another
file's ``AddressSpace`` (``file.mapping``) does not, and one cannot pass for the other."""

from safemm.folio import Folio
from safemm.fs import AddressSpace, AddressSpaceOperations, AddressSpaceOwned, File


class Area:
    """The driver's state for one open file."""


def insert(mapping: AddressSpaceOwned[Area], folio: Folio) -> None:
    mapping.filemap_add_folio(folio, 0).unlock()


def someone_elses(file: File[Area], other: AddressSpace, folio: Folio) -> None:
    file.mapping.filemap_add_folio(folio, 0)  # type: ignore[attr-defined]
    other.filemap_lock_folio(0)  # type: ignore[attr-defined]
    insert(other, folio)  # type: ignore[arg-type]


def wrong_private(ops: AddressSpaceOperations[Area]) -> None:
    ops.new_mapping("not an Area")  # type: ignore[arg-type]


def forge(raw: object) -> None:
    AddressSpaceOwned(raw, raw, raw, Area())  # type: ignore[arg-type]

"""The legal flows of a driver's page cache, with the types mypy must infer."""

from typing import assert_type

from typing_extensions import override

from safemm.folio import CachedFolio, Folio, FolioGuard
from safemm.fs import (
    AddressSpace,
    AddressSpaceOperations,
    AddressSpaceOwned,
    File,
    VmFault,
    VmFaultReason,
    VmOperations,
)
from safemm.page import GFP_KERNEL, Gfp


class Area:
    """The driver's state for one open file."""

    def __init__(self) -> None:
        self.mapping: AddressSpaceOwned[Area] | None = None
        self.pins: dict[int, Folio] = {}


class Aops(AddressSpaceOperations[Area]):
    @override
    def release_folio(self, folio: CachedFolio[Area], gfp: Gfp) -> bool:
        area = assert_type(folio.private_data, Area)
        pin = area.pins.pop(assert_type(folio.index, int), None)
        if pin is not None:
            assert_type(folio.is_folio(pin), bool)
            pin.put()
        return True


class Fault(VmOperations[Area]):
    @override
    def fault(self, vmf: VmFault[Area]) -> FolioGuard | VmFaultReason:
        mapping = vmf.vma.private_data.mapping
        if mapping is None:
            return VmFaultReason.SIGBUS
        guard = assert_type(mapping.filemap_lock_folio(vmf.pgoff), FolioGuard | None)
        return VmFaultReason.SIGBUS if guard is None else guard


def open_file(ops: Aops, file: File[Area]) -> None:
    area = Area()
    mapping = assert_type(ops.new_mapping(area), AddressSpaceOwned[Area])
    file.set_mapping(assert_type(mapping.address_space, AddressSpace))
    area.mapping = mapping


def fill(mapping: AddressSpaceOwned[Area], index: int) -> Folio:
    folio = assert_type(Folio.alloc(GFP_KERNEL), Folio)
    folio.write(0, b"data")
    with assert_type(mapping.filemap_add_folio(folio, index), FolioGuard) as guard:
        assert_type(guard.index, int)
        assert_type(guard.in_mapping(mapping), bool)
    cached = assert_type(mapping.filemap_get_folio(index), Folio | None)
    if cached is not None:
        cached.mark_accessed()
        cached.put()
    return folio


def evict(mapping: AddressSpaceOwned[Area], index: int) -> None:
    guard = mapping.filemap_lock_folio(index)
    if guard is not None:
        mapping.address_space.unmap_mapping_range(index * 4096, 4096)
        guard.filemap_remove_folio()
        guard.unlock()
    assert_type(mapping.truncate_inode_pages(), int)


def lock_states(folio: Folio) -> None:
    assert_type(folio.trylock(), FolioGuard | None)
    with folio.lock() as guard:
        assert_type(guard.folio(), Folio).put()

"""Driver hooks: :class:`FileOperations` (file hooks), :class:`File` (an open file and its
per-open ``private_data``), :class:`VmOperations` (per-VMA hooks: open, close, fault,
may_split, mremap), :class:`VmFault`, :class:`AddressSpace` (``unmap_mapping_range``), and a
driver's own page cache: :class:`AddressSpaceOperations` (``release_folio``, the hook core
reclaim calls) and :class:`AddressSpaceOwned` (the mapping it creates, with
``filemap_add_folio``)."""

from __future__ import annotations

from ._filemap import AddressSpaceOperations as AddressSpaceOperations
from ._filemap import AddressSpaceOwned as AddressSpaceOwned
from ._fs import AddressSpace as AddressSpace
from ._fs import File as File
from ._fs import FileOperations as FileOperations
from ._fs import VmFault as VmFault
from ._fs import VmFaultReason as VmFaultReason
from ._fs import VmOperations as VmOperations

__all__ = [
    "AddressSpace",
    "AddressSpaceOperations",
    "AddressSpaceOwned",
    "File",
    "FileOperations",
    "VmFault",
    "VmFaultReason",
    "VmOperations",
]

"""Folios (``struct folio``) in a driver's page cache: :class:`Folio` (a reference),
:class:`LockedFolio` (what needs the folio lock), :class:`FolioGuard` (a folio lock this code
holds) and :class:`CachedFolio` (the locked folio reclaim lends to ``release_folio``)."""

from __future__ import annotations

from ._filemap import CachedFolio as CachedFolio
from ._filemap import Folio as Folio
from ._filemap import FolioGuard as FolioGuard
from ._filemap import LockedFolio as LockedFolio

__all__ = ["CachedFolio", "Folio", "FolioGuard", "LockedFolio"]

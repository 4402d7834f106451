"""Pages (``kernel::page``): :class:`Page` and the allocation flags."""

from __future__ import annotations

from ._page import Page as Page
from ._page import PageLock as PageLock
from .model.page_alloc import GFP_ATOMIC as GFP_ATOMIC
from .model.page_alloc import GFP_KERNEL as GFP_KERNEL
from .model.page_alloc import GFP_NOWAIT as GFP_NOWAIT
from .model.page_alloc import Gfp as Gfp

__all__ = ["GFP_ATOMIC", "GFP_KERNEL", "GFP_NOWAIT", "Gfp", "Page", "PageLock"]

"""mm references and lock guards (``kernel::mm``).

Borrowed references, which cannot be released: :class:`Mm` (the ``mm_struct`` is allocated)
and :class:`MmWithUser` (``mm_users`` is held by the lender; the only type that can take the
mmap lock), as ``current().mm()`` and ``VmAreaRef.mm`` return them. Owned references, each a
context manager that releases it at the end of the ``with`` block: :class:`OwnedMm`
(``mmgrab``; ``mmdrop()``), :class:`OwnedMmWithUser` (``mmget_not_zero``; ``mmput()``) and
:class:`MmWithUserAsync` (``into_mmput_async``; ``mmput()`` is ``mmput_async``). The guards:
:class:`MmapReadGuard`, :class:`MmapWriteGuard` and :class:`VmaReadGuard`.

C spellings that need a lock or a reference first exist here only to point at the safe
spelling: calling them is a type error (``arg-type``) with a ``deprecated`` note saying what to
write instead.
"""

from __future__ import annotations

from typing import NoReturn, final

from typing_extensions import deprecated

from ._mm import Mm as Mm
from ._mm import MmapReadGuard as MmapReadGuard
from ._mm import MmapWriteGuard as MmapWriteGuard
from ._mm import MmWithUser as MmWithUser
from ._mm import MmWithUserAsync as MmWithUserAsync
from ._mm import OwnedMm as OwnedMm
from ._mm import OwnedMmWithUser as OwnedMmWithUser
from ._mm import VmaReadGuard as VmaReadGuard

__all__ = [
    "Mm",
    "MmWithUser",
    "MmWithUserAsync",
    "MmapReadGuard",
    "MmapWriteGuard",
    "OwnedMm",
    "OwnedMmWithUser",
    "VmaReadGuard",
    "mmap_read_lock",
    "vma_lookup",
]


@final
class _LockFirst:
    """Uninhabited: no value has this type, so the C-style helpers below cannot be called."""

    __slots__ = ()

    def __init__(self) -> None:
        raise TypeError("_LockFirst has no instances")


@deprecated(
    "vma_lookup needs the mmap lock: `with mm.mmap_read_lock() as guard: "
    "vma = guard.vma_lookup(addr)` (or mm.lock_vma_under_rcu(addr))",
    category=None,
)
def vma_lookup(mm: _LockFirst, addr: int) -> NoReturn:
    """Not callable: look VMAs up through a guard (:meth:`MmapReadGuard.vma_lookup`)."""
    raise TypeError("vma_lookup needs a guard: use MmapReadGuard.vma_lookup(addr)")


@deprecated(
    "mmap_read_lock needs mm_users: `user = mm.mmget_not_zero()`, check it for None, then "
    "`user.mmap_read_lock()`",
    category=None,
)
def mmap_read_lock(mm: _LockFirst) -> NoReturn:
    """Not callable: take the lock through :meth:`MmWithUser.mmap_read_lock`."""
    raise TypeError("mmap_read_lock needs an MmWithUser: call Mm.mmget_not_zero() first")

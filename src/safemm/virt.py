"""VMA typestates (``kernel::mm::virt``): one class per state, each method only where legal.

- :class:`VmAreaRef` — readable (mmap read lock or per-VMA lock): ``VmaRef``.
- :class:`VmAreaMixedMapRef` — readable and VM_MIXEDMAP: ``vm_insert_page``: ``VmaMixedMap``.
- :class:`VmAreaMut` — under the mmap write lock, write-locked: the safe flag changes.
- :class:`VmAreaNew` — inside ``->mmap``: the setup-only changes, vm_ops: ``VmaNew``.
- :class:`VmAreaOwnedRef` — readable and proven the driver's own (``check_vma``), with typed
  private data.

``VmaRef``, ``VmaMixedMap`` and ``VmaNew`` are the upstream Rust names, aliases of the same
classes.
"""

from __future__ import annotations

from typing import NoReturn, final

from typing_extensions import deprecated

from ._page import Page
from ._virt import VmAreaMixedMapRef as VmAreaMixedMapRef
from ._virt import VmAreaMut as VmAreaMut
from ._virt import VmAreaNew as VmAreaNew
from ._virt import VmAreaOwnedRef as VmAreaOwnedRef
from ._virt import VmAreaRef as VmAreaRef
from .model.vm_flags import VmFlags as VmFlags

__all__ = [
    "VmAreaMixedMapRef",
    "VmAreaMut",
    "VmAreaNew",
    "VmAreaOwnedRef",
    "VmAreaRef",
    "VmFlags",
    "VmaMixedMap",
    "VmaNew",
    "VmaRef",
    "vm_insert_page",
]

#: Upstream name of :class:`VmAreaRef`.
VmaRef = VmAreaRef
#: Upstream name of :class:`VmAreaMixedMapRef`.
VmaMixedMap = VmAreaMixedMapRef
#: Upstream name of :class:`VmAreaNew`.
VmaNew = VmAreaNew


@final
class _CheckMixedMapFirst:
    """Uninhabited: the C-style ``vm_insert_page`` below cannot be called."""

    __slots__ = ()

    def __init__(self) -> None:
        raise TypeError("_CheckMixedMapFirst has no instances")


@deprecated(
    "vm_insert_page needs a VMA known to be VM_MIXEDMAP: `mixed = vma.as_mixedmap_vma()`, "
    "check it for None, then `mixed.vm_insert_page(addr, page)` (in ->mmap: "
    "`vma.set_mixedmap().vm_insert_page(addr, page)`)",
    category=None,
)
def vm_insert_page(vma: _CheckMixedMapFirst, addr: int, page: Page) -> NoReturn:
    """Not callable: use :meth:`VmAreaMixedMapRef.vm_insert_page`."""
    raise TypeError("vm_insert_page needs a VmAreaMixedMapRef: use vma.as_mixedmap_vma()")

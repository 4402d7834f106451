"""Contract insert-needs-mixedmap: as_mixedmap_vma() may return None; check it first."""

from safemm.page import Page
from safemm.virt import VmAreaRef


def unchecked(vma: VmAreaRef, page: Page) -> None:
    vma.as_mixedmap_vma().vm_insert_page(vma.start, page)  # type: ignore[union-attr]


def unchecked_local(vma: VmAreaRef, page: Page) -> None:
    mixed = vma.as_mixedmap_vma()
    mixed.vm_insert_page(vma.start, page)  # type: ignore[union-attr]

"""Contract insert-needs-mixedmap (arguments): vm_insert_page takes a Page and an int."""

from safemm.page import Page
from safemm.virt import VmAreaMixedMapRef


def bad_page(vma: VmAreaMixedMapRef, data: bytes, raw: object) -> None:
    vma.vm_insert_page(vma.start, data)  # type: ignore[arg-type]
    vma.vm_insert_page(vma.start, raw)  # type: ignore[arg-type]
    vma.vm_insert_page(vma.start, None)  # type: ignore[arg-type]


def bad_address(vma: VmAreaMixedMapRef, page: Page) -> None:
    vma.vm_insert_page("0x7f0000000000", page)  # type: ignore[arg-type]
    vma.vm_insert_page(1.5, page)  # type: ignore[arg-type]
    vma.vm_insert_page(None, page)  # type: ignore[arg-type]

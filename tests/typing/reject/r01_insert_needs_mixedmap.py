"""Contract insert-needs-mixedmap: vm_insert_page exists only on VmAreaMixedMapRef."""

from safemm import virt
from safemm.page import Page
from safemm.virt import VmAreaMut, VmAreaNew, VmAreaRef


def on_ref(vma: VmAreaRef, page: Page) -> None:
    vma.vm_insert_page(vma.start, page)  # type: ignore[attr-defined]


def on_mut(vma: VmAreaMut, page: Page) -> None:
    vma.vm_insert_page(vma.start, page)  # type: ignore[attr-defined]


def on_new(vma: VmAreaNew, page: Page) -> None:
    vma.vm_insert_page(vma.start, page)  # type: ignore[attr-defined]


def c_spelling(vma: VmAreaRef, page: Page) -> None:
    virt.vm_insert_page(vma, vma.start, page)  # type: ignore[arg-type, deprecated]

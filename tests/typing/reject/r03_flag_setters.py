"""Contract live-flags: flag setters exist only where the change is legal."""

from safemm.virt import VmAreaMixedMapRef, VmAreaMut, VmAreaRef


def on_ref(vma: VmAreaRef) -> None:
    vma.set_mixedmap()  # type: ignore[attr-defined]
    vma.set_dontcopy()  # type: ignore[attr-defined]
    vma.set_dontdump()  # type: ignore[attr-defined]
    vma.set_io()  # type: ignore[attr-defined]
    vma.set_dontexpand()  # type: ignore[attr-defined]
    vma.try_clear_maywrite()  # type: ignore[attr-defined]
    vma.try_clear_mayexec()  # type: ignore[attr-defined]
    vma.try_clear_mayread()  # type: ignore[attr-defined]


def on_mixedmap(vma: VmAreaMixedMapRef) -> None:
    vma.set_dontcopy()  # type: ignore[attr-defined]
    vma.set_mixedmap()  # type: ignore[attr-defined]
    vma.try_clear_maywrite()  # type: ignore[attr-defined]
    vma.try_clear_mayexec()  # type: ignore[attr-defined]


def setup_only_on_live(vma: VmAreaMut) -> None:
    vma.set_io()  # type: ignore[attr-defined]
    vma.set_dontexpand()  # type: ignore[attr-defined]
    vma.try_clear_mayread()  # type: ignore[attr-defined]
    vma.set_vm_ops(None, None)  # type: ignore[attr-defined]

"""Contracts live-flags and flags-sticky: no state changes VM_READ/WRITE/EXEC, clears
VM_MIXEDMAP/VM_PFNMAP, or sets VM_PFNMAP/VM_HUGETLB."""

from safemm.virt import VmAreaMixedMapRef, VmAreaMut, VmAreaNew, VmAreaRef, VmFlags


def on_new(vma: VmAreaNew) -> None:
    vma.set_flags(VmFlags.WRITE)  # type: ignore[attr-defined]
    vma.set_writable()  # type: ignore[attr-defined]
    vma.set_exec()  # type: ignore[attr-defined]
    vma.clear_read()  # type: ignore[attr-defined]
    vma.set_pfnmap()  # type: ignore[attr-defined]
    vma.set_hugetlb()  # type: ignore[attr-defined]
    vma.clear_mixedmap()  # type: ignore[attr-defined]
    vma.clear_pfnmap()  # type: ignore[attr-defined]
    vma.vm_flags_set(VmFlags.WRITE)  # type: ignore[attr-defined]
    vma.flags = VmFlags.READ | VmFlags.WRITE  # type: ignore[misc]


def on_mut(vma: VmAreaMut) -> None:
    vma.set_flags(VmFlags.EXEC)  # type: ignore[attr-defined]
    vma.set_pfnmap()  # type: ignore[attr-defined]
    vma.clear_mixedmap()  # type: ignore[attr-defined]
    vma.flags = VmFlags.NONE  # type: ignore[misc]


def on_ref(vma: VmAreaRef) -> None:
    vma.set_hugetlb()  # type: ignore[attr-defined]
    vma.flags = VmFlags.WRITE  # type: ignore[misc]


def on_mixedmap(vma: VmAreaMixedMapRef) -> None:
    vma.clear_mixedmap()  # type: ignore[attr-defined]
    vma.set_pfnmap()  # type: ignore[attr-defined]

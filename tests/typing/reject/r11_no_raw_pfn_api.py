"""Contracts pfn-outlives-page (H11) and zap-vma-ptes (H13): the safe layer has no way to map a
raw pfn (a special PTE, which holds no page reference) and no ``zap_vma_ptes`` (a silent no-op
on VM_MIXEDMAP VMAs); pages are inserted with ``vm_insert_page`` (refcounted) and zapped with
``zap_page_range_single`` or ``unmap_mapping_range``."""

from safemm import virt
from safemm.virt import VmAreaMixedMapRef, VmAreaMut, VmAreaNew, VmAreaOwnedRef, VmAreaRef


def map_raw_pfns(vma: VmAreaNew) -> None:
    vma.remap_pfn_range(vma.start, 0x1000, 4096)  # type: ignore[attr-defined]
    vma.vmf_insert_pfn(vma.start, 0x1000)  # type: ignore[attr-defined]
    vma.vm_map_pages([])  # type: ignore[attr-defined]


def insert_raw_pfns(vma: VmAreaMixedMapRef) -> None:
    vma.vmf_insert_mixed(vma.start, 0x1000)  # type: ignore[attr-defined]
    vma.vmf_insert_pfn(vma.start, 0x1000)  # type: ignore[attr-defined]
    vma.remap_pfn_range(vma.start, 0x1000, 4096)  # type: ignore[attr-defined]


def zap_vma_ptes(ref: VmAreaRef, mixed: VmAreaMixedMapRef, mut: VmAreaMut) -> None:
    ref.zap_vma_ptes(ref.start, 4096)  # type: ignore[attr-defined]
    mixed.zap_vma_ptes(mixed.start, 4096)  # type: ignore[attr-defined]
    mut.zap_vma_ptes(mut.start, 4096)  # type: ignore[attr-defined]


def owned_zap_vma_ptes(vma: VmAreaOwnedRef[int]) -> None:
    vma.zap_vma_ptes(vma.start, 4096)  # type: ignore[attr-defined]


def c_spellings(vma: VmAreaRef) -> None:
    virt.zap_vma_ptes(vma, vma.start, 4096)  # type: ignore[attr-defined]
    virt.remap_pfn_range(vma, vma.start, 0x1000, 4096)  # type: ignore[attr-defined]

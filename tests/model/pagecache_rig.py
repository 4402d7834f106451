"""A raw driver whose pages live in a per-open anonymous inode's page cache, for the model's
page-cache and reclaim tests (tests/model/test_filemap.py, tests/model/test_vmscan.py)."""

from __future__ import annotations

from collections.abc import Callable

from safemm.model import (
    GFP_KERNEL,
    AddressSpace,
    AddressSpaceOperationsStruct,
    File,
    FileOperationsStruct,
    Kernel,
    Page,
    Process,
    Vma,
    VmFault,
    VmOperationsStruct,
    alloc_anon_inode,
)
from safemm.model.filemap import filemap_add_folio, filemap_lock_folio, folio_unlock
from safemm.model.mm_types import VM_FAULT_LOCKED, VM_FAULT_SIGBUS
from safemm.model.mman import MAP_SHARED, PAGE_SIZE, PROT_READ
from safemm.model.page_alloc import PageKind

OWNER = "pagecache-rig"


class Rig:
    """``/dev/pc``: ``->open`` gives the file its own anonymous inode with ``a_ops`` whose
    ``release_folio`` answers from ``refuse`` (and records each call); ``->fault`` maps the
    page-cache folio at the offset (``filemap_lock_folio``, ``VM_FAULT_LOCKED``) or SIGBUS."""

    def __init__(self, k: Kernel, *, release_always: bool = True) -> None:
        self.k = k
        self.refuse: set[int] = set()
        self.calls: list[tuple[int, int]] = []
        self.mapping: AddressSpace | None = None
        #: Run inside release_folio (to test what a hook may do there).
        self.in_release: Callable[[], None] | None = None
        aops = AddressSpaceOperationsStruct("pc_aops", release_folio=self._release, owner=OWNER)

        def open_(f: File) -> None:
            m = alloc_anon_inode(k).i_mapping
            m.a_ops = aops
            m.release_always = release_always
            f.f_mapping = m
            self.mapping = m

        def fault(vmf: VmFault) -> int:
            f = vmf.vma.vm_file
            assert f is not None
            page = filemap_lock_folio(f.f_mapping, vmf.pgoff)
            if page is None:
                return VM_FAULT_SIGBUS
            vmf.page = page
            return VM_FAULT_LOCKED

        vm_ops = VmOperationsStruct("pc", fault=fault, owner=OWNER)

        def mmap(f: File, vma: Vma) -> None:
            vma.vm_ops = vm_ops

        k.register_device(
            "/dev/pc", FileOperationsStruct("pc", open=open_, mmap=mmap, owner=OWNER)
        )

    def _release(self, page: Page, gfp: int) -> bool:
        self.calls.append((page.index, gfp))
        if self.in_release is not None:
            self.in_release()
        return page.index not in self.refuse

    def open_map(self, p: Process, npages: int = 4) -> int:
        """Open the device in ``p`` and map ``npages`` read-only shared pages; the address."""
        fd = p.open("/dev/pc")
        return p.mmap(None, npages * PAGE_SIZE, PROT_READ, MAP_SHARED, fd)

    def add(self, index: int, data: bytes = b"") -> Page:
        """Allocate a folio, fill it, add it to the page cache at ``index`` and unlock it; the
        caller keeps the allocation's reference (put it to leave only the cache's)."""
        assert self.mapping is not None
        page = self.k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
        page.write(0, data)
        filemap_add_folio(self.mapping, page, index, int(GFP_KERNEL))
        folio_unlock(self.k, page)
        return page

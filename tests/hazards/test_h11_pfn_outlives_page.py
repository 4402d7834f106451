"""H11: special (pfn) PTEs that outlive the memory behind them (mm/memory.c
``remap_pfn_range``, ``vmf_insert_pfn``, ``vmf_insert_mixed`` on ``pte_special`` arches: no
page reference; kernel/fork.c ``dup_mmap`` → ``copy_page_range`` copies such PTEs verbatim).

A driver that maps RAM it allocated with ``remap_pfn_range`` and frees it before every such
PTE is zapped — including the copies fork made — leaves user space a window onto memory that
is handed out again: the next owner's data is readable (and writable) through the stale PTE.
Linux checks nothing. Strict mode reports ``pfn-outlives-page`` when a page is freed while
special PTEs still name it. The safe layer has no way to make a special PTE for a struct page
(reject/r11_no_raw_pfn_api.py): ``vm_insert_page`` takes a reference, so freeing the driver's
:class:`~safemm.page.Page` while it is mapped is safe.
"""

from __future__ import annotations

import pytest

from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    Process,
)
from safemm.fs import File
from safemm.model import memory as raw_mem
from safemm.model import mmap_lock as raw_lock
from safemm.model.fs import File as RawFile

from .support import (
    BASE,
    ELSEWHERE,
    NPAGES,
    Buf,
    P,
    RawMixedDriver,
    RawPfnDriver,
    Rig,
    contracts,
    doc_splat,
    splat,
    state_of,
)


def _pfn_setup(strict: bool) -> tuple[Kernel, RawPfnDriver, Process, int]:
    k = Kernel(strict=strict, panic_on_warn=False)
    drv = RawPfnDriver(k, "/dev/pfnram", device_memory=False)
    proc = k.spawn("victim")
    fd = proc.open("/dev/pfnram")
    proc.mmap(BASE, P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    assert proc.read(BASE, 13) == b"driver secret"
    return k, drv, proc, fd


def _free(drv: RawPfnDriver) -> None:
    def action(file: RawFile) -> object:
        drv.free_pages()
        return None

    drv.action = action


@doc_splat("h11")
def demo_h11() -> str:
    """The page freed under a remap_pfn_range mapping, strict mode."""
    k, drv, proc, fd = _pfn_setup(True)
    _free(drv)
    proc.ioctl(fd, 0)
    return splat(k, "pfn-outlives-page").render()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h11_freed_page_still_mapped_by_remap_pfn_range(strict: bool) -> None:
    """H11 (remap_pfn_range takes no reference): the driver frees the RAM page it mapped;
    strict mode reports pfn-outlives-page. In Linux nothing is said, the frame is reused by
    another process's anonymous memory, and the victim reads that process's data."""
    k, drv, proc, fd = _pfn_setup(strict)
    _free(drv)
    proc.ioctl(fd, 0)
    assert contracts(k) == (["pfn-outlives-page"] if strict else [])
    other = k.spawn("other")
    other.mmap(ELSEWHERE, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    other.write(ELSEWHERE, b"other's secret")  # its anonymous page is the freed frame
    assert proc.read(BASE, 14) == b"other's secret"
    other.exit()
    proc.exit()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h11_fork_copy_outlives_the_zap(strict: bool) -> None:
    """H11 (copy_page_range copies special PTEs): the driver zaps its mapping in the parent
    before freeing, but fork made a copy; strict mode reports the child's PTE."""
    k, drv, proc, fd = _pfn_setup(strict)
    child = proc.fork()

    def zap_then_free(file: RawFile) -> object:
        mm = proc.mm
        raw_lock.mmap_read_lock(mm)
        try:
            vma = raw_lock.vma_lookup(mm, BASE)
            assert vma is not None
            raw_mem.zap_page_range_single(vma, BASE, P)
        finally:
            raw_lock.mmap_read_unlock(mm)
        drv.free_pages()
        return None

    drv.action = zap_then_free
    proc.ioctl(fd, 0)
    assert contracts(k) == (["pfn-outlives-page"] if strict else [])
    if strict:
        assert "1 special PTE(s)" in k.dmesg[-1]
    assert child.mm.pgtables.lookup(BASE // P) is not None
    child.exit()
    proc.exit()


def test_h11_vmf_insert_mixed_ptes_outlive_the_pages() -> None:
    """H11 (vmf_insert_mixed: a special PTE even for RAM on x86): pages faulted in that way
    and freed without a zap are reported once each."""
    k = Kernel(panic_on_warn=False)
    drv = RawMixedDriver(k, "/dev/mixed")
    proc = k.spawn("victim")
    fd = proc.open("/dev/mixed")
    proc.mmap(BASE, NPAGES * P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    for i in range(NPAGES):
        assert proc.read(BASE + i * P, 12) == f"mixed page {i}".encode()
    drv.action = lambda f: drv.free_pages()
    proc.ioctl(fd, 0)
    assert contracts(k) == ["pfn-outlives-page"] * NPAGES
    proc.exit()


def test_h11_correct_raw_driver_unmaps_first() -> None:
    """H11, correct C driver: unmap_mapping_range over its file (every mm, fork copies too)
    before freeing — nothing left to report."""
    k = Kernel()
    drv = RawPfnDriver(k, "/dev/pfnram", device_memory=False)
    proc = k.spawn("victim")
    fd = proc.open("/dev/pfnram")
    proc.mmap(BASE, P, PROT_READ, MAP_SHARED | MAP_FIXED, fd)
    child = proc.fork()

    def unmap_then_free(file: RawFile) -> object:
        raw_mem.unmap_mapping_range(file.f_mapping, 0, 0)
        drv.free_pages()
        return None

    drv.action = unmap_then_free
    proc.ioctl(fd, 0)
    assert child.mm.pgtables.lookup(BASE // P) is None
    assert k.dmesg == []
    child.exit()
    proc.exit()
    k.check_invariants()


def test_h11_safe_layer_page_lives_while_mapped() -> None:
    """H11, safe layer: vm_insert_page takes its own reference, so the driver may free its
    Page while it is mapped: the user keeps reading the driver's data (not someone else's),
    the frame is freed only at munmap, and nothing is reported."""
    rig = Rig()
    pfns: list[int] = []

    def free_while_mapped(file: File[Buf]) -> object:
        state = state_of(file)
        pfns.append(state.pages[0].pfn)
        state.pages[0].free()
        state.pages = state.pages[1:]
        return None

    rig.run(free_while_mapped)
    page = rig.kernel.pages.pfn_to_page(pfns[0])
    assert page.refcount == page.mapcount == 1  # the PTE's reference
    rig.proc.mmap(ELSEWHERE, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    rig.proc.write(ELSEWHERE, b"x")
    assert rig.proc.read(BASE, 13) == b"hazard page 0"
    rig.proc.munmap(BASE, NPAGES * P)
    assert page.refcount == 0
    assert rig.kernel.dmesg == []
    rig.finish()

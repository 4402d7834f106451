"""H9: VM_WRITE or VM_EXEC gained after pages were inserted (mm/mprotect.c
``mprotect_fixup`` → ``change_protection`` rewrites the existing PTEs; mm/memory.c
``do_wp_page`` → ``wp_page_shared`` / ``wp_pfn_shared`` make a shared PTE writable on a write
fault).

mprotect may raise a VMA's access up to its VM_MAY* ceiling; a driver that never cleared
VM_MAYWRITE / VM_MAYEXEC in ``->mmap`` lets user space make its inserted (read-only) pages
writable or executable afterwards. With write notification (``->page_mkwrite``), the PTEs stay
read-only after mprotect and the first write fault makes them writable instead. Linux checks
none of it (the driver's job); strict mode reports ``access-after-insert`` at the mprotect and
at the write fault. The safe layer's ``try_clear_maywrite()`` / ``try_clear_mayexec()`` make
mprotect fail with EACCES, no state can set VM_WRITE/VM_EXEC (reject/r4), and safe drivers
have no ``->page_mkwrite``.
"""

from __future__ import annotations

import errno

import pytest

from safemm import (
    MAP_FIXED,
    MAP_SHARED,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    KernelError,
    Process,
)
from safemm.fs import File
from safemm.model import memory as raw_mem
from safemm.model import vm_flags_update as raw_flags
from safemm.model.fs import File as RawFile
from safemm.model.fs import FileOperationsStruct
from safemm.model.mm_types import Vma, VmFault, VmOperationsStruct
from safemm.model.page_alloc import GFP_KERNEL
from safemm.model.vm_flags import VM_MIXEDMAP
from safemm.testing import SplatKind, expect_splat

from .support import BASE, NPAGES, Buf, HazardDriver, P, Rig, contracts, doc_splat, splat

RW = PROT_READ | PROT_WRITE


@doc_splat("h9-mprotect")
def demo_h9_mprotect() -> str:
    """mprotect(PROT_WRITE) on the driver's mapping, strict mode."""
    rig = Rig(panic_on_warn=False, driver=HazardDriver(clear_maywrite=False))
    rig.proc.mprotect(BASE, NPAGES * P, RW)
    return splat(rig.kernel, "access-after-insert").render()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h9_mprotect_write_after_insert(strict: bool) -> None:
    """H9 (mprotect_fixup, change_protection): the driver never cleared VM_MAYWRITE; mprotect
    makes its inserted page writable. Strict mode reports access-after-insert and refuses the
    change; in Linux the user's write lands in the driver's page."""
    rig = Rig(strict=strict, driver=HazardDriver(clear_maywrite=False))
    if strict:
        with expect_splat("access-after-insert", SplatKind.STRICT) as exc:
            rig.proc.mprotect(BASE, NPAGES * P, RW)
        assert "VM_WRITE" in str(exc.error)
        assert not rig.vma_at(BASE).vm_flags & PROT_WRITE  # VM_WRITE == PROT_WRITE == 2
    else:
        rig.proc.mprotect(BASE, NPAGES * P, RW)
        rig.proc.write(BASE, b"user")

        def driver_reads(file: File[Buf]) -> object:
            f = file.private_data
            assert f is not None
            return f.pages[0].read(0, 4)

        assert rig.run(driver_reads) == b"user"
        assert rig.kernel.dmesg == []
    rig.finish()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h9_mprotect_exec_after_insert(strict: bool) -> None:
    """H9 (mprotect_fixup): VM_EXEC gained after insert (VM_MAYEXEC kept): strict mode
    reports access-after-insert; Linux allows it."""
    rig = Rig(strict=strict)
    if strict:
        with expect_splat("access-after-insert", SplatKind.STRICT) as exc:
            rig.proc.mprotect(BASE, NPAGES * P, PROT_READ | PROT_EXEC)
        assert "VM_EXEC" in str(exc.error)
    else:
        rig.proc.mprotect(BASE, NPAGES * P, PROT_READ | PROT_EXEC)
        assert rig.kernel.dmesg == []
    rig.finish()


class RawMkwriteDriver:
    """A C-style driver that wants write notification (``->page_mkwrite``, like fbdev's
    deferred I/O) and inserts its page in ``->mmap``: its shared writable PTEs start
    read-only (``vma_wants_writenotify``) and the first write fault makes them writable."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.page = kernel.pages.alloc_page(int(GFP_KERNEL))
        self.page.write(0, b"driver data")
        self.vm_ops = VmOperationsStruct(
            "mkwrite_vm_ops", page_mkwrite=self._page_mkwrite, owner=self
        )
        kernel.register_device(
            "/dev/mkwrite", FileOperationsStruct("mkwrite", mmap=self._mmap, owner=self)
        )

    def _mmap(self, file: RawFile, vma: Vma) -> None:
        raw_flags.vm_flags_set(vma, VM_MIXEDMAP)
        vma.vm_ops = self.vm_ops
        raw_mem.vm_insert_page(vma, vma.vm_start, self.page)

    def _page_mkwrite(self, vmf: VmFault) -> int:
        return 0  # "fine, mark it dirty"


def _mkwrite_proc(strict: bool, prot: int) -> tuple[Kernel, RawMkwriteDriver, Process]:
    k = Kernel(strict=strict, panic_on_warn=False)
    drv = RawMkwriteDriver(k)
    proc = k.spawn("victim")
    fd = proc.open("/dev/mkwrite")
    proc.mmap(BASE, P, prot, MAP_SHARED | MAP_FIXED, fd)
    return k, drv, proc


def _pte_writable(proc: Process) -> bool:
    pte = proc.mm.pgtables.lookup(BASE // P)
    assert pte is not None
    return pte.write


@doc_splat("h9-write-fault")
def demo_h9_write_fault() -> str:
    """The write fault on the driver's page, strict mode."""
    k, _, proc = _mkwrite_proc(True, PROT_READ)
    proc.mprotect(BASE, P, RW)
    proc.write(BASE, b"user")
    return k.dmesg[-1]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h9_write_fault_makes_the_shared_pte_writable(strict: bool) -> None:
    """H9 (do_wp_page → wp_page_shared → wp_page_reuse): after mprotect(PROT_WRITE) the PTE
    is still read-only (write notification); the user's write fault makes it writable and
    the write lands in the driver's page. Strict mode reports both steps."""
    k, drv, proc = _mkwrite_proc(strict, PROT_READ)
    proc.mprotect(BASE, P, RW)
    assert not _pte_writable(proc)
    proc.write(BASE, b"user")
    assert _pte_writable(proc)
    assert drv.page.read(0, 4) == b"user"
    assert contracts(k) == (["access-after-insert"] * 2 if strict else [])
    if strict:
        assert "write fault" in k.dmesg[-1]
    proc.exit()


def test_h9_write_fault_alone_is_reported() -> None:
    """H9 (do_wp_page): on a mapping writable from the start, the write fault that makes the
    driver's read-only PTE writable is itself reported in strict mode."""
    k, _, proc = _mkwrite_proc(True, RW)
    proc.write(BASE, b"user")
    assert contracts(k) == ["access-after-insert"]
    proc.exit()


def test_h9_safe_layer_clears_may_bits() -> None:
    """H9, safe layer: the correct driver clears VM_MAYWRITE and VM_MAYEXEC in ->mmap
    (try_clear_maywrite, try_clear_mayexec); mprotect then fails with EACCES in both modes
    and its pages stay read-only."""
    for strict in (True, False):
        driver = HazardDriver(clear_maywrite=True, clear_mayexec=True)
        rig = Rig(strict=strict, driver=driver)
        for prot in (RW, PROT_READ | PROT_EXEC):
            with pytest.raises(KernelError) as err:
                rig.proc.mprotect(BASE, NPAGES * P, prot)
            assert err.value.errno == errno.EACCES
        pte = rig.proc.mm.pgtables.lookup(BASE // P)
        assert pte is not None
        assert not pte.write
        assert rig.kernel.dmesg == []
        rig.finish()

"""The reports that name the rarer contracts: ``->mmap`` moving its VMA or adding
VM_MAYWRITE (mmap-hook), a split outside the VMA (split-range), a fault handler that succeeds
without mapping anything (fault-progress), a lock held on the return to user space
(lock-held-return) and a dropped reference (leak)."""

from __future__ import annotations

import pytest

from safemm.model import (
    FileOperationsStruct,
    InvariantError,
    Kernel,
    Vma,
    VmFault,
    VmOperationsStruct,
)
from safemm.model.mm_types import VM_FAULT_NOPAGE
from safemm.model.mman import MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_READ
from safemm.model.mmap_lock import mmap_read_lock, mmap_write_lock, mmap_write_unlock
from safemm.model.vm_flags import VM_MAYWRITE
from safemm.model.vma import split_vma
from safemm.testing import SplatKind, expect_splat


def _device(k: Kernel, mmap: object) -> None:
    assert callable(mmap)
    k.register_device("/dev/c", FileOperationsStruct("c", mmap=mmap, owner="c"))


def test_mmap_moving_the_vma_warns() -> None:
    """mm/mmap.c mmap_region: WARN_ON_ONCE(addr != vma->vm_start) after ->mmap."""
    k = Kernel()

    def mmap(file: object, vma: Vma) -> None:
        vma.vm_start += PAGE_SIZE

    _device(k, mmap)
    p = k.spawn()
    fd = p.open("/dev/c")
    with expect_splat("mmap-hook", SplatKind.WARNING):
        p.mmap(None, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, fd)


def test_mmap_adding_maywrite_warns() -> None:
    """mm/mmap.c mmap_region: VM_WARN_ON_ONCE when ->mmap adds VM_MAYWRITE that do_mmap had
    cleared (a read-only shared file mapping)."""
    k = Kernel(strict=False)

    def mmap(file: object, vma: Vma) -> None:
        vma.vm_flags |= VM_MAYWRITE

    _device(k, mmap)
    p = k.spawn()
    fd = p.open("/dev/c", 0)  # O_RDONLY: do_mmap clears VM_MAYWRITE on a shared mapping
    with expect_splat("mmap-hook", SplatKind.WARNING):
        p.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)


def test_split_outside_the_vma_warns() -> None:
    """mm/vma.c __split_vma: WARN_ON(vma->vm_start >= addr) / WARN_ON(vma->vm_end <= addr)."""
    k = Kernel()
    p = k.spawn()
    a = p.mmap(None, 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE | 0x20)
    vma = p.mm.mm_mt.load(a)
    assert vma is not None
    with k.enter(p.task, "test"):
        mmap_write_lock(p.mm)
        try:
            with expect_splat("split-range", SplatKind.WARNING):
                split_vma(vma, a, new_below=False)
        finally:
            mmap_write_unlock(p.mm)


def test_fault_succeeding_without_a_page_is_reported() -> None:
    """A ->fault that returns VM_FAULT_NOPAGE without installing a PTE makes the access fault
    for ever in Linux; the model reports it after a few retries (fault-progress)."""
    k = Kernel()

    def fault(vmf: VmFault) -> int:
        return VM_FAULT_NOPAGE

    ops = VmOperationsStruct("lazy", fault=fault, owner="c")

    def mmap(file: object, vma: Vma) -> None:
        vma.vm_ops = ops

    _device(k, mmap)
    p = k.spawn()
    fd = p.open("/dev/c")
    a = p.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    with expect_splat("fault-progress", SplatKind.BUG):
        p.read(a, 1)


def test_lock_held_on_return_to_user_space() -> None:
    """kernel/locking/lockdep.c lockdep_sys_exit: a lock still held when a syscall returns."""
    k = Kernel(panic_on_warn=False)
    p = k.spawn()
    with k.enter(p.task, "sys_test"):
        mmap_read_lock(p.mm)
    assert k.splats[-1].contract == "lock-held-return"
    with pytest.raises(InvariantError, match="lock-held-return"):
        k.check_invariants()


def test_dropped_reference_is_a_leak() -> None:
    """A finaliser reporting a dropped reference records a leak splat; check_invariants
    raises it once."""
    k = Kernel()
    k.leak("Page pfn 0x5", "a Page was dropped without free()")
    assert k.splats[-1].contract == "leak"
    with pytest.raises(InvariantError, match="no-leaks"):
        k.check_invariants()
    k.check_invariants()  # reported once

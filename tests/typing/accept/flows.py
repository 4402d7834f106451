"""The legal flows of the safe layer, with the types mypy must infer."""

from typing import assert_type

from typing_extensions import override

from safemm.fs import File, FileOperations, VmFault, VmFaultReason, VmOperations
from safemm.mm import (
    Mm,
    MmapReadGuard,
    MmapWriteGuard,
    MmWithUser,
    MmWithUserAsync,
    OwnedMm,
    OwnedMmWithUser,
    VmaReadGuard,
)
from safemm.page import GFP_KERNEL, Page, PageLock
from safemm.shrinker import ListLru, LruStatus, LruWalk
from safemm.sync import Mutex, MutexGuard, SpinLock, SpinLockGuard
from safemm.task import Task, current
from safemm.virt import (
    VmaMixedMap,
    VmaNew,
    VmAreaMixedMapRef,
    VmAreaMut,
    VmAreaNew,
    VmAreaOwnedRef,
    VmAreaRef,
    VmaRef,
    VmFlags,
)


class Owner:
    """A driver's per-mapping state."""


def mm_references(mm: Mm) -> None:
    user = mm.mmget_not_zero()
    assert_type(user, OwnedMmWithUser | None)
    if user is None:
        return
    grabbed = user.mmgrab()
    assert_type(grabbed, OwnedMm)
    grabbed.mmdrop()
    asynchronous = user.into_mmput_async()
    assert_type(asynchronous, MmWithUserAsync)
    asynchronous.mmput()


def owned_references_are_context_managers(mm: Mm, borrowed: MmWithUser) -> None:
    user = mm.mmget_not_zero()
    if user is None:
        return
    with user as same, user.mmap_read_lock() as guard:
        assert_type(same, OwnedMmWithUser)
        assert_type(guard, MmapReadGuard)
    with borrowed.mmgrab() as grabbed:
        assert_type(grabbed, OwnedMm)
        assert_type(grabbed.mmget_not_zero(), OwnedMmWithUser | None)
    again = mm.mmget_not_zero()
    if again is not None:
        with again.into_mmput_async() as asynchronous:
            assert_type(asynchronous, MmWithUserAsync)
            asynchronous.mmap_read_lock().unlock()


def owned_references_lend(owned: OwnedMmWithUser, grabbed: OwnedMm) -> None:
    """An owned reference is accepted wherever a borrowed one is (Rust's ``Deref``)."""
    borrowed_user: MmWithUser = owned
    borrowed_mm: Mm = grabbed
    assert borrowed_user.is_same_mm(borrowed_mm) in {True, False}


def borrowed_references(vma: VmAreaRef) -> None:
    mm = vma.mm
    assert_type(mm, MmWithUser)
    with mm.mmap_read_lock():
        pass
    grabbed = mm.mmgrab()  # keeping a borrowed mm takes a reference of one's own
    assert_type(grabbed, OwnedMm)
    grabbed.mmdrop()


def read_lock_and_insert(user: MmWithUser, page: Page) -> None:
    with user.mmap_read_lock() as guard:
        assert_type(guard, MmapReadGuard)
        vma = guard.vma_lookup(0x7F0000000000)
        assert_type(vma, VmAreaRef | None)
        if vma is None:
            return
        assert_type(vma.start, int)
        assert_type(vma.flags, VmFlags)
        assert_type(vma.mm, MmWithUser)
        mixed = vma.as_mixedmap_vma()
        assert_type(mixed, VmAreaMixedMapRef | None)
        if mixed is not None:
            assert_type(mixed.vm_insert_page(vma.start, page), None)
        vma.zap_page_range_single(vma.start, 4096)


def trylock(user: MmWithUser) -> None:
    guard = user.mmap_read_trylock()
    assert_type(guard, MmapReadGuard | None)
    if guard is not None:
        guard.unlock()


def vma_lock(user: MmWithUser) -> None:
    guard = user.lock_vma_under_rcu(0x7F0000000000)
    assert_type(guard, VmaReadGuard | None)
    if guard is None:
        return
    with guard:
        assert_type(guard.vma, VmAreaRef)


def write_lock(user: MmWithUser) -> None:
    guard = user.mmap_write_lock()
    assert_type(guard, MmapWriteGuard)
    vma = guard.vma_lookup(0x7F0000000000)
    assert_type(vma, VmAreaMut | None)
    if vma is not None:
        assert_type(vma.set_mixedmap(), VmAreaMixedMapRef)
        vma.set_dontcopy()
        vma.set_dontdump()
        vma.try_clear_maywrite()
        vma.try_clear_mayexec()
    read = guard.downgrade()
    assert_type(read, MmapReadGuard)
    read.unlock()


def write_guard_is_a_read_guard(guard: MmapWriteGuard) -> MmapReadGuard:
    return guard


def mut_is_a_ref(vma: VmAreaMut) -> VmAreaRef:
    return vma


class Ops(VmOperations[Owner]):
    def owned(self, vma: VmAreaRef, owner: Owner) -> None:
        mine = self.check_vma(vma, owner)
        assert_type(mine, VmAreaOwnedRef[Owner] | None)
        if mine is not None:
            assert_type(mine.private_data, Owner)
            assert_type(mine.as_mixedmap_vma(), VmAreaMixedMapRef | None)

    @override
    def fault(self, vmf: VmFault[Owner]) -> PageLock | VmFaultReason:
        assert_type(vmf.vma, VmAreaOwnedRef[Owner])
        assert_type(vmf.pgoff, int)
        return VmFaultReason.SIGBUS


class Driver(FileOperations[Owner]):
    def __init__(self) -> None:
        super().__init__(Owner, "accept-driver")
        self.ops = Ops(Owner)

    @override
    def mmap(self, file: File[Owner], vma: VmAreaNew) -> None:
        assert_type(file.private_data, Owner | None)
        assert_type(vma.readable, bool)
        vma.try_clear_maywrite()
        vma.set_dontcopy()
        vma.set_io()
        vma.set_dontexpand()
        mixed = vma.set_mixedmap()
        assert_type(mixed, VmAreaMixedMapRef)
        vma.set_vm_ops(self.ops, Owner())
        task = current()
        assert_type(task, Task)
        assert_type(task.mm(), MmWithUser | None)
        page = Page.alloc_page(GFP_KERNEL)
        mixed.vm_insert_page(vma.start, page)
        page.free()


def locks(m: Mutex, s: SpinLock) -> None:
    with m.lock() as g:
        assert_type(g, MutexGuard)
    held = s.try_lock()
    assert_type(held, SpinLockGuard | None)


def lru(items: ListLru[int]) -> None:
    def isolate(item: int, walk: LruWalk[int]) -> LruStatus:
        walk.isolate(item)
        return LruStatus.REMOVED

    assert_type(items.walk(isolate, 10), int)


def aliases() -> None:
    assert VmaRef is VmAreaRef
    assert VmaMixedMap is VmAreaMixedMapRef
    assert VmaNew is VmAreaNew

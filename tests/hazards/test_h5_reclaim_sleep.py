"""H5: sleeping in a shrinker or list_lru callback, and blocking on a lock the allocating
task already holds (mm/list_lru.c ``__list_lru_walk_one`` calls the isolate callback under
the list's spinlock; mm/vmscan.c / mm/page_alloc.c ``__alloc_pages_direct_reclaim`` runs the
shrinkers inside *any* allocation that finds memory short, in the allocating task).

In the callback, anything that may sleep — ``mmap_read_lock``, ``mutex_lock``,
``unmap_mapping_range`` (``i_mmap_rwsem``), ``zap_page_range_single``, ``mmput``, a
GFP_KERNEL allocation — is "BUG: sleeping function called from invalid context"
(kernel/sched/core.c ``__might_resched``, CONFIG_DEBUG_ATOMIC_SLEEP). A blocking lock in a
shrinker is a deadlock when reclaim runs inside an allocation made under that lock; lockdep
sees it coming through the ``fs_reclaim`` map ("possible circular locking dependency"), and
the model reports the actual self-deadlock instead of hanging. Both are kernel checks (debug
builds), so strict mode adds nothing here.
The types cannot say "may sleep", but ``safemm check`` reports the sleeping call statically
(tests/atomic/reject/a7_h5_twins.py); the
correct shrinker (the demo's eager-insert driver) trylocks everything and drops the list
lock (``LruWalk.unlock``) before it zaps.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typing_extensions import override

from safemm import MAP_FIXED, MAP_SHARED, PROT_READ, Deadlock, Kernel, KernelError
from safemm.demo.drivers import EagerInsertDriver
from safemm.demo.drivers.abi import (
    DEVICE_PATH,
    SAFEBINDER_FREE,
    SAFEBINDER_GET_ID,
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
    parse_recv,
)
from safemm.fs import AddressSpace, File
from safemm.page import GFP_KERNEL, GFP_NOWAIT, Page
from safemm.shrinker import SHRINK_STOP, ListLru, LruStatus, LruWalk, ShrinkControl, Shrinker
from safemm.sync import Mutex
from safemm.testing import SplatKind, expect_splat

from .support import BASE, NPAGES, Buf, HazardDriver, P, Rig, doc_splat, splat

#: An isolate callback body: what the driver does with the list lock held.
Body = Callable[["LruDriver", Page], None]


class LruShrinker(Shrinker):
    """Walks the driver's list_lru with the driver's isolate callback, or (``direct``) takes
    the driver's mutex without a list walk."""

    def __init__(self, driver: LruDriver) -> None:
        super().__init__("hazard-lru")
        self.driver = driver

    @override
    def count_objects(self, sc: ShrinkControl) -> int:
        return self.driver.lru.count()

    @override
    def scan_objects(self, sc: ShrinkControl) -> int:
        return self.driver.scan(sc)


class LruDriver(HazardDriver):
    """:class:`HazardDriver` plus a list_lru of spare pages and a shrinker over it.

    ``body`` is what the isolate callback does before it frees a page (the hazard under
    test); ``blocking`` makes ``scan_objects`` take ``mutex`` with ``lock()`` (else
    ``try_lock()``, giving up with SHRINK_STOP).
    """

    def __init__(self) -> None:
        super().__init__("lrudrv", own_mapping=True)
        self.mutex = Mutex("lrudrv.mutex")
        self.body: Body | None = None
        self.blocking = False
        self.mm_user_source: Buf | None = None
        self.mapping: AddressSpace | None = None
        self._lru: ListLru[Page] | None = None
        self.freed = 0

    @property
    def lru(self) -> ListLru[Page]:
        assert self._lru is not None
        return self._lru

    @override
    def probe(self) -> None:
        self._lru = ListLru("lrudrv_spare")
        LruShrinker(self).register()

    @override
    def open(self, file: File[Buf]) -> None:
        super().open(file)
        self.mapping = file.mapping
        self.mm_user_source = file.private_data

    def add_spare(self) -> Page:
        """Allocate a spare page (no reclaim) and put it on the list."""
        page = Page.alloc_page(GFP_NOWAIT)
        self.lru.add(page)
        return page

    def scan(self, sc: ShrinkControl) -> int:
        if self.blocking:
            self.mutex.lock().unlock()  # the bug: a blocking lock in reclaim
        else:
            guard = self.mutex.try_lock()
            if guard is None:
                return SHRINK_STOP
            guard.unlock()
        return self.lru.walk(self.isolate, sc.nr_to_scan)

    def isolate(self, page: Page, walk: LruWalk[Page]) -> LruStatus:
        if self.body is not None:
            self.body(self, page)
        walk.isolate(page)
        page.free()
        self.freed += 1
        return LruStatus.REMOVED


# ---------------------------------------------------------------------------- sleeping bodies


def _mutex(d: LruDriver, page: Page) -> None:
    d.mutex.lock().unlock()


def _mmap_read_lock(d: LruDriver, page: Page) -> None:
    state = d.mm_user_source
    assert state is not None
    assert state.mm is not None
    user = state.mm.mmget_not_zero()
    assert user is not None
    with user.into_mmput_async() as async_user:
        async_user.mmap_read_lock().unlock()


def _unmap_mapping_range(d: LruDriver, page: Page) -> None:
    assert d.mapping is not None
    d.mapping.unmap_mapping_range(0, P)


def _zap(d: LruDriver, page: Page) -> None:
    state = d.mm_user_source
    assert state is not None
    assert state.mm is not None
    user = state.mm.mmget_not_zero()
    assert user is not None
    with user.into_mmput_async() as async_user:
        guard = async_user.mmap_read_trylock()
        assert guard is not None
        with guard:
            vma = guard.vma_lookup(BASE)
            assert vma is not None
            vma.zap_page_range_single(BASE, P)


def _mmput(d: LruDriver, page: Page) -> None:
    state = d.mm_user_source
    assert state is not None
    assert state.mm is not None
    user = state.mm.mmget_not_zero()
    assert user is not None
    user.mmput()


def _alloc(d: LruDriver, page: Page) -> None:
    Page.alloc_page(GFP_KERNEL).free()


SLEEPERS: dict[str, Body] = {
    "mutex_lock": _mutex,
    "mmap_read_lock": _mmap_read_lock,
    "unmap_mapping_range": _unmap_mapping_range,
    "zap_page_range_single": _zap,
    "mmput": _mmput,
    "alloc_page(GFP_KERNEL)": _alloc,
}


def _lru_rig(*, panic_on_warn: bool = True, strict: bool = True, spares: int = 2) -> Rig:
    rig = Rig(driver=LruDriver(), panic_on_warn=panic_on_warn, strict=strict)
    driver = rig.driver
    assert isinstance(driver, LruDriver)

    def fill(file: File[Buf]) -> object:
        for _ in range(spares):
            driver.add_spare()
        return None

    rig.run(fill)
    return rig


@doc_splat("h5-sleep")
def demo_h5_sleep() -> str:
    """mmap_read_lock in a list_lru isolate callback, under kswapd."""
    rig = _lru_rig(panic_on_warn=False, spares=1)
    driver = rig.driver
    assert isinstance(driver, LruDriver)
    driver.body = _mmap_read_lock
    rig.kernel.shrink()
    return splat(rig.kernel, "might-sleep").render()


@pytest.mark.parametrize("op", list(SLEEPERS))
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "linux"])
def test_h5_sleeping_in_an_isolate_callback(op: str, strict: bool) -> None:
    """H5 (list_lru_walk holds the list spinlock): every sleeping operation in the isolate
    callback is "BUG: sleeping function called from invalid context" (might-sleep), in both
    modes (a DEBUG_ATOMIC_SLEEP kernel check)."""
    rig = _lru_rig(strict=strict)
    driver = rig.driver
    assert isinstance(driver, LruDriver)
    driver.body = SLEEPERS[op]
    with expect_splat("might-sleep", SplatKind.MIGHT_SLEEP) as exc:
        rig.kernel.shrink()
    assert (
        str(exc.error)
        .splitlines()[1]
        .startswith("BUG: sleeping function called from invalid context")
    )
    assert "lrudrv_spare.lru_lock" in str(exc.error)  # "locks held: ..."
    driver.body = None
    rig.kernel.shrink()
    rig.finish()


def _exhaust_memory(driver: LruDriver) -> None:
    """Fill every free frame with spare pages (GFP_NOWAIT: no reclaim, ENOMEM at the end)."""
    while True:
        try:
            driver.add_spare()
        except KernelError:
            return


def _alloc_under_mutex(driver: LruDriver) -> Callable[[File[Buf]], object]:
    def action(file: File[Buf]) -> object:
        _exhaust_memory(driver)
        with driver.mutex.lock():
            page = Page.alloc_page(GFP_KERNEL)  # memory is short: direct reclaim, here
        page.free()
        return None

    return action


@doc_splat("h5-deadlock")
def demo_h5_deadlock() -> str:
    """The self-deadlock in direct reclaim, on a kernel without panic_on_warn."""
    rig = Rig(driver=LruDriver(), panic_on_warn=False, nr_pages=64)
    driver = rig.driver
    assert isinstance(driver, LruDriver)
    driver.blocking = True
    try:
        rig.run(_alloc_under_mutex(driver))
    except Deadlock:
        pass
    return splat(rig.kernel, "deadlock").render()


def test_h5_direct_reclaim_self_deadlock_is_reported_not_hung() -> None:
    """H5 (__alloc_pages_direct_reclaim runs the shrinkers in the allocating task): the
    driver allocates with its mutex held while memory is short; its shrinker takes the same
    mutex with mutex_lock — lockdep's recursive-locking report, then the deadlock itself,
    reported (Deadlock), not hung."""
    rig = Rig(driver=LruDriver(), nr_pages=64)
    driver = rig.driver
    assert isinstance(driver, LruDriver)
    driver.blocking = True
    with expect_splat("recursive-lock", SplatKind.LOCKDEP):
        rig.run(_alloc_under_mutex(driver))
    lenient = Rig(driver=LruDriver(), nr_pages=64, panic_on_warn=False)
    ldriver = lenient.driver
    assert isinstance(ldriver, LruDriver)
    ldriver.blocking = True
    with expect_splat("deadlock", SplatKind.DEADLOCK):
        lenient.run(_alloc_under_mutex(ldriver))
    assert [s.contract for s in lenient.kernel.splats] == ["recursive-lock", "deadlock"]
    assert "direct reclaim" in lenient.kernel.dmesg[-1]


def test_h5_lockdep_sees_the_inversion_without_the_deadlock() -> None:
    """H5 (lockdep fs_reclaim annotation): allocating under the mutex once, and kswapd's
    shrinker taking the same mutex once, is enough for "possible circular locking dependency
    detected" (lock-order) — every time, before any real deadlock."""
    rig = Rig(driver=LruDriver(), nr_pages=256)
    driver = rig.driver
    assert isinstance(driver, LruDriver)

    def alloc(file: File[Buf]) -> object:
        with driver.mutex.lock():
            Page.alloc_page(GFP_KERNEL).free()  # records mutex -> fs_reclaim
        driver.add_spare()
        return None

    rig.run(alloc)
    driver.blocking = True
    with expect_splat("lock-order", SplatKind.LOCKDEP) as exc:
        rig.kernel.shrink()  # kswapd: fs_reclaim -> mutex
    assert "fs_reclaim" in str(exc.error)


def test_h5_correct_shrinker_trylocks_and_stops() -> None:
    """H5, correct shrinker: mutex_trylock in reclaim; when the allocating task holds the
    mutex it returns SHRINK_STOP, the allocation fails cleanly (ENOMEM: the model has no OOM
    killer) and nothing is reported. Under kswapd it frees the spares."""
    rig = Rig(driver=LruDriver(), nr_pages=64)
    driver = rig.driver
    assert isinstance(driver, LruDriver)
    with pytest.raises(KernelError):
        rig.run(_alloc_under_mutex(driver))
    assert driver.freed == 0
    assert rig.kernel.dmesg == []
    assert rig.kernel.shrink() > 0
    assert rig.kernel.dmesg == []
    rig.finish()


def test_h5_demo_eager_driver_reclaims_under_pressure() -> None:
    """H5, correct driver: the demo's eager-insert driver reclaims inserted pages from direct
    reclaim inside a SEND's allocation (memory is short: the receiver A's freed buffers are
    taken back to make room for B's): trylocks, mmput_async, the list lock dropped before
    zap_page_range_single — nothing to report."""
    k = Kernel(nr_pages=64)
    driver = EagerInsertDriver()
    k.register_device(DEVICE_PATH, driver)
    a, b, sender = k.spawn("receiver-a"), k.spawn("receiver-b"), k.spawn("sender")
    afd, bfd, sfd = a.open(DEVICE_PATH), b.open(DEVICE_PATH), sender.open(DEVICE_PATH)
    a.mmap(BASE, 16 * P, PROT_READ, MAP_SHARED | MAP_FIXED, afd)
    b.mmap(BASE, 16 * P, PROT_READ, MAP_SHARED | MAP_FIXED, bfd)
    ta, tb = a.ioctl(afd, SAFEBINDER_GET_ID), b.ioctl(bfd, SAFEBINDER_GET_ID)
    for i in range(NPAGES):
        sender.ioctl(sfd, SAFEBINDER_SEND, (ta, bytes([65 + i]) * P))
    received = [parse_recv(a.ioctl(afd, SAFEBINDER_RECV))[0] for _ in range(NPAGES)]
    for addr in received:
        a.read(addr, 1)
        a.ioctl(afd, SAFEBINDER_FREE, addr)  # reclaimable, still inserted in A
    hog = []
    while k.pages.nr_free:  # someone else takes every free frame
        hog.append(k.pages.alloc_page(int(GFP_NOWAIT)))
    sender.ioctl(sfd, SAFEBINDER_SEND, (tb, b"for b"))  # its page comes from direct reclaim
    assert k.counters.direct_reclaim == 1
    assert driver.stats.pages_reclaimed >= 1
    assert all(a.mm.pgtables.lookup(addr // P) is None for addr in received[:1])
    addr, length = parse_recv(b.ioctl(bfd, SAFEBINDER_RECV))
    assert b.read(addr, length) == b"for b"
    assert k.dmesg == []
    for page in hog:
        k.pages.put_page(page)
    for p in (a, b, sender):
        p.exit()
    k.check_invariants()

"""Drivers, victims and set-up shared by the hazard tests.

:class:`HazardDriver` is a small binder-like device written against the safe layer: ``->open``
keeps the opener's mm (``mmgrab``), ``->mmap`` makes a read-only VM_MIXEDMAP mapping tagged
with the driver's vm_ops and inserts its first page, and the ioctl runs whatever driver code
a test hands it (:meth:`Rig.run`). The driver code itself is the functions below: the correct
ones (:func:`insert_checked`, :func:`zap_checked`), which prove the VMA is theirs with
``check_vma`` first, and the broken ones that real drivers have shipped
(:func:`insert_unchecked_read`, the Rust binder RFC's flow; :func:`insert_unchecked_write`, the
v6 series' flow), which type-check but trust whatever VMA sits at the cached address.

:class:`RawPfnDriver` is a C-style driver on the raw model (``remap_pfn_range`` has no safe
spelling): the VM_PFNMAP victim, and the H11 driver.

Every scenario whose splat the hazards page shows is registered with :func:`doc_splat`;
``python -m tests.hazards.render`` runs them in a fresh interpreter (so VMA and file numbers
are those of a real, reproducible run) and writes them into ``docs/hazards.md``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

from typing_extensions import override

from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_HUGETLB,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    KernelError,
    Process,
)
from safemm.fs import AddressSpace, File, FileOperations, VmFault, VmFaultReason, VmOperations
from safemm.mm import MmapReadGuard, MmWithUser, OwnedMm, OwnedMmWithUser, VmaReadGuard
from safemm.model import memory as raw_mem
from safemm.model import vm_flags_update as raw_flags
from safemm.model.fs import File as RawFile
from safemm.model.fs import FileOperationsStruct
from safemm.model.mm_types import VM_FAULT_SIGBUS, MmStruct, Vma, VmOperationsStruct
from safemm.model.mm_types import VmFault as RawFault
from safemm.model.page_alloc import GFP_KERNEL, PageKind
from safemm.model.page_alloc import Page as RawPage
from safemm.model.printk import Splat
from safemm.model.vm_flags import VM_MAYWRITE, VM_MIXEDMAP
from safemm.page import Page, PageLock
from safemm.task import current
from safemm.virt import VmAreaNew, VmAreaOwnedRef, VmAreaRef

P = PAGE_SIZE
#: Where every test maps its driver: 2 MiB aligned, so a hugetlb VMA can replace it.
BASE = 0x7F00_0000_0000
#: A free spot far from BASE (mremap targets, other mappings).
ELSEWHERE = 0x7E00_0000_0000
#: Pages of the driver's mapping.
NPAGES = 4

F = TypeVar("F", bound=Callable[[], str])

#: The scenarios the hazards page shows, by name, in registration order.
DOC_SPLATS: dict[str, Callable[[], str]] = {}


def doc_splat(name: str) -> Callable[[F], F]:
    """Register a scenario returning the dmesg text the hazards page shows as ``name``."""

    def register(fn: F) -> F:
        if name in DOC_SPLATS:
            raise ValueError(f"duplicate doc splat {name}")
        DOC_SPLATS[name] = fn
        return fn

    return register


def splat(kernel: Kernel, contract: str) -> Splat:
    """The last splat of ``kernel`` naming ``contract`` (AssertionError if none)."""
    for s in reversed(kernel.splats):
        if s.contract == contract:
            return s
    raise AssertionError(f"no {contract} splat; dmesg: {kernel.dmesg}")


def contracts(kernel: Kernel) -> list[str]:
    """The contract of every splat so far, in order."""
    return [s.contract for s in kernel.splats]


# ------------------------------------------------------------------------------ the driver


class Buf:
    """Per-open state of :class:`HazardDriver`.

    Invariant: ``mm`` holds an ``mm_count`` reference until ``->release``; ``pages`` are owned
    by this state until ``->release``; ``base`` is where ``->mmap`` put page 0 (a cached
    address: exactly what the hazards are about).
    """

    def __init__(self) -> None:
        self.mm: OwnedMm | None = None
        self.pages: list[Page] = []
        self.base = 0
        self.opens = 0
        self.closes = 0
        self.freed = False


class BufVmOps(VmOperations[Buf]):
    """The driver's vm_ops: count ->open/->close, fault pages in from the state's list, and
    (``follow_mremap``) keep ``base`` where ``->mremap`` moved page 0, as aio does.

    ``on_close`` lets a test run something at the moment ``->close`` runs — inside munmap,
    after the mmap lock was downgraded to read (another CPU's work, modelled in line).
    """

    def __init__(self, name: str) -> None:
        super().__init__(Buf, f"{name}_vm_ops")
        self.follow_mremap = False
        self.same_mm_only = False
        self.on_close: Callable[[], object] | None = None

    @override
    def open(self, vma: VmAreaOwnedRef[Buf]) -> None:
        vma.private_data.opens += 1

    @override
    def close(self, vma: VmAreaOwnedRef[Buf]) -> None:
        vma.private_data.closes += 1
        if self.on_close is not None:
            self.on_close()

    @override
    def fault(self, vmf: VmFault[Buf]) -> PageLock | VmFaultReason:
        pages = vmf.vma.private_data.pages
        if vmf.pgoff >= len(pages):
            return VmFaultReason.SIGBUS
        locked = pages[vmf.pgoff].trylock()
        return VmFaultReason.NOPAGE if locked is None else locked

    @override
    def mremap(self, vma: VmAreaOwnedRef[Buf]) -> None:
        state = vma.private_data
        if not self.follow_mremap or vma.pgoff != 0:
            return
        if self.same_mm_only and (state.mm is None or not state.mm.is_same_mm(vma.mm)):
            return  # a fork child's copy moved: the owner's mapping did not
        state.base = vma.start


class HazardDriver(FileOperations[Buf]):
    """A binder-like device at ``/dev/<name>``: per-open pages, a read-only VM_MIXEDMAP
    mapping, and an ioctl that runs the driver code a test gives it.

    Args:
        name: the device and driver name.
        insert: pages ``->mmap`` inserts at once (the rest fault in).
        clear_maywrite: refuse writable mappings now and forever (``try_clear_maywrite``).
        clear_mayexec: the same for PROT_EXEC.
        dontcopy: VM_DONTCOPY (fork does not copy the mapping), as binder sets.
        mixedmap: set VM_MIXEDMAP in ``->mmap`` (without it nothing is inserted there).
        own_mapping: give each open file its own address space (an anonymous inode, as DRM
            and aio do), so ``unmap_mapping_range`` on it reaches exactly that file's VMAs.
    """

    def __init__(
        self,
        name: str = "hazard",
        *,
        insert: int = 1,
        clear_maywrite: bool = True,
        clear_mayexec: bool = False,
        dontcopy: bool = False,
        mixedmap: bool = True,
        own_mapping: bool = False,
    ) -> None:
        super().__init__(Buf, name)
        self.vm_ops = BufVmOps(name)
        self.insert = insert
        self.clear_maywrite = clear_maywrite
        self.clear_mayexec = clear_mayexec
        self.dontcopy = dontcopy
        self.mixedmap = mixedmap
        self.own_mapping = own_mapping
        self.action: Callable[[File[Buf]], object] | None = None

    @override
    def open(self, file: File[Buf]) -> None:
        mm = current().mm()
        if mm is None:
            raise KernelError(errno.ESRCH, "no mm")
        state = Buf()
        state.mm = mm.mmgrab()
        if self.own_mapping:
            file.set_mapping(AddressSpace.new_anon())
        file.private_data = state

    @override
    def mmap(self, file: File[Buf], vma: VmAreaNew) -> None:
        state = state_of(file)
        if self.clear_maywrite:
            vma.try_clear_maywrite()
        if self.clear_mayexec:
            vma.try_clear_mayexec()
        if self.dontcopy:
            vma.set_dontcopy()
        mixed = vma.set_mixedmap() if self.mixedmap else None
        vma.set_vm_ops(self.vm_ops, state)
        state.base = vma.start
        for i in range((vma.end - vma.start) // P):
            page = Page.alloc_page()
            page.write(0, f"{self.name} page {i}".encode())
            state.pages.append(page)
            if mixed is not None and i < self.insert:
                mixed.vm_insert_page(vma.start + i * P, page)

    @override
    def ioctl(self, file: File[Buf], cmd: int, arg: object) -> object:
        if self.action is None:
            raise KernelError(errno.ENOTTY, "no action")
        return self.action(file)

    @override
    def release(self, file: File[Buf]) -> None:
        state = state_of(file)
        if not state.freed:
            for page in state.pages:
                page.free()
            state.freed = True
        state.pages.clear()
        if state.mm is not None:
            state.mm.mmdrop()
            state.mm = None


def state_of(file: File[Buf]) -> Buf:
    """The file's state (set in ``->open``)."""
    state = file.private_data
    assert state is not None
    return state


def raw_mm(file: File[Buf]) -> MmStruct:
    """The opener's raw ``mm_struct``: for driver code that goes around the types, as C
    code holds a ``struct mm_struct *``."""
    mm = state_of(file).mm
    assert mm is not None
    return mm._mm


def user_of(file: File[Buf]) -> OwnedMmWithUser:
    """An ``mm_users`` reference on the opener's mm (ESRCH if it is gone); release it with
    ``with user_of(file) as user:``."""
    mm = state_of(file).mm
    user = None if mm is None else mm.mmget_not_zero()
    if user is None:
        raise KernelError(errno.ESRCH, "the process has exited")
    return user


# ------------------------------------------------------------------------------ driver code


def _lock_vma(
    user: MmWithUser, addr: int
) -> tuple[VmaReadGuard | MmapReadGuard, VmAreaRef | None]:
    """The VMA at ``addr`` under its per-VMA lock, or else under the mmap read lock
    (``binder_page_insert``)."""
    vguard = user.lock_vma_under_rcu(addr)
    if vguard is not None:
        return vguard, vguard.vma
    mguard = user.mmap_read_lock()
    return mguard, mguard.vma_lookup(addr)


def insert_checked(driver: HazardDriver, file: File[Buf], index: int) -> None:
    """Correct: insert page ``index`` at ``base + index * P`` only into this file's own VMA,
    where it maps that page's offset (Rust binder's ``check_vma`` plus the offset check);
    ESRCH otherwise."""
    state = state_of(file)
    addr = state.base + index * P
    with user_of(file) as user:
        guard, vma = _lock_vma(user, addr)
        with guard:
            mine = None if vma is None else driver.vm_ops.check_vma(vma, state)
            if mine is None:
                raise KernelError(errno.ESRCH, f"the VMA at {addr:#x} is not this file's")
            if mine.pgoff + (addr - mine.start) // P != index:
                raise KernelError(errno.ESRCH, f"{addr:#x} no longer maps page {index}")
            mixed = mine.as_mixedmap_vma()
            if mixed is None:
                raise KernelError(errno.ESRCH, f"the VMA at {addr:#x} is not VM_MIXEDMAP")
            mixed.vm_insert_page(addr, state.pages[index])


def zap_checked(driver: HazardDriver, file: File[Buf], index: int) -> None:
    """Correct: zap page ``index`` only from this file's own VMA (ESRCH otherwise)."""
    state = state_of(file)
    addr = state.base + index * P
    with user_of(file) as user, user.mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        mine = None if vma is None else driver.vm_ops.check_vma(vma, state)
        if mine is None:
            raise KernelError(errno.ESRCH, f"the VMA at {addr:#x} is not this file's")
        mine.zap_page_range_single(addr, P)


def insert_unchecked_read(file: File[Buf], index: int) -> None:
    """Broken (the Rust binder RFC's ``use_page_slow``): look the VMA up at the cached
    address under the mmap read lock and insert if it is VM_MIXEDMAP — whoever's it is."""
    state = state_of(file)
    addr = state.base + index * P
    with user_of(file) as user, user.mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        mixed = None if vma is None else vma.as_mixedmap_vma()
        if mixed is None:
            raise KernelError(errno.ESRCH, f"no VM_MIXEDMAP VMA at {addr:#x}")
        mixed.vm_insert_page(addr, state.pages[index])


def insert_unchecked_write(file: File[Buf], index: int) -> None:
    """Broken (the flow of the v6 series' cover letter): ``mmap_write_lock``, ``vma_lookup``
    at the cached address, set VM_MIXEDMAP and insert — whatever VMA is there. Every call
    type-checks: only ownership is missing."""
    state = state_of(file)
    addr = state.base + index * P
    with user_of(file) as user, user.mmap_write_lock() as guard:
        vma = guard.vma_lookup(addr)
        if vma is None:
            raise KernelError(errno.ESRCH, f"no VMA at {addr:#x}")
        vma.set_mixedmap().vm_insert_page(addr, state.pages[index])


def zap_unchecked(file: File[Buf], index: int) -> None:
    """Broken: zap at the cached address in whatever VMA is there."""
    state = state_of(file)
    addr = state.base + index * P
    with user_of(file) as user, user.mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        if vma is None:
            raise KernelError(errno.ESRCH, f"no VMA at {addr:#x}")
        vma.zap_page_range_single(addr, P)


# ------------------------------------------------------------------------------ the rig


class Rig:
    """A kernel with :class:`HazardDriver` at ``/dev/hazard``, one process that opened it and
    mapped :data:`NPAGES` read-only shared pages at :data:`BASE`.

    Args:
        strict: ``Kernel(strict=...)``.
        panic_on_warn: ``Kernel(panic_on_warn=...)``.
        driver: the driver (a default :class:`HazardDriver` if None).
        prot: the mapping's protection.
        nr_pages: RAM of the machine.
    """

    def __init__(
        self,
        *,
        strict: bool = True,
        panic_on_warn: bool = True,
        driver: HazardDriver | None = None,
        prot: int = PROT_READ,
        nr_pages: int = 16384,
    ) -> None:
        self.kernel = Kernel(strict=strict, panic_on_warn=panic_on_warn, nr_pages=nr_pages)
        self.driver = driver if driver is not None else HazardDriver()
        self.kernel.register_device("/dev/" + self.driver.name, self.driver)
        self.proc: Process = self.kernel.spawn("victim")
        self.fd = self.proc.open("/dev/" + self.driver.name)
        self.addr = self.proc.mmap(BASE, NPAGES * P, prot, MAP_SHARED | MAP_FIXED, self.fd)

    def run(self, action: Callable[[File[Buf]], object], proc: Process | None = None) -> object:
        """Run ``action`` as the driver's ioctl (driver context), in ``proc`` (default: the
        rig's process) on its descriptor of the device."""
        self.driver.action = action
        try:
            return (proc or self.proc).ioctl(self.fd, 0)
        finally:
            self.driver.action = None

    def vma_at(self, addr: int, proc: Process | None = None) -> Vma:
        """The raw VMA at ``addr`` (test inspection only)."""
        vma = (proc or self.proc).mm.mm_mt.load(addr)
        assert vma is not None
        return vma

    def finish(self) -> None:
        """Exit the rig's process (its files are released, the driver frees its pages) and
        check every model invariant."""
        if self.proc.alive:
            self.proc.exit()
        self.kernel.check_invariants()

    def pte_pfn(self, addr: int, proc: Process | None = None) -> int | None:
        """The pfn the PTE at ``addr`` maps, or None if it is not present."""
        pte = (proc or self.proc).mm.pgtables.lookup(addr // P)
        return None if pte is None else pte.pfn


# ------------------------------------------------------------------------------ victims


#: What can sit at the driver's address after it unmapped or moved its mapping.
VICTIMS = ("writable", "pfnmap", "hugetlb", "anon", "other-driver")


class OtherDriver(HazardDriver):
    """Another driver's device (``/dev/other``): writable mappings, nothing inserted."""

    def __init__(self) -> None:
        super().__init__("other", insert=0, clear_maywrite=False)


def install_victim(rig: Rig, victim: str, addr: int, length: int) -> None:
    """Map the ``victim`` kind of VMA at ``addr`` in the rig's process (MAP_FIXED)."""
    proc = rig.proc
    fixed = MAP_FIXED
    rw = PROT_READ | PROT_WRITE
    if victim == "writable":
        proc.mmap(addr, length, rw, MAP_SHARED | MAP_ANONYMOUS | fixed)
    elif victim == "anon":
        proc.mmap(addr, length, rw, MAP_PRIVATE | MAP_ANONYMOUS | fixed)
    elif victim == "hugetlb":
        proc.mmap(addr, length, rw, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | fixed)
    elif victim == "other-driver":
        if "/dev/other" not in rig.kernel.devices:
            rig.kernel.register_device("/dev/other", OtherDriver())
        fd = proc.open("/dev/other")
        proc.mmap(addr, length, rw, MAP_SHARED | fixed, fd)
    elif victim == "pfnmap":
        if "/dev/pfn" not in rig.kernel.devices:
            RawPfnDriver(rig.kernel, "/dev/pfn", device_memory=True)
        fd = proc.open("/dev/pfn")
        proc.mmap(addr, length, PROT_READ, MAP_SHARED | fixed, fd)
    else:
        raise ValueError(victim)


# ------------------------------------------------------------------------------ raw drivers


class RawPfnDriver:
    """A C-style driver on the raw model whose ``->mmap`` maps raw pfns with
    ``remap_pfn_range`` (VM_IO|VM_PFNMAP): either device memory (no struct page), or — the H11
    bug — a RAM page it allocated, whose pfn PTEs take no reference.

    Invariant: ``pages`` are the RAM pages it allocated and has not freed.
    """

    def __init__(self, kernel: Kernel, path: str, *, device_memory: bool) -> None:
        self.kernel = kernel
        self.device_memory = device_memory
        self.pages: list[RawPage] = []
        #: What the ioctl runs (the driver's own code, on the raw model).
        self.action: Callable[[RawFile], object] | None = None
        self.fops = FileOperationsStruct(
            name="pfndrv", mmap=self._mmap, unlocked_ioctl=self._ioctl, owner=self
        )
        kernel.register_device(path, self.fops)

    def _ioctl(self, file: RawFile, cmd: int, arg: object) -> object:
        if self.action is None:
            raise KernelError(errno.ENOTTY, "no action")
        return self.action(file)

    def _mmap(self, file: RawFile, vma: Vma) -> None:
        npages = (vma.vm_end - vma.vm_start) // P
        if self.device_memory:
            pfn = self.kernel.pages.nr_pages + 0x1000
        else:
            page = self.kernel.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
            page.write(0, b"driver secret")
            self.pages.append(page)
            pfn = page.pfn
            npages = 1
        raw_mem.remap_pfn_range(vma, vma.vm_start, pfn, npages * P)

    def free_pages(self) -> None:
        """The bug: give the pages back while pfn PTEs still map them."""
        for page in self.pages:
            self.kernel.pages.put_page(page)
        self.pages.clear()


class RawMixedDriver:
    """A C-style driver on the raw model whose ``->fault`` maps its RAM pages with
    ``vmf_insert_mixed`` into a VM_MIXEDMAP VMA: on x86 (``pte_special``) that is a special PTE,
    which holds no page reference (H4, H11).

    Invariant: ``pages`` are the driver's pages until :meth:`free_pages`; ``action`` is what
    its ioctl runs.
    """

    def __init__(self, kernel: Kernel, path: str, npages: int = NPAGES) -> None:
        self.kernel = kernel
        self.pages: list[RawPage] = []
        for i in range(npages):
            page = kernel.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
            page.write(0, f"mixed page {i}".encode())
            self.pages.append(page)
        self.action: Callable[[RawFile], object] | None = None
        self.vm_ops = VmOperationsStruct("mixeddrv_vm_ops", fault=self._fault, owner=self)
        self.fops = FileOperationsStruct(
            name="mixeddrv", mmap=self._mmap, unlocked_ioctl=self._ioctl, owner=self
        )
        kernel.register_device(path, self.fops)

    def _mmap(self, file: RawFile, vma: Vma) -> None:
        raw_flags.vm_flags_mod(vma, VM_MIXEDMAP, VM_MAYWRITE)
        vma.vm_ops = self.vm_ops
        vma.vm_private_data = self

    def _fault(self, vmf: RawFault) -> int:
        if vmf.pgoff >= len(self.pages):
            return VM_FAULT_SIGBUS
        return raw_mem.vmf_insert_mixed(vmf.vma, vmf.address, self.pages[vmf.pgoff].pfn)

    def _ioctl(self, file: RawFile, cmd: int, arg: object) -> object:
        if self.action is None:
            raise KernelError(errno.ENOTTY, "no action")
        return self.action(file)

    def free_pages(self) -> None:
        """Give the pages back (correct only once no PTE maps them)."""
        pages, self.pages = self.pages, []
        for page in pages:
            self.kernel.pages.put_page(page)

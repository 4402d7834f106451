"""Shared helpers for the model tests: whole-model snapshots, test devices and strategies.

Everything the model tests share lives here, in one place (as attrs keeps its hypothesis
strategies in one module):

* :func:`snapshot` captures the whole machine — every mm with every VMA field, every PTE,
  every live page's refcount/mapcount/contents, files, ``i_mmap`` trees, lock and context
  state — but no counters and no lockdep history, so that a refused call can be proven to
  have left the model exactly as it found it (:func:`assert_unchanged`).
* :class:`TestDevice` is a character-device driver built from raw ``file_operations`` and
  ``vm_operations_struct`` tables (:class:`~safemm.model.fs.FileOperationsStruct`,
  :class:`~safemm.model.mm_types.VmOperationsStruct`), configurable to insert pages in
  ``->mmap``, refuse, set or clear VMA flags, and provide ``open``/``close``/``fault``/
  ``may_split``/``mremap``/``mprotect`` hooks that keep the accounting the tests check.
* small helpers to run raw kernel API calls as a process (:func:`in_task`, :func:`locked`)
  and hypothesis strategies for syscall arguments.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from hypothesis import strategies as st

from safemm.model import (
    AddressSpace,
    File,
    FileOperationsStruct,
    Kernel,
    KernelError,
    Page,
    Process,
    Vma,
    VmFault,
    VmOperationsStruct,
)
from safemm.model.memory import remap_pfn_range, vm_insert_page
from safemm.model.mm_types import VM_FAULT_NOPAGE, MmStruct
from safemm.model.mman import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
)
from safemm.model.mmap_lock import (
    mmap_read_lock,
    mmap_read_unlock,
    mmap_write_lock,
    mmap_write_unlock,
)
from safemm.model.page_alloc import GFP_KERNEL
from safemm.model.pgtable import Pte
from safemm.model.vm_flags_update import vm_flags_clear, vm_flags_set

__all__ = [
    "ANON",
    "RW",
    "SHANON",
    "MapObj",
    "P",
    "Snapshot",
    "TestDevice",
    "assert_unchanged",
    "diff_snapshots",
    "hostile_addrs",
    "hostile_lengths",
    "hostile_mmap_flags",
    "hostile_mremap_flags",
    "hostile_prots",
    "hostile_syscalls",
    "in_task",
    "layout",
    "lengths",
    "live_vmas",
    "locked",
    "machine_kinds",
    "new_lengths",
    "page_at",
    "prots",
    "pte_at",
    "slots",
    "snapshot",
    "vma_at",
]

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE
#: Private anonymous mapping flags.
ANON = MAP_PRIVATE | MAP_ANONYMOUS
#: Shared anonymous mapping flags.
SHANON = MAP_SHARED | MAP_ANONYMOUS


# --------------------------------------------------------------------------------------------
# snapshots


@dataclass(frozen=True)
class VmaSnap:
    """Every field of one ``vm_area_struct`` (VMA lock epoch excluded: it is a counter)."""

    id: int
    start: int
    end: int
    pgoff: int
    flags: int
    ops: int | None
    file: int | None
    private: int | None
    anon_vma: int | None
    anon_vma_chain: int
    uffd: int | None
    detached: bool
    freed: bool
    closed: bool
    in_setup: bool
    readers: tuple[int, ...]


@dataclass(frozen=True)
class PteSnap:
    """One present PTE."""

    vpn: int
    pfn: int
    page: int | None
    write: bool
    dirty: bool
    young: bool
    special: bool
    protnone: bool


@dataclass(frozen=True)
class MmSnap:
    """One ``mm_struct``: references, rss, lock state, VMAs and page tables."""

    id: int
    users: int
    count: int
    exited: bool
    freed: bool
    rss: tuple[int, int, int]
    lock: tuple[int | None, tuple[int, ...], int]
    vmas: tuple[VmaSnap, ...]
    ptes: tuple[PteSnap, ...]
    huge: tuple[tuple[int, int, int, bool], ...]


@dataclass(frozen=True)
class PageSnap:
    """One allocated page frame."""

    pfn: int
    kind: str
    refcount: int
    mapcount: int
    mapping: int | None
    index: int
    data: bytes | None
    special_maps: int


@dataclass(frozen=True)
class Snapshot:
    """The whole machine, minus counters and lockdep history (see :func:`snapshot`)."""

    processes: tuple[tuple[int, bool, int, tuple[tuple[int, int], ...]], ...]
    mms: tuple[MmSnap, ...]
    pages: tuple[PageSnap, ...]
    free: tuple[int, ...]
    hugepages: tuple[tuple[int, int], ...]
    iomem: tuple[tuple[int, bytes], ...]
    files: tuple[tuple[int, int, bool, int], ...]
    i_mmap: tuple[tuple[int, tuple[tuple[int, int, int], ...]], ...]
    tasks: tuple[tuple[int, tuple[str, ...], int, int], ...]
    splats: int
    pending_work: tuple[int, int]


def _oid(obj: object) -> int | None:
    return None if obj is None else id(obj)


def _vma_snap(v: Vma) -> VmaSnap:
    return VmaSnap(
        v.id,
        v.vm_start,
        v.vm_end,
        v.vm_pgoff,
        v.vm_flags,
        _oid(v.vm_ops),
        None if v.vm_file is None else v.vm_file.id,
        _oid(v.vm_private_data),
        None if v.anon_vma is None else v.anon_vma.id,
        v.anon_vma_chain,
        _oid(v.vm_userfaultfd_ctx),
        v.detached,
        v.freed,
        v.closed,
        v.in_setup,
        tuple(t.pid for t in v.readers),
    )


def _mm_snap(mm: MmStruct) -> MmSnap:
    lk = mm.mmap_lock
    ptes = tuple(
        PteSnap(
            vpn,
            p.pfn,
            None if p.page is None else p.page.pfn,
            p.write,
            p.dirty,
            p.young,
            p.special,
            p.protnone,
        )
        for tbl in mm.pgtables.pmds.values()
        for vpn, p in sorted(tbl.items())
    )
    huge = tuple(
        (idx, h.page.index, h.page.refcount, h.write)
        for idx, h in sorted(mm.pgtables.huge.items())
    )
    return MmSnap(
        mm.id,
        mm.mm_users,
        mm.mm_count,
        mm.exited,
        mm.freed,
        (mm.rss_anon, mm.rss_file, mm.rss_shmem),
        (
            None if lk.writer is None else lk.writer.pid,
            tuple(t.pid for t in lk.readers),
            lk.queued_writers,
        ),
        tuple(_vma_snap(v) for v in mm.vmas()),
        ptes,
        huge,
    )


def snapshot(k: Kernel) -> Snapshot:
    """Capture the whole model: processes and their descriptors; every mm with all its VMAs
    (all fields) and PTEs; every allocated page (refcount, mapcount, mapping, contents) and
    the free set; hugetlb pages; device memory; every file (open, mapped or in a descriptor
    table) with its reference count; every ``i_mmap``; each task's held locks and atomic
    context; the number of splats and of pending deferred work.

    Counters (:class:`~safemm.model.vmstat.Counters`), lockdep's dependency graph and the
    VMA-lock epoch are excluded: they record history, not state.
    """
    procs = tuple(
        (pid, p.alive, p.mm.id, tuple(sorted((fd, f.id) for fd, f in p.fds.items())))
        for pid, p in sorted(k.processes.items())
    )
    mms = tuple(_mm_snap(mm) for _, mm in sorted(k.mms.items()))
    pages = tuple(
        PageSnap(
            pg.pfn,
            pg.kind.value,
            pg.refcount,
            pg.mapcount,
            _oid(pg.mapping),
            pg.index,
            None if pg.data is None else bytes(pg.data),
            pg.special_maps,
        )
        for pg in k.pages.frames()
        if pg.kind.value != "free"
    )
    mappings: dict[int, AddressSpace] = {}
    all_files: dict[int, File] = dict(k.open_files)
    for dev in k.devices.values():
        mappings[id(dev.inode.i_mapping)] = dev.inode.i_mapping
    for mm in k.mms.values():
        for v in mm.vmas():
            if v.vm_file is not None:
                all_files[v.vm_file.id] = v.vm_file
    for proc in k.processes.values():
        for f in proc.fds.values():
            all_files[f.id] = f
    files: list[tuple[int, int, bool, int]] = []
    for fid, f in sorted(all_files.items()):
        files.append((fid, f.f_count, f.released, id(f.f_mapping)))
        mappings[id(f.f_mapping)] = f.f_mapping
    i_mmap = []
    for mid, mapping in sorted(mappings.items()):
        tree = mapping.i_mmap
        entries = tuple(sorted((v.id, *tree.interval_of(v)) for v in tree))
        i_mmap.append((mid, entries))
    tasks = tuple(
        (t.pid, tuple(h.lock.name for h in t.held_locks), t.preempt_count, t.rcu_depth)
        for t in k.all_tasks()
    )
    return Snapshot(
        procs,
        mms,
        pages,
        tuple(sorted(k.pages.free)),
        tuple((h.refcount, h.mapcount) for h in k.pages.hugepages),
        tuple(sorted((pfn, bytes(b)) for pfn, b in k.pages.iomem.items())),
        tuple(files),
        tuple(i_mmap),
        tasks,
        len(k.splats),
        (len(k._work), len(k._task_work)),
    )


def diff_snapshots(a: Snapshot, b: Snapshot) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    out: list[str] = []
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if x == y:
            continue
        if name == "mms":
            mx = {m.id: m for m in x}
            my = {m.id: m for m in y}
            for mid in sorted(set(mx) | set(my)):
                m1, m2 = mx.get(mid), my.get(mid)
                if m1 == m2:
                    continue
                if m1 is None or m2 is None:
                    out.append(f"mm {mid}: {m1} -> {m2}")
                    continue
                for f in m1.__dataclass_fields__:
                    if getattr(m1, f) != getattr(m2, f):
                        out.append(f"mm {mid}.{f}: {getattr(m1, f)} -> {getattr(m2, f)}")
        elif name == "pages":
            px = {p.pfn: p for p in x}
            py = {p.pfn: p for p in y}
            for pfn in sorted(set(px) | set(py)):
                if px.get(pfn) != py.get(pfn):
                    out.append(f"page {pfn}: {px.get(pfn)} -> {py.get(pfn)}")
        else:
            out.append(f"{name}: {x} -> {y}")
    return out


def assert_unchanged(before: Snapshot, after: Snapshot) -> None:
    """Fail with the differences if the model changed between two snapshots."""
    d = diff_snapshots(before, after)
    assert not d, "a failed call changed the model:\n" + "\n".join(d)


# --------------------------------------------------------------------------------------------
# running raw kernel code as a process


@contextmanager
def in_task(p: Process, name: str = "test") -> Iterator[None]:
    """Run the body in the kernel as ``p``'s task (``current`` is ``p``)."""
    with p.kernel.enter(p.task, name):
        yield


@contextmanager
def locked(p: Process, write: bool = True) -> Iterator[MmStruct]:
    """Run the body as ``p`` holding its mmap lock (write or read); yields the mm."""
    mm = p.mm
    with in_task(p):
        if write:
            mmap_write_lock(mm)
        else:
            mmap_read_lock(mm)
        try:
            yield mm
        finally:
            if write:
                if mm.mmap_lock.writer is p.task:
                    mmap_write_unlock(mm)
            elif p.task in mm.mmap_lock.readers:
                mmap_read_unlock(mm)


def vma_at(p: Process, addr: int) -> Vma:
    """The VMA of ``p`` containing ``addr`` (asserts there is one)."""
    v = p.mm.mm_mt.load(addr)
    assert v is not None, f"no VMA at {addr:#x}"
    return v


def pte_at(p: Process, addr: int) -> Pte:
    """The present PTE mapping ``addr`` in ``p`` (asserts there is one)."""
    e = p.mm.pgtables.lookup(addr >> PAGE_SHIFT)
    assert e is not None, f"no PTE at {addr:#x}"
    return e


def page_at(p: Process, addr: int) -> Page:
    """The struct page the PTE at ``addr`` holds a reference on (asserts a normal PTE)."""
    pg = pte_at(p, addr).page
    assert pg is not None, f"special PTE at {addr:#x}"
    return pg


def layout(p: Process) -> list[tuple[int, int, int]]:
    """``(start, end, flags & 0xff)`` of each VMA of ``p``, ascending."""
    return [(v.vm_start, v.vm_end, v.vm_flags & 0xFF) for v in p.mm.vmas()]


def live_vmas(k: Kernel) -> Iterator[Vma]:
    """Every VMA of every live address space."""
    for mm in k.mms.values():
        if not mm.exited:
            yield from mm.vmas()


# --------------------------------------------------------------------------------------------
# a test device driver


@dataclass(eq=False)
class MapObj:
    """Driver state created by one successful ``->mmap``: counts the hooks on its pieces.

    The kernel's accounting rule (H6): live pieces of one mmap = 1 + ``opens`` - ``closes``.
    """

    dev: TestDevice
    start: int
    end: int
    pgoff: int
    opens: int = 0
    closes: int = 0
    mremaps: list[tuple[int, int]] = field(default_factory=list)
    #: Each ``->close``'s (start, end, pid) in call order.
    closed_ranges: list[tuple[int, int, int]] = field(default_factory=list)


class TestDevice:
    """A character device for tests, built from raw ``file_operations``/``vm_operations``.

    Args:
        k: the machine.
        path: device node path.
        npages: pages of device memory (``pool``), allocated at registration; page ``i``
            is what file offset ``i`` maps to, and holds the bytes ``b"dev<i>"`` at offset 0.
        insert: ``->mmap`` inserts ``pool[pgoff + i]`` at every page of the VMA with
            ``vm_insert_page`` (which sets VM_MIXEDMAP); refuses with ENXIO (as ``vm_map_pages``)
            when the range passes the end of the pool.
        pfnmap: ``->mmap`` maps the pool with ``remap_pfn_range`` instead.
        refuse: ``->mmap`` raises ``KernelError(refuse)`` after inserting its pages.
        refuse_if: like ``refuse``, decided per VMA (an errno, or None to accept).
        set_flags / clear_flags: VMA flags ``->mmap`` sets / clears (``vm_flags_set/clear``).
        hooks: install ``vm_ops->open``/``->close`` (and so a MapObj per mmap).
        may_split: a predicate on the split address; True vetoes the split (EINVAL).
        mremap_veto: ``->mremap`` refuses (EINVAL).
        fault: ``None`` (no ``->fault``: unpopulated pages SIGBUS), ``"page"`` (return the
            pool page with a new reference), ``"insert"`` (``vm_insert_page`` + NOPAGE),
            or a ``VM_FAULT_*`` value to return.
        map_pages: whether the vm_ops have ``->map_pages`` (may fault under the VMA lock).
        mprotect_veto: ``->mprotect`` refuses (EACCES).

    Invariant: ``objs`` holds one :class:`MapObj` per successful ``->mmap``, in order.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        k: Kernel,
        path: str = "/dev/test",
        *,
        npages: int = 64,
        insert: bool = True,
        pfnmap: bool = False,
        refuse: int | None = None,
        refuse_if: Callable[[Vma], int | None] | None = None,
        set_flags: int = 0,
        clear_flags: int = 0,
        hooks: bool = False,
        may_split: Callable[[int], bool] | None = None,
        mremap_veto: bool = False,
        fault: str | int | None = None,
        map_pages: bool = False,
        mprotect_veto: bool = False,
    ) -> None:
        self.k = k
        self.path = path
        self.insert = insert
        self.pfnmap = pfnmap
        self.refuse = refuse
        self.refuse_if = refuse_if
        self.set_flags = set_flags
        self.clear_flags = clear_flags
        self.may_split_pred = may_split
        self.mremap_veto = mremap_veto
        self.fault_mode = fault
        self.objs: list[MapObj] = []
        self.mmap_calls = 0
        self.releases = 0
        #: (mmap lock held by current, VMA lock held by current) for each ->fault call.
        self.fault_locks: list[tuple[bool, bool]] = []
        #: (mmap lock write-held, read-held by current) for each ->close call.
        self.close_locks: list[tuple[bool, bool]] = []
        #: Every hook call, in order: ("open"|"close"|"release"|"mmap", pid of current).
        self.log: list[tuple[str, int]] = []
        self.pool: list[Page] = []
        for i in range(npages):
            pg = k.pages.alloc_page(int(GFP_KERNEL))
            pg.write(0, f"dev{i}".encode())
            self.pool.append(pg)
        self.vm_ops = VmOperationsStruct(
            f"{path}_vm_ops",
            open=self._open if hooks else None,
            close=self._close if hooks else None,
            may_split=self._may_split if may_split is not None else None,
            mremap=self._mremap if (hooks or mremap_veto) else None,
            mprotect=self._mprotect if mprotect_veto else None,
            fault=self._fault if fault is not None else None,
            map_pages=map_pages,
            owner=self,
        )
        self.fops = FileOperationsStruct(
            f"{path}_fops", release=self._release, mmap=self._mmap, owner=self
        )
        k.register_device(path, self.fops)

    # -- file_operations

    def _release(self, file: File) -> None:
        self.releases += 1
        self.log.append(("release", self.k.current.pid))

    def _mmap(self, file: File, vma: Vma) -> None:
        self.mmap_calls += 1
        self.log.append(("mmap", self.k.current.pid))
        if self.set_flags:
            vm_flags_set(vma, self.set_flags)
        if self.clear_flags:
            vm_flags_clear(vma, self.clear_flags)
        vma.vm_ops = self.vm_ops
        obj = MapObj(self, vma.vm_start, vma.vm_end, vma.vm_pgoff)
        vma.vm_private_data = obj
        if self.insert or self.pfnmap:
            if vma.vm_pgoff + vma.pages > len(self.pool):
                raise KernelError(errno.ENXIO, "test device: mapping past the end of the pool")
            if self.pfnmap:
                remap_pfn_range(vma, vma.vm_start, self.pool[vma.vm_pgoff].pfn, vma.pages * P)
            else:
                for i in range(vma.pages):
                    vm_insert_page(vma, vma.vm_start + i * P, self.pool[vma.vm_pgoff + i])
        refuse = self.refuse if self.refuse_if is None else self.refuse_if(vma)
        if refuse is not None:
            raise KernelError(refuse, "test device refuses this mmap")
        self.objs.append(obj)

    # -- vm_operations_struct

    def _open(self, vma: Vma) -> None:
        obj = vma.vm_private_data
        assert isinstance(obj, MapObj)
        obj.opens += 1
        self.log.append(("open", self.k.current.pid))

    def _close(self, vma: Vma) -> None:
        obj = vma.vm_private_data
        assert isinstance(obj, MapObj)
        obj.closes += 1
        t = self.k.current
        self.log.append(("close", t.pid))
        obj.closed_ranges.append((vma.vm_start, vma.vm_end, t.pid))
        lk = vma.vm_mm.mmap_lock
        self.close_locks.append((lk.writer is t, t in lk.readers))

    def _may_split(self, vma: Vma, addr: int) -> None:
        assert self.may_split_pred is not None
        if self.may_split_pred(addr):
            raise KernelError(errno.EINVAL, f"test device: no split at {addr:#x}")

    def _mremap(self, vma: Vma) -> None:
        if self.mremap_veto:
            raise KernelError(errno.EINVAL, "test device: ->mremap refuses")
        obj = vma.vm_private_data
        assert isinstance(obj, MapObj)
        obj.mremaps.append((vma.vm_start, vma.vm_end))

    def _mprotect(self, vma: Vma, start: int, end: int, newflags: int) -> None:
        raise KernelError(errno.EACCES, "test device: ->mprotect refuses")

    def _fault(self, vmf: VmFault) -> int:
        vma = vmf.vma
        t = self.k.current
        self.fault_locks.append((vma.vm_mm.mmap_lock.is_locked_by(t), t in vma.readers))
        mode = self.fault_mode
        page = self.pool[vmf.pgoff % len(self.pool)]
        if mode == "page":
            self.k.pages.get_page(page)
            vmf.page = page
            return 0
        if mode == "insert":
            vm_insert_page(vma, vmf.address, page)
            return VM_FAULT_NOPAGE
        assert isinstance(mode, int)
        return mode

    # -- checks

    def check_pieces(self) -> None:
        """Each mmap's live pieces (VMAs carrying its MapObj in any live mm) equal
        1 + opens - closes (H6)."""
        live: dict[int, int] = {}
        for v in live_vmas(self.k):
            if isinstance(v.vm_private_data, MapObj) and v.vm_private_data.dev is self:
                live[id(v.vm_private_data)] = live.get(id(v.vm_private_data), 0) + 1
        for obj in self.objs:
            want = 1 + obj.opens - obj.closes
            got = live.get(id(obj), 0)
            assert got == want, (
                f"mmap of {obj.start:#x}-{obj.end:#x}: {got} live pieces, but 1 + "
                f"{obj.opens} opens - {obj.closes} closes = {want}"
            )
            assert want >= 0, f"more ->close than ->open+1 for {obj}"


# --------------------------------------------------------------------------------------------
# hypothesis strategies

#: A page slot in the state machine's 64-page window.
slots = st.integers(min_value=0, max_value=63)
#: A length in pages (0 exercises the zero-length checks).
lengths = st.integers(min_value=0, max_value=8)
#: An mremap ``new_len`` in pages: rarely 0 (EINVAL), so that most calls do something.
new_lengths = st.sampled_from([0, *range(1, 9), *range(1, 9), *range(1, 9)])
#: PROT_NONE or a protection x86 can express.
prots = st.sampled_from([PROT_NONE, PROT_READ, RW, PROT_READ | PROT_EXEC])
#: What the state machine maps: private anonymous memory, shared anonymous memory (shmem),
#: test device "A" (inserts its pages in ->mmap) or "B" (hooks, ->fault).
machine_kinds = st.sampled_from(["anon", "shm", "A", "B"])

ULONG_MAX = (1 << 64) - 1
#: Hostile addresses: the bad-input world's mappings, their neighbours and insides, the
#: bottom of user space, and TASK_SIZE / 2**64 boundaries.
hostile_addrs = st.sampled_from(
    [
        *(0, 0x10000, 0x2000_0000, 0x2000_1000, 0x2000_0800, 0x2000_4000),
        *(0x3000_0000, 0x3000_1000, 0x3800_0000),
        *(TASK_SIZE - P, TASK_SIZE, TASK_SIZE + P, ULONG_MAX & ~0xFFF, ULONG_MAX),
    ]
)
#: Hostile lengths: zero, unaligned, huge, wrapping and negative (C wraps them to huge).
hostile_lengths = st.sampled_from(
    [0, 1, P - 1, P, 2 * P, 3 * P + 5, 8 * P, TASK_SIZE, ULONG_MAX, ULONG_MAX - P + 2, -1, -P]
)
#: Protections including unknown bits and PROT_GROWSDOWN.
hostile_prots = st.sampled_from(
    [PROT_NONE, PROT_READ, RW, PROT_READ | PROT_EXEC, PROT_WRITE, 0x8, 0x10, 0x0100_0000]
)
#: mmap flags: sensible combinations or any bits at all.
hostile_mmap_flags = st.one_of(
    st.sampled_from(
        [
            ANON,
            ANON | MAP_FIXED,
            ANON | MAP_FIXED_NOREPLACE,
            SHANON,
            MAP_SHARED,
            MAP_PRIVATE,
            MAP_SHARED | MAP_FIXED,
            MAP_PRIVATE | MAP_FIXED,
        ]
    ),
    st.integers(min_value=0, max_value=0x1FFFFF),
)
#: mremap flags: any combination of the three flags and one unknown bit.
hostile_mremap_flags = st.integers(min_value=0, max_value=15)


@st.composite
def hostile_syscalls(draw: st.DrawFn) -> tuple[str, tuple[int, ...]]:
    """One memory syscall with hostile arguments: ``(name, args)``; for mmap the last
    argument selects the fd (0: none, 1: O_RDWR device, 2: O_RDONLY device)."""
    kind = draw(st.sampled_from(["mmap", "munmap", "mprotect", "mremap"]))
    addr, length = draw(hostile_addrs), draw(hostile_lengths)
    if kind == "mmap":
        prot, flags = draw(hostile_prots), draw(hostile_mmap_flags)
        return kind, (addr, length, prot, flags, draw(st.integers(0, 2)))
    if kind == "munmap":
        return kind, (addr, length)
    if kind == "mprotect":
        return kind, (addr, length, draw(hostile_prots))
    new_len, flags = draw(hostile_lengths), draw(hostile_mremap_flags)
    return kind, (addr, length, new_len, flags, draw(hostile_addrs))

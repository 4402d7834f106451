"""The simulated machine: :class:`Kernel`.

One ``Kernel`` is one machine — page frames, devices, processes, shrinkers, lockdep state,
counters, ``dmesg`` — and machines share no state, so tests can make as many as they like.
It also keeps the execution context the checks need: which task is ``current`` (the process
in a syscall, ``kswapd`` in ``shrink``, a ``kworker`` running deferred work), which driver's
code is running (the hook, ioctl or shrinker the model entered it through), task work
(``fput``'s deferred ``->release``) and the workqueue (``mmput_async``'s deferred teardown).

The one module-level structure is the weak set of live machines that the interpreter's exit
report reads, to print the leaks nobody asked about (:mod:`safemm.model.exit_report`); it
changes nothing a machine does. Splats are built and formatted by
:mod:`safemm.model.printk`; :meth:`Kernel.report` records them and acts on them.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from typing_extensions import override

from . import exit_report, invariants
from .errors import Deadlock, KernelBug, KernelError, KernelWarning, Livelock
from .fault_inject import FaultInjection
from .fs import File, FileOperationsStruct, Inode
from .locking import LockClass, Lockdep, _Lock
from .mman import DEFAULT_MAX_MAP_COUNT
from .page_alloc import GFP_KERNEL, PageAllocator
from .printk import WARN_KINDS, Splat, SplatKind, make_splat
from .process import Process
from .runqueue import DEFAULT_MAX_STEPS, RandomPolicy, SchedPolicy, Scheduler, SwitchKind
from .sched import PF_KTHREAD, PF_MEMALLOC, Rcu, Task
from .shrinker import Shrinker
from .swap import Lruvec
from .vmscan import shrink_node, try_to_free_pages
from .vmstat import Counters

if TYPE_CHECKING:
    from .mm_types import MmStruct

__all__ = ["Device", "FileOperationsProvider", "Kernel"]

#: Objects the direct-reclaim pass asks each shrinker for (SWAP_CLUSTER_MAX).
SWAP_CLUSTER_MAX = 32


class FileOperationsProvider(Protocol):
    """Anything that can hand the model a ``file_operations`` table (the safe layer's
    ``FileOperations`` does)."""

    def _safemm_file_operations_(self, kernel: Kernel, path: str) -> FileOperationsStruct:
        """The raw table the model calls for the device at ``path`` of ``kernel``."""
        ...


class Device:
    """A registered character device: its node path, its ``file_operations`` and its inode.

    Invariant: every open of ``path`` gets a file whose ``f_inode`` is ``inode`` (so, unless a
    driver repoints ``f_mapping``, all opens share one address space, as device nodes do).
    """

    __slots__ = ("fops", "inode", "kernel", "minor", "path")

    def __init__(self, kernel: Kernel, path: str, fops: FileOperationsStruct, minor: int) -> None:
        self.kernel = kernel
        self.path = path
        self.fops = fops
        self.minor = minor
        self.inode = Inode(kernel, "chr", self)

    @override
    def __repr__(self) -> str:
        return f"<device {self.path}>"


class _Frame:
    """One level of "what is running": a kernel entry or a driver hook."""

    __slots__ = ("entry", "file", "name", "owner")

    def __init__(self, owner: object, file: File | None, name: str, entry: bool = False) -> None:
        self.owner = owner
        self.file = file
        self.name = name
        self.entry = entry


class _DriverHook:
    """Context manager marking "the driver ``owner`` is running ``name``"."""

    __slots__ = ("frame", "kernel")

    def __init__(self, kernel: Kernel, frame: _Frame) -> None:
        self.kernel = kernel
        self.frame = frame

    def __enter__(self) -> None:
        self.kernel._frames.append(self.frame)

    def __exit__(self, *exc: object) -> None:
        frames = self.kernel._frames
        if frames and frames[-1] is self.frame:
            frames.pop()


class _SchedDriverHook(_DriverHook):
    """A driver hook inside :meth:`Kernel.concurrently`: its entry and exit are switch
    points. (Outside it, :meth:`Kernel.driver_hook` returns the plain :class:`_DriverHook`,
    so one task pays nothing for the run queue.)"""

    __slots__ = ("sched",)

    def __init__(self, kernel: Kernel, frame: _Frame, sched: Scheduler) -> None:
        super().__init__(kernel, frame)
        self.sched = sched

    @override
    def __enter__(self) -> None:
        self.kernel._frames.append(self.frame)
        self.sched.point(SwitchKind.HOOK_ENTER, self.frame.name)

    @override
    def __exit__(self, *exc: object) -> None:
        frames = self.kernel._frames
        if frames and frames[-1] is self.frame:
            frames.pop()
        if exc[0] is None:
            self.sched.point(SwitchKind.HOOK_EXIT, self.frame.name)


class _Entry:
    """Context manager for one entry into the kernel (a syscall, kswapd, a work item)."""

    __slots__ = ("kernel", "name", "task")

    def __init__(self, kernel: Kernel, task: Task, name: str) -> None:
        self.kernel = kernel
        self.task = task
        self.name = name

    def __enter__(self) -> Task:
        k = self.kernel
        k._tasks.append(self.task)
        k._frames.append(_Frame(None, None, self.name, entry=True))
        return self.task

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        k = self.kernel
        try:
            k._run_task_work()
            if exc_type is None and self.task.held_locks and len(k._tasks) == 2:
                k._lock_held_on_return(self.task, self.name)
        finally:
            k._frames.pop()
            k._tasks.pop()
            if self.task.preempt_reset:
                # The return to user space fixes up the count the scheduler reset.
                self.task.preempt_reset = False
        if len(k._tasks) == 1:
            k._run_deferred()


class _SchedEntry(_Entry):
    """A kernel entry inside :meth:`Kernel.concurrently`: the task is claimed by the running
    context, entry (or page-fault entry) and exit are switch points, and deferred work is
    left to the kworker. (Outside it, :meth:`Kernel.enter` returns the plain
    :class:`_Entry`, so one task pays nothing for the run queue.)"""

    __slots__ = ("sched",)

    def __init__(self, kernel: Kernel, task: Task, name: str, sched: Scheduler) -> None:
        super().__init__(kernel, task, name)
        self.sched = sched

    @override
    def __enter__(self) -> Task:
        k = self.kernel
        s = self.sched
        s.claim(self.task)
        k._tasks.append(self.task)
        k._frames.append(_Frame(None, None, self.name, entry=True))
        s.point(
            SwitchKind.FAULT if self.name == "page fault" else SwitchKind.SYSCALL_ENTER,
            self.name,
        )
        return self.task

    @override
    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        k = self.kernel
        s = self.sched
        try:
            k._run_task_work()
            if exc_type is None and self.task.held_locks and len(k._tasks) == 2:
                k._lock_held_on_return(self.task, self.name)
            if exc_type is None:
                s.point(SwitchKind.SYSCALL_EXIT, self.name)
        finally:
            k._frames.pop()
            k._tasks.pop()
            if self.task.preempt_reset:
                # The return to user space fixes up the count the scheduler reset.
                self.task.preempt_reset = False
            s.release(self.task)


class _PseudoLock(_Lock):
    """A lockdep-only map (``fs_reclaim``): acquired and released, never contended."""

    __slots__ = ()


class Kernel:
    """One simulated machine.

    Args:
        panic_on_warn: a WARN (and lockdep, might_sleep and strict reports) raises
            :class:`KernelWarning`; off, it only goes to ``dmesg``.
        strict: also report contracts Linux itself does not check (see the README); off, the
            model behaves exactly like the kernel.
        nr_pages: page frames of RAM (4 KiB each).
        nr_hugepages: 2 MiB pages in the hugetlb pool.
        max_map_count: ``vm.max_map_count``.
        seed: seed of the fault-injection generator.

    Invariant: ``_tasks[0]`` is the idle task; ``_tasks[-1]`` is ``current``.
    """

    def __init__(
        self,
        *,
        panic_on_warn: bool = True,
        strict: bool = True,
        nr_pages: int = 16384,
        nr_hugepages: int = 4,
        max_map_count: int = DEFAULT_MAX_MAP_COUNT,
        seed: int = 0,
    ) -> None:
        if max_map_count < 1:
            raise ValueError(f"max_map_count must be >= 1, got {max_map_count}")
        self.panic_on_warn = panic_on_warn
        self.strict = strict
        self.max_map_count = max_map_count
        self.counters = Counters()
        self.fault_inject = FaultInjection(seed)
        self.splats: list[Splat] = []
        self.dmesg: list[str] = []
        self.leaks: list[Splat] = []
        #: How many of ``leaks`` a ``check_invariants`` call has already raised for.
        self.leaks_reported = 0
        self.lockdep = Lockdep(self)
        self.rcu = Rcu(self)
        self.pages = PageAllocator(self, nr_pages, nr_hugepages)
        self.devices: dict[str, Device] = {}
        self.processes: dict[int, Process] = {}
        #: Every mm_struct not yet freed (mm_count > 0), by id.
        self.mms: dict[int, MmStruct] = {}
        self.shrinkers: list[Shrinker] = []
        #: The file LRU lists of the one node (page-cache folios reclaim may free).
        self.lruvec = Lruvec()
        self.open_files: dict[int, File] = {}
        self._pids = itertools.count(1)
        #: Per-kernel numbering of mms, VMAs, anon_vmas, files, inodes, ... (see ``new_id``).
        self._ids: dict[str, itertools.count[int]] = {}
        self._idle = Task(self, 0, "swapper/0", PF_KTHREAD)
        self._kswapd = Task(self, 0, "kswapd0", PF_KTHREAD | PF_MEMALLOC)
        self._kworker = Task(self, 0, "kworker/0:1", PF_KTHREAD)
        self._tasks: list[Task] = [self._idle]
        self._frames: list[_Frame] = []
        self._task_work: list[Callable[[], None]] = []
        self._work: list[tuple[str, Callable[[], None]]] = []
        self.fs_reclaim_map = _PseudoLock("fs_reclaim", LockClass("fs_reclaim"))
        self.seed = seed
        #: The run queue while :meth:`concurrently` runs, else None (one task at a time).
        self._sched: Scheduler | None = None
        #: What picks the next task in :meth:`concurrently` (the explorer sets its own).
        self.sched_policy: SchedPolicy | None = None
        #: Switch points one :meth:`concurrently` run may take before it is a livelock.
        self.max_steps = DEFAULT_MAX_STEPS
        exit_report.watch(self)

    # ---------------------------------------------------------------- public API

    def spawn(self, comm: str = "") -> Process:
        """A new process with an empty address space."""
        return Process(self, next(self._pids), comm)

    def concurrently(self, *bodies: Callable[[], object]) -> list[object]:
        """Run each body as its own task, interleaved, until all have finished.

        Returns each body's return value — or the :class:`KernelError` it raised — in order.
        A body runs its syscalls as the task of the :class:`Process` it calls them on (two
        bodies using one ``Process`` at once is an error: give each its own thread with
        :meth:`Process.spawn_thread`). Tasks switch only at the kernel's switch points
        (locks, sleeps, RCU unlock, syscall and fault entry, driver hooks), chosen by
        ``sched_policy`` — by default a random choice seeded with the kernel's ``seed``, so a
        run is deterministic. Work queued with ``schedule_work`` (``mmput_async``'s teardown)
        runs in a kworker task that interleaves too.

        A :class:`KernelBug`, :class:`KernelWarning`, :class:`StaleReferenceError`,
        :class:`Deadlock` (no task can run), :class:`Livelock` (no progress within
        ``max_steps`` switch points) or any other exception in a body ends the run: the other
        bodies are unwound (their ``finally`` blocks run, with reports off) and the exception
        propagates.
        """
        if self._sched is not None:
            raise RuntimeError("Kernel.concurrently: already running concurrently")
        if len(self._tasks) != 1:
            raise RuntimeError("Kernel.concurrently: call it from user space, not from a hook")
        for b in bodies:
            if not callable(b):
                raise TypeError(f"Kernel.concurrently: {b!r} is not callable")
        if not bodies:
            return []
        if self.sched_policy is None:
            self.sched_policy = RandomPolicy(self.seed)
        sched = Scheduler(self, self.sched_policy, self.max_steps)
        self._sched = sched
        try:
            results = sched.run(bodies)
        finally:
            self._sched = None
        self._run_deferred()
        return results

    def register_device(
        self, path: str, ops: FileOperationsStruct | FileOperationsProvider
    ) -> Device:
        """Register a character device at ``path`` (EEXIST if taken, EINVAL for a bad path).

        The EEXIST message names the driver that holds the path and a free path to use instead:
        the model has no ``unregister_device``, so a path is taken for the Kernel's lifetime.
        """
        p: object = path
        if not isinstance(p, str) or not p.startswith("/") or len(p) < 2:
            raise KernelError(errno.EINVAL, f"register_device: bad path {path!r}")
        if path in self.devices:
            taken = self.devices[path].fops.name
            free = next(
                f"{path}{n}"
                for n in range(1, len(self.devices) + 2)
                if f"{path}{n}" not in self.devices
            )
            raise KernelError(
                errno.EEXIST,
                f"register_device: {path} already exists (driver {taken!r}); a device stays "
                f"registered for the Kernel's lifetime (the model has no unregister_device), "
                f"so pick another path, e.g. register_device({free!r}, ...), or use a fresh "
                f"Kernel",
            )
        fops: object = (
            ops
            if isinstance(ops, FileOperationsStruct)
            else ops._safemm_file_operations_(self, path)
        )
        if not isinstance(fops, FileOperationsStruct):
            raise TypeError(f"register_device: {ops!r} is not a file_operations table")
        dev = Device(self, path, fops, len(self.devices))
        self.devices[path] = dev
        return dev

    def register_shrinker(self, shrinker: Shrinker) -> None:
        """``shrinker_register``."""
        if shrinker.registered:
            raise KernelError(errno.EBUSY, f"shrinker {shrinker.name} already registered")
        shrinker.registered = True
        self.shrinkers.append(shrinker)

    def unregister_shrinker(self, shrinker: Shrinker) -> None:
        """``shrinker_free``: after it returns, the shrinker is never called again."""
        if shrinker in self.shrinkers:
            self.shrinkers.remove(shrinker)
        shrinker.registered = False

    def shrink(self, nr_to_scan: int | None = None) -> int:
        """Memory pressure: kswapd reclaims (``shrink_node``): it scans ``nr_to_scan``
        folios of the inactive file LRU (all when None) and frees those nobody uses, then asks
        every shrinker for ``nr_to_scan`` objects (all when None). Returns the pages and
        objects freed."""
        n: object = nr_to_scan
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise KernelError(errno.EINVAL, f"shrink: bad nr_to_scan {nr_to_scan!r}")
        with self.enter(self._kswapd, "kswapd"):
            self.fs_reclaim_acquire("mm/vmscan.c:kswapd")
            try:
                return shrink_node(self, int(GFP_KERNEL), nr_to_scan, kswapd=True)
            finally:
                self.fs_reclaim_release("mm/vmscan.c:kswapd")

    def drop_caches(self) -> int:
        """``echo 1 > /proc/sys/vm/drop_caches`` (fs/drop_caches.c), written by a kernel
        thread: evict every page-cache folio on the LRU that nobody uses, asking each
        mapping's ``release_folio`` with a gfp mask of 0. Returns the folios evicted."""
        from .truncate import drop_caches

        with self.enter(self._kworker, "drop_caches"):
            return drop_caches(self)

    def flush_work(self) -> None:
        """Run all deferred work now (``flush_scheduled_work``); inside :meth:`concurrently`,
        wait until the kworker has done it."""
        s = self._sched
        if s is not None:
            s.flush_work()
        elif len(self._tasks) == 1:
            self._run_deferred()

    def check_invariants(self) -> None:
        """Check every model invariant; raise :class:`InvariantError` naming the first broken
        one (see :mod:`safemm.model.invariants`)."""
        invariants.check_invariants(self)

    @property
    def current(self) -> Task:
        """The running task (``current``)."""
        return self._tasks[-1]

    def all_tasks(self) -> Iterator[Task]:
        """Every task: the kernel threads and each live process's task."""
        yield self._idle
        yield self._kswapd
        yield self._kworker
        for p in self.processes.values():
            yield p.task

    # ---------------------------------------------------------------- reporting

    def report(
        self,
        kind: SplatKind,
        contract: str,
        message: str,
        where: str,
        *,
        title: str | None = None,
    ) -> None:
        """Print a splat naming ``contract`` and act on it as a debug kernel would.

        BUG and deadlocks raise; WARN-class reports raise :class:`KernelWarning` when
        ``panic_on_warn`` is on; leaks are also kept in ``leaks``.
        """
        s = self._sched
        if s is not None and s.aborting:
            # Unwinding the other tasks of a failed concurrent run, or the task whose report
            # ended it (a panic stops the machine: its first splat is the failure).
            return
        t = self.current
        trace = tuple(f.name for f in self._frames)
        splat = make_splat(
            kind, contract, message, where, pid=t.pid, comm=t.comm, trace=trace, title=title
        )
        text = splat.render()
        self.splats.append(splat)
        self.dmesg.append(text)
        error: KernelBug | KernelWarning | None = None
        if kind is SplatKind.DEADLOCK:
            error = Livelock(text, splat) if contract == "livelock" else Deadlock(text, splat)
        elif kind is SplatKind.BUG:
            error = KernelBug(text, splat)
        elif kind is SplatKind.LEAK:
            self.leaks.append(splat)
        elif kind in WARN_KINDS and self.panic_on_warn:
            error = KernelWarning(text, splat)
        if error is not None:
            if s is not None:
                # The concurrent run ends here: this task unwinds without switching or
                # reporting again, then the others are unwound.
                s.fail(error)
            raise error

    def leak(self, what: str, message: str) -> None:
        """Record a leak found outside any call (from a finaliser): never raises."""
        splat = make_splat(SplatKind.LEAK, "leak", message, what, pid=0, comm="finalizer")
        self.splats.append(splat)
        self.dmesg.append(splat.render())
        self.leaks.append(splat)

    # ---------------------------------------------------------------- execution context

    def enter(self, task: Task, name: str) -> _Entry:
        """Enter the kernel as ``task`` (a syscall, fault, kswapd or work item)."""
        s = self._sched
        return _Entry(self, task, name) if s is None else _SchedEntry(self, task, name, s)

    def driver_hook(self, owner: object, file: File | None, name: str) -> _DriverHook:
        """Mark that the driver ``owner`` runs ``name`` (its hook, ioctl or shrinker)."""
        s = self._sched
        if s is None or owner is None:
            return _DriverHook(self, _Frame(owner, file, name))
        return _SchedDriverHook(self, _Frame(owner, file, name), s)

    def kernel_section(self, name: str) -> _DriverHook:
        """Mark core kernel code running on behalf of whoever called it (``exit_mmap`` from a
        driver's ``mmput``, direct reclaim): it is not the driver's own code."""
        return _DriverHook(self, _Frame(None, None, name, entry=True))

    def driver_owner(self) -> object:
        """The driver whose code is running now, or None for core kernel code."""
        for f in reversed(self._frames):
            if f.owner is not None:
                return f.owner
            if f.entry:
                return None
        return None

    def driver_name(self) -> str:
        """A readable name for the running driver code (for messages)."""
        for f in reversed(self._frames):
            if f.owner is not None:
                return f.name
        return "kernel"

    def fs_reclaim_acquire(self, where: str) -> None:
        """``fs_reclaim_acquire``: record reclaim as a lock for lockdep."""
        self.lockdep.acquire(
            self.current, self.fs_reclaim_map, read=False, trylock=False, where=where
        )

    def fs_reclaim_release(self, where: str) -> None:
        """``fs_reclaim_release``."""
        self.lockdep.release(self.current, self.fs_reclaim_map, where)

    def direct_reclaim(self, gfp: int) -> None:
        """``__alloc_pages_direct_reclaim``: reclaim ``SWAP_CLUSTER_MAX`` LRU folios and run
        the shrinkers (``try_to_free_pages``) in the allocating task."""
        t = self.current
        old = t.flags
        t.flags |= PF_MEMALLOC
        self.fs_reclaim_acquire("mm/page_alloc.c:__perform_reclaim")
        try:
            with self.kernel_section("direct reclaim"):
                try_to_free_pages(self, gfp, SWAP_CLUSTER_MAX)
        finally:
            self.fs_reclaim_release("mm/page_alloc.c:__perform_reclaim")
            t.flags = old

    def task_work_add(self, fn: Callable[[], None]) -> None:
        """``task_work_add``: run ``fn`` when the current entry returns."""
        self._task_work.append(fn)

    def schedule_work(self, name: str, fn: Callable[[], None]) -> None:
        """``schedule_work``: run ``fn`` later in a kworker."""
        self._work.append((name, fn))
        if self._sched is not None:
            self._sched.work_queued()

    def file_opened(self, file: File) -> None:
        """Track an open file (for the quiescent leak check)."""
        self.open_files[file.id] = file

    def file_released(self, file: File) -> None:
        """A file's last reference is gone and ``->release`` has run."""
        self.open_files.pop(file.id, None)

    def _run_task_work(self) -> None:
        while self._task_work:
            work, self._task_work = self._task_work, []
            for fn in work:
                fn()

    def _run_deferred(self) -> None:
        while self._work or self._task_work:
            self._run_task_work()
            work, self._work = self._work, []
            for name, fn in work:
                with self.enter(self._kworker, f"kworker: {name}"):
                    fn()
        self.rcu.note_context_switch()

    def _lock_held_on_return(self, task: Task, name: str) -> None:
        held = ", ".join(f"{h.lock.name} (taken at {h.where})" for h in task.held_locks)
        self.report(
            SplatKind.LOCKDEP,
            "lock-held-return",
            f"{task.comm}/{task.pid} is leaving the kernel ({name}) with locks still held: {held}",
            "kernel/locking/lockdep.c:lockdep_sys_exit",
            title="WARNING: lock held when returning to user space!",
        )

    def new_task(self, pid: int, comm: str) -> Task:
        """A task for a new process."""
        return Task(self, pid, comm)

    def next_pid(self) -> int:
        """Allocate a pid."""
        return next(self._pids)

    def new_id(self, kind: str, first: int = 1) -> int:
        """The next number of a kind of object (``mm``, ``vma``, ``file``, ...) in this
        machine: numbered per kernel, not per interpreter, so that two machines built the
        same way name their objects alike and a schedule's trace replays word for word."""
        c = self._ids.get(kind)
        if c is None:
            c = self._ids[kind] = itertools.count(first)
        return next(c)

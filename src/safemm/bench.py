"""Scaling benchmarks: does the model cost what the kernel's data structures cost?

Run ``python -m safemm.bench`` (``--json`` for machine-readable output). Every figure is a
ratio measured within one run (a cost that grows as the kernel's does), so the verdicts do
not depend on the machine:

* **VMA operations at 64 and at 65,530 VMAs in one process.** A read of one byte of an
  already-mapped page (``Process.read``, through the page-table path), an ``mmap`` without an
  address hint, an ``munmap``, and an ``mprotect`` of one page in the middle of a mapping (a
  three-way split). Target: every ratio at most 3 — logarithmic, like the kernel's maple tree
  (a linear scan would be about 1000). A read of a present PTE never consults the VMA tree
  (nor does the hardware), so the raw maple-tree ``vma_lookup`` (``mm_mt.load``) is reported
  as an extra line, with the tree's height; so is the ``mprotect`` that merges the split back.
  ``vm.max_map_count`` is raised by 8 above the large size, because ``split_vma`` refuses to
  split at the limit (as Linux does).
* **unmap_mapping_range** of one page of a file mapped by 1 VMA, against the same file mapped
  by 1,000 VMAs spread over 100 processes of which only 10 overlap the page. Target: at most
  20 times the single-VMA cost (the kernel keeps ``i_mmap`` in an interval tree, so the 990
  other VMAs are never visited); the interval tree's ``nodes_visited`` is reported.
* **ftruncate** shrinking a memfd by its last page, when the file is mapped by 1 VMA, against
  the same file mapped by 1,000 VMAs spread over 100 processes of which only 10 cover that
  page (``shmem_setattr`` → ``unmap_mapping_range``). Target: at most 20 times the single-VMA
  cost. Each repetition first grows the file back and faults the page in again (untimed).
* **The safe layer's overhead** over the raw model on the same work: take the mmap read lock,
  look the VMA up, check VM_MIXEDMAP, insert a page, zap it, unlock. Target: at most 1.15.
* **The fuzzer's steps per second** on the tutorial driver (``fuzz_driver``, 100 programs,
  sequential and with races), and where the time goes: in the calls themselves (the model
  and the driver), in the checks after each step, and in hypothesis and the fuzzer's own
  bookkeeping. Information lines (see :func:`bench_fuzz`).
* **Task switches** inside ``Kernel.concurrently``: two threads of one process handing the CPU
  to each other with ``schedule()`` (under a policy that switches whenever it can), against an
  uncontended ``Mutex`` lock+unlock by one task outside ``concurrently``. Target: a switch
  costs at most 5 lock+unlock pairs. The same two threads ping-ponging on one mutex are an
  information line; both report switches per second.
* **The switching mechanism**, raw: a greenlet switch against two OS threads handing a baton
  (a pair of ``threading.Lock``, and a ``threading.Condition``) — why the run queue is built
  on greenlets. Information lines.
* **Schedules per second** of a three-task scenario of 21 syscalls and user accesses (three
  threads of one process each mmap, write, read, mprotect, read, write, munmap), a fresh
  ``Kernel`` per schedule and a different seed (so a different random schedule) each time —
  the explorer's unit of work. Target: at least 200 per second (an absolute figure, the one
  exception: the issue states it so); the ratio to the same bodies run one after the other
  is information.

``python -m safemm.bench --against REV`` answers another question: what does this tree cost a
single task against an earlier commit (e.g. ``e8d7f6a``, the one before the concurrency
core)? See :func:`bench_one_task`: two worker processes, one per version, run the same
workloads alternately; target at most 1.05 each.

The address-space layout of the VMA benchmarks: ``n`` VMAs of three pages each, separated by
one-page gaps (so no two merge) and alternating PROT_READ and PROT_READ|PROT_WRITE, packed
just below ``mmap_base``, except for a single four-page hole in the middle. An ``mmap`` of two
pages without a hint therefore has to find that hole by the tree's gap search (top-down, as
x86 does); the ``munmap`` removes it again. Every measured operation leaves the address space
as it found it, so repetitions are comparable; the benchmark checks that.

Timing: ``time.perf_counter_ns`` around each operation (or each loop, for the reads and
lookups); many short batches, the small and large cases (or raw and safe) alternating, after one
untimed warm-up each. A cost is the median over batches of the per-batch mean; a ratio is the
median over batch pairs of large/small, so that load from other processes during the run
cancels. The cyclic garbage collector is paused while a batch runs (as ``timeit`` does).
"""

from __future__ import annotations

import argparse
import gc
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from greenlet import GreenletExit

if TYPE_CHECKING:
    from .model.fs import AddressSpace as _RawMapping
    from .model.kernel import Kernel
    from .model.mm_types import Vma
    from .model.process import Process
    from .model.runqueue import Context, Scheduler, SwitchKind

__all__ = [
    "BenchResult",
    "bench_one_task",
    "bench_safe_layer",
    "bench_schedules",
    "bench_switch",
    "bench_switch_mechanism",
    "bench_unmap_mapping_range",
    "bench_vma_ops",
    "main",
    "run_all",
]

#: The VMA counts compared by :func:`bench_vma_ops` (64 and ``vm.max_map_count``).
SMALL_VMAS = 64
LARGE_VMAS = 65_530
#: How many VMAs the measured reads, lookups and mprotects cycle over in each process.
SAMPLE = 64

PAGE = 4096
#: Pages per VMA, and the gaps of the VMA layout (see the module docstring).
VMA_PAGES = 3
GAP_PAGES = 1
HOLE_PAGES = 4
MMAP_PAGES = 2


@dataclass(frozen=True)
class BenchResult:
    """One line of the report: a cost measured at a small and a large size.

    Attributes:
        name: What was measured.
        small: Nanoseconds per operation in the small (or baseline) case: the median over
            batches of the per-batch mean.
        large: The same for the large (or compared) case.
        ratio: ``large / small``, as the median over batches of the ratio between a large
            batch and the small batch run next to it (robust against load changes during the
            run, so it can differ a little from ``large / small``).
        small_label: What "small" means for this line (e.g. "64 VMAs").
        large_label: What "large" means for this line.
        target: The largest acceptable ``ratio``, or None.
        details: Extra figures (e.g. interval-tree nodes visited), by name.
        min_per_s: The fewest acceptable operations per second in the large case
            (``1e9 / large``), or None. A line with neither target is informational.
    """

    name: str
    small: float
    large: float
    ratio: float
    small_label: str
    large_label: str
    target: float | None = None
    details: dict[str, int | float | str] = field(default_factory=dict)
    min_per_s: float | None = None

    @property
    def per_s(self) -> float:
        """Operations per second in the large case."""
        return 1e9 / self.large if self.large > 0 else float("inf")

    @property
    def verdict(self) -> str:
        """``"pass"`` or ``"FAIL"`` against the targets; ``"info"`` without one."""
        if self.target is None and self.min_per_s is None:
            return "info"
        ok = (self.target is None or self.ratio <= self.target) and (
            self.min_per_s is None or self.per_s >= self.min_per_s
        )
        return "pass" if ok else "FAIL"

    @property
    def target_text(self) -> str:
        """The targets as the table shows them (``-`` for none)."""
        parts = []
        if self.target is not None:
            parts.append(f"<= {self.target:g}")
        if self.min_per_s is not None:
            parts.append(f">= {self.min_per_s:g}/s")
        return ", ".join(parts) or "-"

    def as_dict(self) -> dict[str, object]:
        """The result as JSON-ready data (costs in nanoseconds per operation)."""
        return {
            "name": self.name.strip(),
            "small_ns": round(self.small, 1),
            "large_ns": round(self.large, 1),
            "small_label": self.small_label,
            "large_label": self.large_label,
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "min_per_s": self.min_per_s,
            "per_s": round(self.per_s, 1),
            "verdict": self.verdict,
            "details": dict(self.details),
        }


# --------------------------------------------------------------------------------------------
# timing


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (as ``timeit`` does), collecting first."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


# A batch runs ``reps`` operations and returns their total time in ns, per named cost.
_Batch = Callable[[int], dict[str, int]]


@dataclass(frozen=True)
class _Pair:
    """One cost measured on both sides: medians of the per-batch means, and the median of
    the paired per-batch ratios."""

    small: float
    large: float
    ratio: float


def _interleaved(batches: int, reps: int, small: _Batch, large: _Batch) -> dict[str, _Pair]:
    """Run the two batch functions alternately (which goes first alternates every round,
    after one untimed warm-up each) and summarise every named cost they report."""
    got: tuple[dict[str, list[float]], dict[str, list[float]]] = ({}, {})
    fns = (small, large)
    for fn in fns:
        fn(max(1, reps // 4))
    for b in range(batches):
        order = (0, 1) if b % 2 == 0 else (1, 0)
        for side in order:
            with _no_gc():
                totals = fns[side](reps)
            for name, ns in totals.items():
                got[side].setdefault(name, []).append(ns / reps)
    out: dict[str, _Pair] = {}
    for name, s in got[0].items():
        lg = got[1][name]
        ratios = [b / a if a > 0 else float("inf") for a, b in zip(s, lg, strict=True)]
        out[name] = _Pair(_median(s), _median(lg), _median(ratios))
    return out


def _result(
    name: str,
    pair: _Pair,
    labels: tuple[str, str],
    target: float | None = None,
    details: Mapping[str, int | float | str] | None = None,
    *,
    min_per_s: float | None = None,
) -> BenchResult:
    return BenchResult(
        name,
        pair.small,
        pair.large,
        pair.ratio,
        labels[0],
        labels[1],
        target,
        dict(details or {}),
        min_per_s,
    )


# --------------------------------------------------------------------------------------------
# VMA operations at 64 and 65,530 VMAs


@dataclass
class _Layout:
    """A process whose address space follows the benchmark layout (module docstring)."""

    process: Process
    #: Start address of each VMA, highest first.
    starts: list[int]
    #: Where the two-page mmap without a hint must land (the top of the middle hole).
    hole_target: int


def _build_layout(kernel: Kernel, n: int) -> _Layout:
    """Spawn a process and map ``n`` non-mergeable three-page VMAs below ``mmap_base``."""
    from .model.mman import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE

    p = kernel.spawn(f"bench{n}")
    top = p.mm.mmap_base
    starts: list[int] = []
    end = top
    hole_target = 0
    for i in range(n):
        if i == n // 2:
            # The gap below the previous VMA grows to HOLE_PAGES; a top-down search puts the
            # new mapping at the top of it.
            hole_target = end + (GAP_PAGES - MMAP_PAGES) * PAGE
            end -= (HOLE_PAGES - GAP_PAGES) * PAGE
        start = end - VMA_PAGES * PAGE
        prot = PROT_READ if i % 2 else PROT_READ | PROT_WRITE
        p.mmap(start, VMA_PAGES * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        starts.append(start)
        end = start - GAP_PAGES * PAGE
    if len(p.mm.mm_mt) != n:
        raise AssertionError(f"layout has {len(p.mm.mm_mt)} VMAs, wanted {n} (some merged)")
    return _Layout(p, starts, hole_target)


def _sample(starts: list[int], k: int) -> list[int]:
    """``k`` VMA starts spread evenly over the address space (all of them if fewer)."""
    n = len(starts)
    if n <= k:
        return list(starts)
    return [starts[(i * n) // k + (n // k) // 2] for i in range(k)]


def _vma_batches(layout: _Layout) -> tuple[_Batch, _Batch, dict[str, int]]:
    """The batch functions of one process: the stateless reads and lookups, the mutating
    operations, and a dict the latter fill with the gap search's ``nodes_visited``."""
    from .model.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_EXEC, PROT_NONE, PROT_READ

    p = layout.process
    mm = p.mm
    load = mm.mm_mt.load
    read = p.read
    vma_starts = _sample(layout.starts, SAMPLE)
    # Middle page of each sampled VMA: mapped (prefaulted) for the reads, split by mprotect.
    mids = [s + PAGE for s in vma_starts]
    for a in mids:
        read(a, 1)
    prots = [_prot_of(mm.mm_mt.load(a)) for a in mids]
    n_vmas = len(mm.mm_mt)
    mmap_len = MMAP_PAGES * PAGE
    # PROT_READ|PROT_EXEC differs from both neighbours' protections: the new VMA never merges.
    mmap_prot = PROT_READ | PROT_EXEC
    mmap_flags = MAP_PRIVATE | MAP_ANONYMOUS
    stats: dict[str, int] = {}
    counters = p.kernel.counters

    def lookups(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        n = len(mids)
        rounds = max(1, reps // n)
        t_read = 0
        t_load = 0
        faults = counters.pgfault
        for _ in range(rounds):
            t0 = clock()
            for a in mids:
                read(a, 1)
            t1 = clock()
            for a in mids:
                load(a)
            t2 = clock()
            t_read += t1 - t0
            t_load += t2 - t1
        if counters.pgfault != faults:
            raise AssertionError("a measured read faulted: the page was not mapped")
        scale = reps / (rounds * n)
        return {"read": int(t_read * scale), "load": int(t_load * scale)}

    def mutations(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        t_mmap = t_munmap = t_split = t_merge = 0
        n = len(mids)
        for i in range(reps):
            t0 = clock()
            a = p.mmap(None, mmap_len, mmap_prot, mmap_flags)
            t1 = clock()
            visited = mm.mm_mt.nodes_visited
            p.munmap(a, mmap_len)
            t2 = clock()
            mid = mids[i % n]
            p.mprotect(mid, PAGE, PROT_NONE)
            t3 = clock()
            if i == 0 and len(mm.mm_mt) != n_vmas + 2:
                raise AssertionError("the mprotect did not split the VMA in three")
            p.mprotect(mid, PAGE, prots[i % n])
            t4 = clock()
            t_mmap += t1 - t0
            t_munmap += t2 - t1
            t_split += t3 - t2
            t_merge += t4 - t3
            if a != layout.hole_target:
                raise AssertionError(f"mmap landed at {a:#x}, not in the hole")
            stats["gap_search_nodes"] = max(stats.get("gap_search_nodes", 0), visited)
        if len(mm.mm_mt) != n_vmas:
            raise AssertionError(f"{len(mm.mm_mt)} VMAs after the batch, {n_vmas} before")
        return {"mmap": t_mmap, "munmap": t_munmap, "split": t_split, "merge": t_merge}

    return lookups, mutations, stats


def _prot_of(vma: Vma | None) -> int:
    from .model.mman import PROT_READ, PROT_WRITE
    from .model.vm_flags import VM_READ, VM_WRITE

    if vma is None:
        raise AssertionError("sampled address is not mapped")
    return (PROT_READ if vma.vm_flags & VM_READ else 0) | (
        PROT_WRITE if vma.vm_flags & VM_WRITE else 0
    )


def bench_vma_ops(
    small: int = SMALL_VMAS,
    large: int = LARGE_VMAS,
    *,
    reps: int = 100,
    batches: int = 21,
    lookup_reps: int = 1024,
) -> list[BenchResult]:
    """Measure the per-VMA-count costs (module docstring) at ``small`` and ``large`` VMAs.

    Args:
        small: VMAs in the small process (at least 2).
        large: VMAs in the large process (at least 2).
        reps: Mutating operations (mmap+munmap, mprotect split+merge) per batch.
        batches: Batches per size; the median batch counts.
        lookup_reps: Reads and lookups per batch.

    Returns:
        Results for the read, the raw lookup, mmap, munmap, the mprotect split and the merge.
    """
    from .model.kernel import Kernel

    if small < 2 or large < 2:
        raise ValueError("need at least 2 VMAs per process")
    # A three-way split needs two VMAs of headroom below vm.max_map_count (split_vma refuses
    # at the limit, as Linux does), so the limit is raised just above the largest size.
    k = Kernel(max_map_count=max(large, small) + 8)
    lay_s = _build_layout(k, small)
    lay_l = _build_layout(k, large)
    look_s, mut_s, st_s = _vma_batches(lay_s)
    look_l, mut_l, st_l = _vma_batches(lay_l)
    look = _interleaved(batches, lookup_reps, look_s, look_l)
    mut = _interleaved(batches, reps, mut_s, mut_l)
    if k.dmesg:
        raise AssertionError("the benchmark produced kernel reports:\n" + "\n".join(k.dmesg))
    labels = (f"{small:,} VMAs", f"{large:,} VMAs")
    heights = {
        "tree_height_small": lay_s.process.mm.mm_mt.height(),
        "tree_height_large": lay_l.process.mm.mm_mt.height(),
    }
    gap_nodes = {
        "gap_search_nodes_small": st_s.get("gap_search_nodes", 0),
        "gap_search_nodes_large": st_l.get("gap_search_nodes", 0),
    }
    return [
        _result("VMA lookup (read of a mapped page)", look["read"], labels, 3),
        _result("  raw maple-tree vma_lookup", look["load"], labels, None, heights),
        _result("mmap, no address hint", mut["mmap"], labels, 3, gap_nodes),
        _result("munmap", mut["munmap"], labels, 3),
        _result("mprotect 1 page mid-VMA (split)", mut["split"], labels, 3),
        _result("  mprotect back (merge)", mut["merge"], labels),
    ]


# --------------------------------------------------------------------------------------------
# unmap_mapping_range over i_mmap


#: The file page offset that every benchmark ``unmap_mapping_range`` call zaps.
TARGET_PGOFF = 10_000
#: Pages per file VMA; every VMA that overlaps the target starts at most 3 pages before it.
FILE_VMA_PAGES = 4


class _BenchDriver:
    """Identifies the benchmark's device driver (the ``owner`` of its hooks)."""

    __slots__ = ()


def _register_mixedmap_device(kernel: Kernel, path: str, owner: object) -> None:
    """A device whose ``->mmap`` sets VM_MIXEDMAP; all its opens share one address space."""
    from .model.fs import File, FileOperationsStruct
    from .model.vm_flags import VM_MIXEDMAP

    try:
        from .model.vm_flags_update import vm_flags_set
    except ImportError:  # a tree from before vm_flags_update.py (``--against`` an old commit)
        from .model.vma import vm_flags_set  # type: ignore[attr-defined, no-redef]

    def mmap(file: File, vma: Vma) -> None:
        vm_flags_set(vma, VM_MIXEDMAP)

    kernel.register_device(path, FileOperationsStruct("bench_mixedmap", mmap=mmap, owner=owner))


@dataclass
class _FileMappings:
    """A file mapped by many VMAs (see :func:`_build_file_mappings`)."""

    kernel: Kernel
    mapping: _RawMapping
    #: The VMAs that overlap the target page, with the address of that page in each.
    hits: list[tuple[Vma, int]]
    nr_vmas: int


def _build_file_mappings(n_procs: int, vmas_per_proc: int, n_hits: int) -> _FileMappings:
    """One file mapped ``n_procs * vmas_per_proc`` times, ``n_hits`` of them over the target.

    The overlapping VMAs are spread over the processes; the others map file offsets far below
    and far above the target, so the interval tree has to prune on both sides.
    """
    from .model.kernel import Kernel
    from .model.mman import MAP_SHARED, PROT_READ

    k = Kernel()
    path = "/dev/bench_mixedmap"
    _register_mixedmap_device(k, path, _BenchDriver())
    total = n_procs * vmas_per_proc
    if not 1 <= n_hits <= total:
        raise ValueError(f"n_hits must be in [1, {total}]")
    stride = total // n_hits
    misses_below = (total - n_hits) // 2
    length = FILE_VMA_PAGES * PAGE
    hits: list[tuple[Vma, int]] = []
    mapping: _RawMapping | None = None
    hit_no = miss_no = 0
    for j in range(n_procs):
        p = k.spawn(f"umr{j}")
        fd = p.open(path)
        for m in range(vmas_per_proc):
            g = j * vmas_per_proc + m
            if g % stride == 0 and hit_no < n_hits:
                # Overlaps the target: starts 0-3 pages before it.
                pgoff = TARGET_PGOFF - hit_no % FILE_VMA_PAGES
                hit_no += 1
            elif miss_no < misses_below:
                pgoff = miss_no * 2 * FILE_VMA_PAGES
                miss_no += 1
            else:
                pgoff = TARGET_PGOFF + 16 * FILE_VMA_PAGES + (miss_no - misses_below) * 8
                miss_no += 1
            addr = p.mmap(None, length, PROT_READ, MAP_SHARED, fd, pgoff * PAGE)
            vma = p.mm.mm_mt.load(addr)
            assert vma is not None
            if vma.vm_pgoff <= TARGET_PGOFF < vma.vm_pgoff + vma.pages:
                hits.append((vma, addr + (TARGET_PGOFF - vma.vm_pgoff) * PAGE))
            f = vma.vm_file
            assert f is not None
            if mapping is not None and f.f_mapping is not mapping:
                raise AssertionError("the opens of the device do not share one address space")
            mapping = f.f_mapping
    assert mapping is not None
    if len(hits) != n_hits or len(mapping.i_mmap) != total:
        raise AssertionError(
            f"{len(hits)} overlapping VMAs (wanted {n_hits}), {len(mapping.i_mmap)} in i_mmap "
            f"(wanted {total})"
        )
    return _FileMappings(k, mapping, hits, total)


def _unmap_batch(fm: _FileMappings) -> tuple[_Batch, list[int]]:
    """Time ``unmap_mapping_range`` of the target page, re-inserting it (untimed) each time.

    Returns the batch function and a list that collects ``nodes_visited`` of each query.
    """
    from .model.memory import unmap_mapping_range, vm_insert_page
    from .model.mmap_lock import mmap_read_lock, mmap_read_unlock
    from .model.page_alloc import GFP_KERNEL, PageKind

    k = fm.kernel
    mapping = fm.mapping
    hits = fm.hits
    task = next(iter(k.processes.values())).task
    visited: list[int] = []
    with k.enter(task, "bench setup"):
        page = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
    start = TARGET_PGOFF * PAGE

    def batch(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        total = 0
        with k.enter(task, "bench unmap_mapping_range"):
            for _ in range(reps):
                for vma, addr in hits:
                    mm = vma.vm_mm
                    mmap_read_lock(mm)
                    vm_insert_page(vma, addr, page)
                    mmap_read_unlock(mm)
                zapped = k.counters.ptes_zapped
                t0 = clock()
                unmap_mapping_range(mapping, start, PAGE)
                total += clock() - t0
                if k.counters.ptes_zapped - zapped != len(hits):
                    raise AssertionError("unmap_mapping_range did not zap every inserted page")
                visited.append(mapping.i_mmap.nodes_visited)
        return {"unmap": total}

    return batch, visited


def bench_unmap_mapping_range(
    *,
    n_procs: int = 100,
    vmas_per_proc: int = 10,
    n_hits: int = 10,
    reps: int = 100,
    batches: int = 21,
) -> list[BenchResult]:
    """``unmap_mapping_range`` of one page: a file mapped by 1 VMA against one mapped by
    ``n_procs * vmas_per_proc`` VMAs of which ``n_hits`` overlap the page.

    Args:
        n_procs: Processes mapping the file in the large case.
        vmas_per_proc: VMAs per process in the large case.
        n_hits: How many of those VMAs overlap the page.
        reps: Calls per batch.
        batches: Batches per case; the median batch counts.

    Returns:
        One result; ``details`` has the interval tree's ``nodes_visited`` per query.
    """
    one = _build_file_mappings(1, 1, 1)
    many = _build_file_mappings(n_procs, vmas_per_proc, n_hits)
    b1, v1 = _unmap_batch(one)
    bn, vn = _unmap_batch(many)
    got = _interleaved(batches, reps, b1, bn)
    for fm in (one, many):
        if fm.kernel.dmesg:
            raise AssertionError("kernel reports:\n" + "\n".join(fm.kernel.dmesg))
    return [
        _result(
            "unmap_mapping_range, 1 page",
            got["unmap"],
            ("1 VMA", f"{many.nr_vmas:,} VMAs/{n_procs} procs, {n_hits} hit"),
            20,
            {
                "nodes_visited_small": max(v1, default=0),
                "nodes_visited_large": max(vn, default=0),
                "vmas_large": many.nr_vmas,
                "overlapping_large": n_hits,
            },
        )
    ]


class _ManyMappings(Protocol):
    """A file mapped by many VMAs: its machine and how many VMAs map it."""

    @property
    def kernel(self) -> Kernel: ...

    @property
    def nr_vmas(self) -> int: ...


_M = TypeVar("_M", bound=_ManyMappings)


def _one_vma_against_many(
    name: str,
    build: Callable[[int, int, int], _M],
    make_batch: Callable[[_M], _Batch],
    shape: tuple[int, int, int],
    hit: tuple[str, str],
    *,
    reps: int,
    batches: int,
) -> list[BenchResult]:
    """Time one operation on a file mapped by 1 VMA against one mapped as ``shape`` says
    (processes, VMAs in each, VMAs over the target: ``build``'s arguments), check both
    machines ended without a report, and give the result (target 20). ``hit`` names what the
    VMAs over the target do, in the label and in the details."""
    one, many = build(1, 1, 1), build(*shape)
    got = _interleaved(batches, reps, make_batch(one), make_batch(many))
    for m in (one, many):
        if m.kernel.dmesg:
            raise AssertionError("kernel reports:\n" + "\n".join(m.kernel.dmesg))
    (pair,) = got.values()
    n_procs, _, n_hits = shape
    verb, key = hit
    large = f"{many.nr_vmas:,} VMAs/{n_procs} procs, {n_hits} {verb}"
    details = {"vmas_large": many.nr_vmas, key: n_hits}
    return [_result(name, pair, ("1 VMA", large), 20, details)]


def _reclaim_batch(fm: _FileMappings) -> _Batch:
    """Time core reclaim of one page-cache folio at the target offset, mapped (untimed) in
    every overlapping VMA and not used since (the accessed bits clear): one kswapd pass,
    which walks the reverse map for young PTEs (``folio_referenced``), walks it again to
    unmap the folio everywhere (``try_to_unmap``), asks ``release_folio`` and frees it."""
    from .model.filemap import filemap_add_folio, folio_unlock
    from .model.fs import AddressSpaceOperationsStruct
    from .model.memory import vm_insert_page
    from .model.mmap_lock import mmap_read_lock, mmap_read_unlock
    from .model.page_alloc import GFP_KERNEL, PageKind

    k = fm.kernel
    mapping = fm.mapping
    mapping.a_ops = AddressSpaceOperationsStruct("bench_aops", release_folio=lambda p, g: True)
    mapping.release_always = True
    task = next(iter(k.processes.values())).task

    def batch(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        total = 0
        for _ in range(reps):
            with k.enter(task, "bench setup"):
                page = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
                filemap_add_folio(mapping, page, TARGET_PGOFF, int(GFP_KERNEL))
                folio_unlock(k, page)
                k.pages.put_page(page)  # the page cache's reference is the last
                for vma, addr in fm.hits:
                    mmap_read_lock(vma.vm_mm)
                    vm_insert_page(vma, addr, page)
                    mmap_read_unlock(vma.vm_mm)
                    pte = vma.vm_mm.pgtables.lookup(addr // PAGE)
                    assert pte is not None
                    pte.young = False  # mapped long ago, not touched since
            stolen = k.counters.pgsteal_kswapd
            t0 = clock()
            k.shrink()
            total += clock() - t0
            if k.counters.pgsteal_kswapd - stolen != 1 or mapping.pages:
                raise AssertionError("the kswapd pass did not reclaim the folio")
        return {"reclaim": total}

    return batch


def bench_lru_reclaim(
    *, shape: tuple[int, int, int] = (100, 10, 10), reps: int = 50, batches: int = 21
) -> list[BenchResult]:
    """Core reclaim of one mapped, unused page-cache folio by a kswapd pass
    (``shrink_folio_list``: ``folio_referenced``, ``try_to_unmap``, ``release_folio``,
    ``__remove_mapping``), on a file mapped by 1 VMA against one mapped by many: the
    reverse-map walks visit only the VMAs that map the folio.

    Args:
        shape: the large case: processes, VMAs in each, and how many of all those VMAs map
            the folio.
        reps: folios reclaimed per batch.
        batches: batches per case (the median batch counts).

    Returns:
        One result.
    """
    return _one_vma_against_many(
        "core reclaim of 1 mapped folio",
        _build_file_mappings,
        _reclaim_batch,
        shape,
        ("map it", "mapping_large"),
        reps=reps,
        batches=batches,
    )


# --------------------------------------------------------------------------------------------
# safe layer overhead


def _safe_cycle_batches() -> tuple[_Batch, _Batch, Callable[[], None]]:
    """The raw and the safe lock/lookup/check/insert/zap/unlock cycle on one kernel, process
    and VMA (each batch runs inside its own driver context), and a cleanup that frees the
    pages and checks that the kernel reported nothing."""
    from .model.kernel import Kernel
    from .model.memory import vm_insert_page, zap_page_range_single
    from .model.mman import MAP_SHARED, PROT_READ
    from .model.mmap_lock import mmap_read_lock, mmap_read_unlock, vma_lookup
    from .model.page_alloc import GFP_KERNEL, PageKind
    from .model.vm_flags import VM_MIXEDMAP
    from .page import Page
    from .task import current
    from .testing import driver_context

    k = Kernel()
    owner = _BenchDriver()
    path = "/dev/bench_mixedmap"
    _register_mixedmap_device(k, path, owner)
    p = k.spawn("safe")
    fd = p.open(path)
    addr = p.mmap(None, 4 * PAGE, PROT_READ, MAP_SHARED, fd, 0) + PAGE
    mm = p.mm
    with driver_context(k, p, owner):
        raw_page = k.pages.alloc_page(int(GFP_KERNEL), PageKind.KERNEL)
        safe_page = Page.alloc_page()
    counters = k.counters

    def raw(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        zapped = counters.ptes_zapped
        with driver_context(k, p, owner):
            t0 = clock()
            for _ in range(reps):
                mmap_read_lock(mm)
                vma = vma_lookup(mm, addr)
                if vma is None or not vma.vm_flags & VM_MIXEDMAP:
                    raise AssertionError("no VM_MIXEDMAP VMA")
                vm_insert_page(vma, addr, raw_page)
                zap_page_range_single(vma, addr, PAGE)
                mmap_read_unlock(mm)
            t1 = clock()
        if counters.ptes_zapped - zapped != reps:
            raise AssertionError("not every raw cycle inserted and zapped a page")
        return {"cycle": t1 - t0}

    def safe(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        zapped = counters.ptes_zapped
        with driver_context(k, p, owner):
            user = current().mm()
            assert user is not None
            t0 = clock()
            for _ in range(reps):
                guard = user.mmap_read_lock()
                vma = guard.vma_lookup(addr)
                mixed = None if vma is None else vma.as_mixedmap_vma()
                if mixed is None:
                    raise AssertionError("no VM_MIXEDMAP VMA")
                mixed.vm_insert_page(addr, safe_page)
                mixed.zap_page_range_single(addr, PAGE)
                guard.unlock()
            t1 = clock()
        if counters.ptes_zapped - zapped != reps:
            raise AssertionError("not every safe cycle inserted and zapped a page")
        return {"cycle": t1 - t0}

    def cleanup() -> None:
        with driver_context(k, p, owner):
            safe_page.free()
            k.pages.put_page(raw_page, "bench")
        if k.dmesg:
            raise AssertionError("kernel reports:\n" + "\n".join(k.dmesg))

    return raw, safe, cleanup


def bench_safe_layer(*, reps: int = 300, batches: int = 31) -> list[BenchResult]:
    """The same lock/lookup/check/insert/zap/unlock cycle through the raw model and through
    the safe layer, on one kernel, process and VMA, in interleaved batches.

    Args:
        reps: Cycles per batch.
        batches: Batches per side; the median batch counts.

    Returns:
        One result: ``small`` is the raw model, ``large`` the safe layer.
    """
    raw, safe, cleanup = _safe_cycle_batches()
    got = _interleaved(batches, reps, raw, safe)
    cleanup()
    return [
        _result(
            "safe layer: lock+lookup+insert+zap", got["cycle"], ("raw model", "safe layer"), 1.15
        )
    ]


@dataclass
class _MemfdMappings:
    """A memfd mapped by many VMAs in many processes (see :func:`_build_memfd_mappings`)."""

    kernel: Kernel
    owner: Process
    fd: int
    size: int
    #: The processes and addresses whose VMAs cover the file's last page.
    hits: list[tuple[Process, int]]
    nr_vmas: int


def _build_memfd_mappings(n_procs: int, vmas_per_proc: int, n_hits: int) -> _MemfdMappings:
    """One memfd, made by a process that then forks ``n_procs`` children (which inherit the
    descriptor); the children map it ``vmas_per_proc`` times each, ``n_hits`` of the mappings
    ending at the file's last page and the others far below it."""
    from .model.kernel import Kernel
    from .model.mman import MAP_SHARED, PROT_READ

    total = n_procs * vmas_per_proc
    if not 1 <= n_hits <= total:
        raise ValueError(f"n_hits must be in [1, {total}]")
    k = Kernel()
    owner = k.spawn("memfd-owner")
    fd = owner.memfd_create("bench")
    last = TARGET_PGOFF + FILE_VMA_PAGES
    size = last * PAGE
    owner.ftruncate(fd, size)
    stride = total // n_hits
    hits: list[tuple[Process, int]] = []
    g = 0
    for j in range(n_procs):
        p = owner.fork()
        p.comm = f"memfd{j}"
        for _ in range(vmas_per_proc):
            if g % stride == 0 and len(hits) < n_hits:
                pgoff = last - FILE_VMA_PAGES
            else:
                pgoff = (g % 1000) * FILE_VMA_PAGES
            addr = p.mmap(None, FILE_VMA_PAGES * PAGE, PROT_READ, MAP_SHARED, fd, pgoff * PAGE)
            if pgoff == last - FILE_VMA_PAGES:
                hits.append((p, addr + (FILE_VMA_PAGES - 1) * PAGE))
            g += 1
    if len(hits) != n_hits:
        raise AssertionError(f"{len(hits)} VMAs cover the last page (wanted {n_hits})")
    return _MemfdMappings(k, owner, fd, size, hits, total)


def _ftruncate_batch(mf: _MemfdMappings) -> _Batch:
    """Time ``ftruncate`` to one page less; grow back and fault the page in (untimed)."""
    k = mf.kernel

    def batch(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        total = 0
        for _ in range(reps):
            mf.owner.ftruncate(mf.fd, mf.size)
            for p, addr in mf.hits:
                p.read(addr, 1)
            zapped = k.counters.ptes_zapped
            t0 = clock()
            mf.owner.ftruncate(mf.fd, mf.size - PAGE)
            total += clock() - t0
            if k.counters.ptes_zapped - zapped != len(mf.hits):
                raise AssertionError("ftruncate did not zap the page from every mapping")
        return {"ftruncate": total}

    return batch


def bench_ftruncate(
    *,
    n_procs: int = 100,
    vmas_per_proc: int = 10,
    n_hits: int = 10,
    reps: int = 50,
    batches: int = 21,
) -> list[BenchResult]:
    """``ftruncate`` shrinking a memfd by one page: mapped by 1 VMA against mapped by
    ``n_procs * vmas_per_proc`` VMAs of which ``n_hits`` cover the page.

    Args:
        n_procs: Processes mapping the file in the large case.
        vmas_per_proc: VMAs per process in the large case.
        n_hits: How many of those VMAs cover the page.
        reps: Calls per batch.
        batches: Batches per case; the median batch counts.

    Returns:
        One result.
    """
    return _one_vma_against_many(
        "ftruncate, shrink by 1 page",
        _build_memfd_mappings,
        _ftruncate_batch,
        (n_procs, vmas_per_proc, n_hits),
        ("hit", "overlapping_large"),
        reps=reps,
        batches=batches,
    )


# --------------------------------------------------------------------------------------------
# the fuzzer


def _tutorial_factory() -> Callable[[], object]:
    """The tutorial driver (examples/ is importable from a checkout); else the fuzzer's own
    bystander driver."""
    try:
        from examples.tutorial import HelloDriver
    except ImportError:
        from .fuzz import BystanderDriver

        return BystanderDriver
    return HelloDriver


def bench_fuzz(*, examples: int = 100, seed: int = 0) -> list[BenchResult]:
    """Steps per second of ``fuzz_driver`` on the tutorial driver (sequential, then with
    races), and where the time goes.

    One result per mode: ``small`` is the time per step spent in the calls themselves (the
    model and the driver), ``large`` the time per step of the whole run, so the ratio is the
    fuzzer's cost over the model's. The details split the rest: the checks after every step
    (dmesg, ``check_invariants``, the end-of-program exits and leak check) and what remains —
    hypothesis (drawing every argument and rule, its engine) and the fuzzer's bookkeeping
    (recording the program). The tutorial driver is clean, so nothing is shrunk.
    """
    try:
        from .fuzz import fuzz_driver
    except ImportError:  # hypothesis is not installed (the `fuzz` extra)
        return []
    factory = _tutorial_factory()
    out: list[BenchResult] = []
    for label, conc in (("sequential", False), ("with races", True)):
        gc.collect()
        t0 = time.perf_counter()
        r = fuzz_driver(factory, examples=examples, seed=seed, concurrency=conc, minimize=False)
        total = time.perf_counter() - t0
        if not r.ok:
            raise AssertionError("the tutorial driver failed:\n" + r.report())
        cov = r.coverage
        steps = max(1, cov.steps)
        rest = max(0.0, total - cov.call_seconds - cov.check_seconds)
        per = 1e9 / steps
        out.append(
            BenchResult(
                f"fuzz_driver step, {label}",
                cov.call_seconds * per,
                total * per,
                total / max(cov.call_seconds, 1e-9),
                "calls (model)",
                "whole step",
                None,
                {
                    "steps_per_s": round(steps / total),
                    "steps": cov.steps,
                    "programs": cov.examples,
                    "calls_pct": round(100 * cov.call_seconds / total, 1),
                    "checks_pct": round(100 * cov.check_seconds / total, 1),
                    "hypothesis_and_fuzzer_pct": round(100 * rest / total, 1),
                },
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# concurrency: task switches, the switching mechanism, schedules


class _Alternate:
    """A scheduling policy that always hands the CPU to another context when it can (the
    next one in context order): every decision is a switch."""

    __slots__ = ()

    def begin(self, sched: Scheduler) -> None:
        """Nothing to prepare."""

    def choose(
        self,
        sched: Scheduler,
        kind: SwitchKind,
        label: str,
        current: Context | None,
        candidates: Sequence[Context],
    ) -> Context:
        """The first candidate after ``current`` in context order (wrapping around)."""
        if current is None:
            return candidates[0]
        for c in candidates:
            if c.index > current.index:
                return c
        return candidates[0]


def _handoffs(seq: list[int]) -> int:
    """How many times consecutive entries of ``seq`` (which context ran) differ."""
    return sum(1 for a, b in itertools.pairwise(seq) if a != b)


def _switch_batches() -> tuple[_Batch, _Batch]:
    """The uncontended lock (a task's ``Mutex`` lock+unlock outside ``concurrently``) and
    two threads switching inside ``Kernel.concurrently``: by ``schedule()`` (each call hands
    the CPU to the other thread) and by contending on one mutex under a policy that switches
    at every switch point. Costs are per lock+unlock and per switch."""
    from .model.kernel import Kernel
    from .model.locking import Mutex
    from .model.sched import schedule

    def lock(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        k = Kernel()
        p = k.spawn("lock")
        m = Mutex("bench_mutex")
        with k.enter(p.task, "bench mutex"):
            t0 = clock()
            for _ in range(reps):
                m.lock(k)
                m.unlock(k)
            t1 = clock()
        return {"yield": t1 - t0, "mutex": t1 - t0}

    def switches(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        k = Kernel()
        k.sched_policy = _Alternate()
        p = k.spawn("switch")
        threads = [p, p.spawn_thread()]
        m = Mutex("bench_mutex")
        ran: list[int] = []
        rounds = max(1, reps // 2)

        def yielder(i: int) -> Callable[[], None]:
            def body() -> None:
                with k.enter(threads[i].task, "bench schedule"):
                    for _ in range(rounds):
                        ran.append(i)
                        schedule(k, "kernel/sched/core.c:schedule")

            return body

        def locker(i: int) -> Callable[[], None]:
            def body() -> None:
                with k.enter(threads[i].task, "bench mutex"):
                    for _ in range(rounds):
                        ran.append(i)
                        m.lock(k)
                        ran.append(i)
                        m.unlock(k)

            return body

        t0 = clock()
        k.concurrently(yielder(0), yielder(1))
        t1 = clock()
        n_yield = _handoffs(ran)
        ran.clear()
        t2 = clock()
        k.concurrently(locker(0), locker(1))
        t3 = clock()
        n_mutex = _handoffs(ran)
        if k.dmesg or not n_yield or not n_mutex:
            raise AssertionError("the switch benchmark did not switch:\n" + "\n".join(k.dmesg))
        # Totals per ``reps`` switches, so that the per-rep mean is the cost of one switch.
        return {"yield": (t1 - t0) * reps // n_yield, "mutex": (t3 - t2) * reps // n_mutex}

    return lock, switches


def bench_switch(*, reps: int = 2000, batches: int = 21) -> list[BenchResult]:
    """Task switches inside ``Kernel.concurrently`` against an uncontended mutex
    lock+unlock outside it (in interleaved batches).

    Args:
        reps: Switches (and lock+unlock pairs) per batch.
        batches: Batches per side; the median batch counts.

    Returns:
        The ``schedule()`` ping-pong (target: a switch within 5 lock+unlock pairs) and the
        mutex ping-pong (information); ``details`` has the switches per second.
    """
    lock, switches = _switch_batches()
    got = _interleaved(batches, reps, lock, switches)
    labels = ("mutex lock+unlock", "one switch")
    return [
        _result(
            "task switch (2 threads, schedule())",
            got["yield"],
            labels,
            5,
            {"switches_per_s": round(1e9 / got["yield"].large)},
        ),
        _result(
            "  mutex ping-pong, per switch",
            got["mutex"],
            labels,
            None,
            {"switches_per_s": round(1e9 / got["mutex"].large)},
        ),
    ]


def _greenlet_batch(reps: int) -> dict[str, int]:
    """Two greenlets switching to each other: ``reps`` switches."""
    from greenlet import greenlet

    clock = time.perf_counter_ns
    main = greenlet.getcurrent()
    rounds = max(1, reps // 2)

    def other() -> None:
        while True:
            main.switch()

    g = greenlet(other)
    g.switch()
    t0 = clock()
    for _ in range(rounds):
        g.switch()
    t1 = clock()
    g.throw(GreenletExit)
    total = (t1 - t0) * reps // (2 * rounds)
    return {"locks": total, "condition": total}


def _thread_batch(reps: int) -> dict[str, int]:
    """Two OS threads handing a baton: by a pair of ``threading.Lock`` (each waits on its
    own, releases the other's), and by a ``threading.Condition`` and a turn variable;
    ``reps`` handoffs each."""
    clock = time.perf_counter_ns
    rounds = max(1, reps // 2)
    mine, theirs = threading.Lock(), threading.Lock()
    mine.acquire()
    theirs.acquire()

    def other_locks() -> None:
        for _ in range(rounds):
            theirs.acquire()
            mine.release()

    t = threading.Thread(target=other_locks)
    t.start()
    t0 = clock()
    for _ in range(rounds):
        theirs.release()
        mine.acquire()
    t1 = clock()
    t.join()

    cv = threading.Condition()
    turn = [0]

    def other_cv() -> None:
        with cv:
            for _ in range(rounds):
                while turn[0] != 1:
                    cv.wait()
                turn[0] = 0
                cv.notify()

    t = threading.Thread(target=other_cv)
    t.start()
    with cv:
        t2 = clock()
        for _ in range(rounds):
            turn[0] = 1
            cv.notify()
            while turn[0] != 0:
                cv.wait()
        t3 = clock()
    t.join()
    scale = reps / (2 * rounds)
    return {"locks": int((t1 - t0) * scale), "condition": int((t3 - t2) * scale)}


def bench_switch_mechanism(*, reps: int = 2000, batches: int = 11) -> list[BenchResult]:
    """The raw switching mechanisms the scheduler could be built on: a greenlet switch
    against two OS threads handing a baton (the GIL goes with it), in interleaved batches.

    Args:
        reps: Switches per batch and mechanism.
        batches: Batches per side; the median batch counts.

    Returns:
        Two information lines, ``small`` the greenlet switch: a baton of two locks, and one
        of a condition variable.
    """
    got = _interleaved(batches, reps, _greenlet_batch, _thread_batch)
    return [
        _result(
            "raw switch: thread baton (2 Locks)",
            got["locks"],
            ("greenlet switch", "thread handoff"),
            None,
            {
                "greenlet_switches_per_s": round(1e9 / got["locks"].small),
                "thread_switches_per_s": round(1e9 / got["locks"].large),
            },
        ),
        _result(
            "  thread baton (Condition)",
            got["condition"],
            ("greenlet switch", "thread handoff"),
            None,
            {"thread_switches_per_s": round(1e9 / got["condition"].large)},
        ),
    ]


#: Operations of each body of the three-task scenario (7 per thread, 21 in all).
SCENARIO_OPS = 7


def _scenario(seed: int, *, concurrent: bool) -> int:
    """The three-task scenario on a fresh kernel: three threads of one process each map two
    pages, write, read, mprotect one page read-only, read and write the other, and unmap —
    interleaved by the default (seeded random) policy, or run one after the other. Returns
    the switch points the run passed (0 when not concurrent)."""
    from .model.kernel import Kernel
    from .model.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE

    k = Kernel(seed=seed)
    p = k.spawn("sched")
    threads = [p, p.spawn_thread(), p.spawn_thread()]
    anon = MAP_PRIVATE | MAP_ANONYMOUS
    rw = PROT_READ | PROT_WRITE

    def body(t: Process) -> Callable[[], None]:
        def run() -> None:
            a = t.mmap(None, 2 * PAGE, rw, anon)
            t.write(a, b"schedule")
            if t.read(a, 8) != b"schedule":
                raise AssertionError("read back something else")
            t.mprotect(a, PAGE, PROT_READ)
            t.read(a + PAGE, 1)
            t.write(a + PAGE, b"x")
            t.munmap(a, 2 * PAGE)

        return run

    bodies = [body(t) for t in threads]
    steps = 0
    if concurrent:
        counter = _StepCounter(k)
        k.sched_policy = counter
        res = k.concurrently(*bodies)
        if any(r is not None for r in res):
            raise AssertionError(f"a body failed: {res}")
        steps = counter.steps
    else:
        for b in bodies:
            b()
    if k.dmesg:
        raise AssertionError("kernel reports:\n" + "\n".join(k.dmesg))
    return steps


class _StepCounter:
    """The default policy (random, seeded with the kernel's seed), remembering how many
    switch points the run passed."""

    __slots__ = ("policy", "sched")

    def __init__(self, kernel: Kernel) -> None:
        from .model.runqueue import RandomPolicy

        self.policy = RandomPolicy(kernel.seed)
        self.sched: Scheduler | None = None

    @property
    def steps(self) -> int:
        """Switch points of the (last) run."""
        return 0 if self.sched is None else self.sched.steps

    def begin(self, sched: Scheduler) -> None:
        """Remember the run's scheduler (its step count is read afterwards)."""
        self.sched = sched

    def choose(
        self,
        sched: Scheduler,
        kind: SwitchKind,
        label: str,
        current: Context | None,
        candidates: Sequence[Context],
    ) -> Context:
        """The random policy's choice."""
        self.sched = sched
        return self.policy.choose(sched, kind, label, current, candidates)


def bench_schedules(*, reps: int = 20, batches: int = 11) -> list[BenchResult]:
    """Schedules per second of the three-task scenario (:func:`_scenario`): a fresh kernel
    per schedule, a different seed each time, against the same bodies run one after the
    other on a fresh kernel (in interleaved batches).

    Args:
        reps: Schedules (and sequential runs) per batch.
        batches: Batches per side; the median batch counts.

    Returns:
        One line (target: at least 200 schedules per second); ``details`` has the schedules
        per second and the mean switch points per schedule.
    """
    seeds = itertools.count()
    steps: list[int] = []

    def sequential(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        t0 = clock()
        for _ in range(reps):
            _scenario(0, concurrent=False)
        return {"schedule": clock() - t0}

    def concurrent(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        t0 = clock()
        for _ in range(reps):
            steps.append(_scenario(next(seeds), concurrent=True))
        return {"schedule": clock() - t0}

    got = _interleaved(batches, reps, sequential, concurrent)
    return [
        _result(
            f"3-task schedule ({3 * SCENARIO_OPS} syscalls)",
            got["schedule"],
            ("sequential", "one schedule"),
            None,
            {
                "schedules_per_s": round(1e9 / got["schedule"].large),
                "switch_points_per_schedule": round(statistics.mean(steps)),
            },
            min_per_s=200,
        )
    ]


# --------------------------------------------------------------------------------------------
# one task: this tree against an earlier commit

#: The commit before the concurrency core (the one-task figures must stay within 5% of it).
BASELINE = "e8d7f6a"

#: The workload groups of the one-task comparison and their operations per batch.
ONE_TASK_REPS = {
    "lookups": 1024,
    "mutations": 100,
    "unmap": 100,
    "safe": 300,
    "syscalls": 200,
    "faults": 200,
    "mutex": 2000,
    "kernel": 4,
}

#: What each measured cost of the one-task comparison is, in report order.
ONE_TASK_NAMES = {
    "read": "read of a mapped page",
    "load": "raw maple-tree vma_lookup",
    "mmap": "mmap, no address hint",
    "munmap": "munmap",
    "split": "mprotect split",
    "merge": "mprotect merge",
    "unmap": "unmap_mapping_range",
    "raw cycle": "raw lock+lookup+insert+zap",
    "safe cycle": "safe layer cycle",
    "syscall": "mmap+write+munmap",
    "fault": "write fault (first touch)",
    "mutex": "mutex lock+unlock",
    "kernel": "Kernel()",
}


def _one_task_groups() -> dict[str, _Batch]:
    """The workloads of :func:`bench_one_task`, built with whichever ``safemm`` is imported:
    the VMA operations at 64 VMAs, ``unmap_mapping_range`` over 1,000 VMAs, the raw and the
    safe cycle (the costs behind the main figures), a syscall loop, a fault loop, an
    uncontended mutex and ``Kernel()`` itself. They use only what both versions have."""
    from .model.kernel import Kernel
    from .model.locking import Mutex
    from .model.mman import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE

    k = Kernel(max_map_count=SMALL_VMAS + 8)
    lookups, mutations, _ = _vma_batches(_build_layout(k, SMALL_VMAS))
    unmap, _ = _unmap_batch(_build_file_mappings(100, 10, 10))
    raw, safe, cleanup = _safe_cycle_batches()
    p = k.spawn("one_task")
    anon = MAP_PRIVATE | MAP_ANONYMOUS
    rw = PROT_READ | PROT_WRITE
    m = Mutex("bench_mutex")

    def cycles(reps: int) -> dict[str, int]:
        return {"raw cycle": raw(reps)["cycle"], "safe cycle": safe(reps)["cycle"]}

    def syscalls(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        t0 = clock()
        for _ in range(reps):
            a = p.mmap(None, PAGE, rw, anon)
            p.write(a, b"x")
            p.munmap(a, PAGE)
        return {"syscall": clock() - t0}

    def faults(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        a = p.mmap(None, reps * PAGE, rw, anon)
        before = k.counters.pgfault
        t0 = clock()
        for i in range(reps):
            p.write(a + i * PAGE, b"x")
        t1 = clock()
        if k.counters.pgfault - before != reps:
            raise AssertionError("not every first write faulted")
        p.munmap(a, reps * PAGE)
        return {"fault": t1 - t0}

    def mutex(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        with k.enter(p.task, "bench mutex"):
            t0 = clock()
            for _ in range(reps):
                m.lock(k)
                m.unlock(k)
            t1 = clock()
        return {"mutex": t1 - t0}

    def kernels(reps: int) -> dict[str, int]:
        clock = time.perf_counter_ns
        t0 = clock()
        for _ in range(reps):
            Kernel()
        return {"kernel": clock() - t0}

    def done(reps: int) -> dict[str, int]:
        cleanup()
        return {}

    return {
        "done": done,
        "lookups": lookups,
        "mutations": mutations,
        "unmap": unmap,
        "safe": cycles,
        "syscalls": syscalls,
        "faults": faults,
        "mutex": mutex,
        "kernel": kernels,
    }


def _one_task_worker() -> None:
    """The worker process of :func:`bench_one_task`: says which ``safemm`` it imported, then
    runs each requested batch (``"GROUP REPS"`` lines on stdin) with the collector paused
    and answers with its totals in nanoseconds (one JSON object a line)."""
    import safemm

    groups = _one_task_groups()
    print(json.dumps({"safemm": safemm.__file__}), flush=True)
    for line in sys.stdin:
        group, reps = line.split()
        with _no_gc():
            totals = groups[group](int(reps))
        print(json.dumps(totals), flush=True)


# Run by each worker with ``python -P -c``: loads this file (whichever tree it is in) as a
# module of the ``safemm`` package found on PYTHONPATH, so its relative imports measure
# that version of the model.
_WORKER_BOOT = """\
import importlib.util, sys
import safemm
spec = importlib.util.spec_from_file_location("safemm._bench_one_task", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = mod
spec.loader.exec_module(mod)
mod._one_task_worker()
"""


class _Worker:
    """A worker process importing ``safemm`` from ``src``."""

    def __init__(self, src: Path, cwd: str, cpu: int | None) -> None:
        env = dict(os.environ, PYTHONPATH=str(src), PYTHONHASHSEED="0")
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _WORKER_BOOT, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})
        hello = self._line()
        where = hello.get("safemm")
        if not isinstance(where, str) or not Path(where).resolve().is_relative_to(src):
            self.close()
            raise RuntimeError(f"the worker for {src} imported safemm from {where}")

    def _line(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a one-task worker died (exit status {self.proc.wait()})")
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise RuntimeError(f"a one-task worker said {line!r}")
        return {str(k): v for k, v in doc.items()}

    def run(self, group: str, reps: int) -> dict[str, int]:
        """One batch of ``group``: total nanoseconds per named cost."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{group} {reps}\n")
        self.proc.stdin.flush()
        out: dict[str, int] = {}
        for name, ns in self._line().items():
            if not isinstance(ns, int):
                raise RuntimeError(f"a one-task worker reported {name}={ns!r}")
            out[name] = ns
        return out

    def close(self) -> None:
        """End the worker: it frees what it allocated, then closing its input ends its
        loop."""
        if self.proc.poll() is None:
            try:
                self.run("done", 0)
            except (OSError, RuntimeError):
                pass
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc.wait()


def _checkout(rev: str, dest: str) -> Path:
    """Extract ``src/`` of ``rev`` (from the repository this file is in) under ``dest``."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=here, check=True, capture_output=True).stdout

    top = git("rev-parse", "--show-toplevel").decode().strip()
    tar = subprocess.run(
        ["git", "archive", "--format=tar", rev, "src"], cwd=top, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(dest, filter="data")
    return Path(dest) / "src"


def bench_one_task(
    against: str = BASELINE, *, batches: int = 40, rounds: int = 4, scale: float = 1.0
) -> list[BenchResult]:
    """The one-task costs of this tree against commit ``against``, in one run.

    Two worker processes, one importing this tree's ``src/`` and one ``src/`` of ``against``
    (extracted with ``git archive`` to a temporary directory), run the same workloads
    (:func:`_one_task_groups`), batch by batch and alternately (which goes first alternates),
    both on one CPU; a ratio is the median over batch pairs of this tree's cost over the
    other's. A pair of processes has a bias of its own (code and heap layout: up to 2% when
    a tree is compared with itself), so the batches are spread over ``rounds`` pairs of fresh
    workers. Target: at most 1.05 (issue 9: no cost when there is one task). Needs a git
    checkout.

    Args:
        against: The commit to compare with.
        batches: Batches per group and side, in all rounds together.
        rounds: Pairs of worker processes, one after the other.
        scale: Multiplies the operations per batch (:data:`ONE_TASK_REPS`).

    Returns:
        One result per cost (:data:`ONE_TASK_NAMES`): ``small`` is ``against``, ``large``
        this tree.
    """
    src = Path(__file__).resolve().parents[1]
    got: tuple[dict[str, list[float]], dict[str, list[float]]] = ({}, {})
    rounds = max(1, min(rounds, batches))
    with tempfile.TemporaryDirectory(prefix="safemm-bench-") as tmp:
        base = _checkout(against, tmp)
        # Both workers on one CPU: load from other processes on a shared machine then slows
        # both alike (on two CPUs, one of them could be the busy one all along).
        cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        for r in range(rounds):
            workers = (_Worker(base, tmp, cpu), _Worker(src, tmp, cpu))
            try:
                for group, reps in ONE_TASK_REPS.items():
                    n = max(1, round(reps * scale))
                    for w in workers:
                        w.run(group, max(1, n // 4))
                    for b in range(batches * r // rounds, batches * (r + 1) // rounds):
                        for side in (0, 1) if b % 2 == 0 else (1, 0):
                            for name, ns in workers[side].run(group, n).items():
                                got[side].setdefault(name, []).append(ns / n)
            finally:
                for w in workers:
                    w.close()
    out = []
    labels = (against, "this tree")
    for name, what in ONE_TASK_NAMES.items():
        s, lg = got[0][name], got[1][name]
        ratios = [b / a if a > 0 else float("inf") for a, b in zip(s, lg, strict=True)]
        pair = _Pair(_median(s), _median(lg), _median(ratios))
        out.append(_result(f"one task: {what}", pair, labels, 1.05))
    return out


# --------------------------------------------------------------------------------------------
# report


#: What ``safemm check`` is measured on (relative to the repository root).
CHECK_PATHS = ("src/safemm/demo", "examples")


def bench_static_check(
    *, runs: int = 7, paths: Sequence[str] = CHECK_PATHS, cwd: str | None = None
) -> list[BenchResult]:
    """``safemm check`` against mypy's own time on the same files, both with a warm cache,
    each as the user runs it (a fresh process). Target: at most twice mypy's time.

    Runs alternate (mypy, check, mypy, check, ...) after one warm-up of each; the ratio is
    the median of the per-pair ratios.
    """
    import subprocess

    mypy_cmd = [sys.executable, "-m", "mypy", *paths]
    check_cmd = [sys.executable, "-m", "safemm.cli", "check", *paths]

    def timed(cmd: list[str]) -> float:
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - t0
        if done.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
        return elapsed * 1e9

    timed(mypy_cmd)
    timed(check_cmd)
    pairs = [(timed(mypy_cmd), timed(check_cmd)) for _ in range(max(1, runs))]
    label = " + ".join(paths)
    return [
        BenchResult(
            "safemm check (warm cache) vs mypy",
            _median([m for m, _ in pairs]),
            _median([c for _, c in pairs]),
            _median([c / m for m, c in pairs]),
            f"mypy {label}",
            f"safemm check {label}",
            target=2.0,
        )
    ]


def run_all(
    *,
    small: int = SMALL_VMAS,
    large: int = LARGE_VMAS,
    scale: float = 1.0,
    static: bool = True,
) -> list[BenchResult]:
    """Run every benchmark; ``scale`` multiplies the repetition counts; ``static`` adds
    :func:`bench_static_check` (needs mypy and the repository's files)."""

    def n(x: int) -> int:
        return max(1, round(x * scale))

    out = bench_vma_ops(small, large, reps=n(100), lookup_reps=n(1024))
    out += bench_unmap_mapping_range(reps=n(100))
    out += bench_ftruncate(reps=n(50))
    out += bench_lru_reclaim(reps=n(50))
    out += bench_safe_layer(reps=n(300))
    out += bench_switch(reps=n(2000))
    out += bench_switch_mechanism(reps=n(2000))
    out += bench_schedules(reps=n(20))
    if static:
        out += bench_static_check(runs=n(7))
    out += bench_fuzz(examples=n(100))
    return out


def _fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def format_table(results: Sequence[BenchResult]) -> str:
    """The results as a plain-text table (costs per operation)."""
    rows = [("benchmark", "small", "large", "ratio", "target", "verdict")]
    for r in results:
        rows.append(
            (
                r.name,
                _fmt_ns(r.small),
                _fmt_ns(r.large),
                f"{r.ratio:.2f}",
                r.target_text,
                r.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    legend: dict[tuple[str, str], list[str]] = {}
    for r in results:
        legend.setdefault((r.small_label, r.large_label), []).append(r.name.strip())
    lines.append("")
    for (s, lg), names in legend.items():
        lines.append(f"small = {s}, large = {lg}: {'; '.join(names)}")
    for r in results:
        if r.details:
            extra = ", ".join(f"{k}={v}" for k, v in r.details.items())
            lines.append(f"{r.name.strip()}: {extra}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the table (or JSON with ``--json``); exit 1 if a target fails."""
    ap = argparse.ArgumentParser(prog="python -m safemm.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--small", type=int, default=SMALL_VMAS, help="VMAs in the small process")
    ap.add_argument("--large", type=int, default=LARGE_VMAS, help="VMAs in the large process")
    ap.add_argument(
        "--scale", type=float, default=1.0, help="multiply the repetition counts (default 1)"
    )
    ap.add_argument(
        "--against",
        metavar="REV",
        help="instead, compare the one-task costs of this tree with commit REV (in a git "
        f"checkout), e.g. {BASELINE}, the commit before the concurrency core",
    )
    ap.add_argument(
        "--no-static", action="store_true", help="leave out the safemm check vs mypy benchmark"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.against is not None:
        results = bench_one_task(args.against, scale=args.scale)
    else:
        results = run_all(
            small=args.small, large=args.large, scale=args.scale, static=not args.no_static
        )
    elapsed = time.perf_counter() - t0
    if args.json:
        doc = {
            "python": sys.version.split()[0],
            "elapsed_s": round(elapsed, 2),
            "results": [r.as_dict() for r in results],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(format_table(results))
        print(f"\n(python {sys.version.split()[0]}, {elapsed:.1f} s)")
    return 0 if all(r.verdict != "FAIL" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

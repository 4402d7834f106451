"""Scenarios of the kernel's own user-space tests, as fixed sequences of the suite's steps.

Each scenario ports one test function of ``tools/testing/selftests/mm/`` (and
``tools/testing/selftests/memfd/``) of the Linux tree: the same calls in the same order, in
the suite's window, with the test's assertions turned into expectations on the results —
which steps succeed or fail with which errno, which bytes loads read back, which ranges are
exactly one VMA (``find_vma_procmap``, ``get_vm_area`` and ``is_range_mapped`` in the
selftests). :func:`run_scenario` runs one on both sides: it checks the expectations on the
running kernel (a scenario whose expectation the kernel itself does not meet is reported
with :attr:`Scenario.kernel_differs`, not dropped) and compares the model with the kernel
step by step, as every sequence of the suite is compared.

The ports are exact in the calls that matter and adapted where the suite's window demands
it, which each scenario's :attr:`Scenario.adaptation` says: areas are scaled to fit the
16-page region (five pages become three or two), addresses the selftest lets the kernel
choose (``mmap(NULL, ...)``, ``mremap(MREMAP_MAYMOVE)`` without ``MREMAP_FIXED``) become
fixed addresses in the window, a move "1000 pages away" lands at the window's free end, and
contents are checked on one byte per page instead of ``memcmp`` of whole pages. The window
starts as one PROT_NONE private anonymous mapping, which is the ``carveout`` reservation of
``merge.c``; tests that need free address space unmap a range of it first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from .compare import Mismatch, compare_results
from .ops import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Fork,
    Ftruncate,
    InChild,
    Mlock,
    Mmap,
    MmapFile,
    Mprotect,
    Mremap,
    Munlock,
    Munmap,
    Op,
    Pread,
    Pwrite,
    RawMmap,
    RawMremap,
    Read,
    Write,
)
from .steps import SequenceResult, Side

__all__ = ["SCENARIOS", "Scenario", "ScenarioReport", "run_scenario"]

_RW: Final = PROT_READ | PROT_WRITE
_RWX: Final = PROT_READ | PROT_WRITE | PROT_EXEC
_PRIV: Final = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
_NORESERVE: Final = _PRIV | MAP_NORESERVE
_SHARED: Final = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED
_NOREPLACE: Final = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE
_SHARED_NOREPLACE: Final = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE
_MOVE: Final = MREMAP_MAYMOVE | MREMAP_FIXED
_DONTUNMAP: Final = _MOVE | MREMAP_DONTUNMAP
_A: Final = 0x61  # 'a'
_X: Final = 0x58  # 'X'

Span: TypeAlias = tuple[int, int]
Step: TypeAlias = Op | tuple[Op, str]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One ported selftest: its steps and what the selftest asserts about them.

    Invariant: ``outcomes`` indexes steps of ``ops``; every other step is expected to
    return ``ok`` (the selftests assert success of every call they do not expect to fail).

    Attributes:
        name: ``FILE:FUNCTION`` of the selftest function ported, e.g.
            ``merge.c:mprotect_unfaulted_left``.
        source: the path of the selftest file in the Linux tree.
        doc: what the selftest checks (the porting function's docstring).
        ops: the steps.
        outcomes: expected outcome text (``str(Outcome)``) of some steps, by index.
        vmas: ranges (region pages, end exclusive) that the parent's final layout must
            show as exactly one VMA each.
        child_vmas: the same for the child's final layout.
        vmas_after: the same for the parent's layout right after some steps, by index.
        adaptation: how the port differs from the selftest.
        kernel_differs: why the running kernel does not meet the expectation, or ``""``.
    """

    name: str
    source: str
    doc: str
    ops: tuple[Op, ...]
    outcomes: dict[int, str] = field(default_factory=dict)
    vmas: tuple[Span, ...] = ()
    child_vmas: tuple[Span, ...] = ()
    vmas_after: dict[int, tuple[Span, ...]] = field(default_factory=dict)
    adaptation: str = ""
    kernel_differs: str = ""

    def unmet(self, result: SequenceResult) -> list[str]:
        """The expectations ``result`` does not meet (empty: all met)."""
        out: list[str] = []
        for index, step in enumerate(result.steps):
            want = self.outcomes.get(index)
            got = str(step.outcome)
            if want is not None and got != want:
                out.append(f"step {index} {self.ops[index]!r}: expected {want}, got {got}")
            elif want is None and step.outcome.kind != "ok":
                out.append(f"step {index} {self.ops[index]!r}: expected success, got {got}")
        if not result.steps:
            return out
        last = result.steps[-1]
        checks = [
            ("parent", self.vmas, last.layout),
            ("child", self.child_vmas, last.child),
            *(
                (f"after step {index}", spans, result.steps[index].layout)
                for index, spans in self.vmas_after.items()
            ),
        ]
        for who, spans, layout in checks:
            seen = set() if layout is None else {(vma.start, vma.end) for vma in layout.vmas}
            out += [
                f"{who}: [{lo},{hi}) is not one VMA in {layout}"
                for lo, hi in spans
                if (lo, hi) not in seen
            ]
        return out


def _steps(*items: Step) -> tuple[tuple[Op, ...], dict[int, str]]:
    ops: list[Op] = []
    outcomes: dict[int, str] = {}
    for item in items:
        if isinstance(item, tuple):
            op, want = item
            outcomes[len(ops)] = want
            ops.append(op)
        else:
            ops.append(item)
    return tuple(ops), outcomes


SCENARIOS: list[Scenario] = []
"""Every ported scenario, in the order they are defined."""

_Port: TypeAlias = Callable[[], tuple[tuple[Step, ...], dict[str, object]]]


def _port(source: str, function: str = "") -> Callable[[_Port], _Port]:
    """Register the scenario a function builds: named ``FILE:FUNCTION`` after the
    selftest function it ports (``function``, else the porting function's own name)."""

    def register(build: _Port) -> _Port:
        items, extra = build()
        ops, outcomes = _steps(*items)
        vmas = extra.get("vmas", ())
        child_vmas = extra.get("child_vmas", ())
        after = extra.get("vmas_after", {})
        assert isinstance(after, dict)
        adaptation = extra.get("adaptation", "")
        differs = extra.get("kernel_differs", "")
        assert isinstance(vmas, tuple) and isinstance(child_vmas, tuple)
        assert isinstance(adaptation, str) and isinstance(differs, str)
        SCENARIOS.append(
            Scenario(
                name=f"{source.rsplit('/', 1)[-1]}:{function or build.__name__}",
                source=source,
                doc=" ".join((build.__doc__ or "").split()),
                ops=ops,
                outcomes=outcomes,
                vmas=tuple((int(a), int(b)) for a, b in vmas),
                child_vmas=tuple((int(a), int(b)) for a, b in child_vmas),
                vmas_after={
                    int(i): tuple((int(a), int(b)) for a, b in spans) for i, spans in after.items()
                },
                adaptation=adaptation,
                kernel_differs=differs,
            )
        )
        return build

    return register


_MERGE: Final = "tools/testing/selftests/mm/merge.c"
_MERGE_SCALE: Final = (
    "five-page areas are three pages (two where three areas must fit); the carveout is the "
    "window's PROT_NONE reservation, carveout[page] region page `page`"
)


# --- merge.c ----------------------------------------------------------------------------------


@_port(_MERGE)
def mprotect_unfaulted_left() -> tuple[tuple[Step, ...], dict[str, object]]:
    """An unfaulted read-only left part and a faulted read/write right part merge once the
    right part is made read-only too (MAP_NORESERVE, so VM_ACCOUNT does not differ)."""
    return (
        Mmap(1, 6, _RW, _NORESERVE),
        Mprotect(1, 3, PROT_READ),
        Write(4, 0, _A),
        Mprotect(4, 3, PROT_READ),
    ), {"vmas": ((1, 7),), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def mprotect_unfaulted_right() -> tuple[tuple[Step, ...], dict[str, object]]:
    """The mirror image: a faulted left part made read-only merges with an unfaulted
    read-only right part."""
    return (
        Mmap(1, 6, _RW, _NORESERVE),
        Mprotect(4, 3, PROT_READ),
        Write(1, 0, _A),
        Mprotect(1, 3, PROT_READ),
    ), {"vmas": ((1, 7),), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def mprotect_unfaulted_both() -> tuple[tuple[Step, ...], dict[str, object]]:
    """A faulted middle part made read-only merges with unfaulted read-only parts on both
    sides."""
    return (
        Mmap(2, 9, _RW, _NORESERVE),
        Mprotect(2, 3, PROT_READ),
        Mprotect(8, 3, PROT_READ),
        Write(5, 0, _A),
        Mprotect(5, 3, PROT_READ),
    ), {"vmas": ((2, 11),), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def mprotect_faulted_left_unfaulted_right() -> tuple[tuple[Step, ...], dict[str, object]]:
    """Faulted left and middle parts (one anon_vma) and an unfaulted right part: making the
    middle read-only merges all three."""
    return (
        Mmap(2, 9, _RW, _NORESERVE),
        Mprotect(8, 3, PROT_READ),
        Write(2, 0, _A),
        Mprotect(2, 3, PROT_READ),
        Mprotect(5, 3, PROT_READ),
    ), {"vmas": ((2, 11),), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def mprotect_unfaulted_left_faulted_right() -> tuple[tuple[Step, ...], dict[str, object]]:
    """An unfaulted left part and faulted middle and right parts: making the middle
    read-only merges all three."""
    return (
        Mmap(2, 9, _RW, _NORESERVE),
        Mprotect(2, 3, PROT_READ),
        Write(5, 0, _A),
        Mprotect(8, 3, PROT_READ),
        Mprotect(5, 3, PROT_READ),
    ), {"vmas": ((2, 11),), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def forked_target_vma() -> tuple[tuple[Step, ...], dict[str, object]]:
    """In a fork child, a new mapping next to a faulted VMA inherited from the parent is not
    merged into it, even after the child has unCOWed every page."""
    return (
        Mmap(1, 3, _RW, _PRIV),
        Write(1, 0, _A),
        Fork(),
        *(InChild(Write(page, 0, _A)) for page in range(1, 4)),
        InChild(Mmap(4, 3, _RW, _PRIV)),
    ), {"child_vmas": ((1, 4), (4, 7)), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def forked_source_vma() -> tuple[tuple[Step, ...], dict[str, object]]:
    """In a fork child, a faulted inherited VMA mprotected to match an unfaulted neighbour
    is not merged into it (the forked VMA would be the source of the anon_vma)."""
    return (
        Mmap(1, 3, _RW, _NORESERVE),
        Write(1, 0, _A),
        Fork(),
        *(InChild(Write(page, 0, _A)) for page in range(1, 4)),
        InChild(Mmap(4, 3, _RWX, _NORESERVE)),
        InChild(Mprotect(1, 3, _RWX)),
    ), {"child_vmas": ((1, 4), (4, 7)), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def ksm_merge() -> tuple[tuple[Step, ...], dict[str, object]]:
    """Two adjacent read/write mappings merge; after unmapping both, the same two mappings
    merge again."""
    return (
        Mmap(1, 1, _RW, _PRIV),
        Mmap(2, 1, _RW, _PRIV),
        Munmap(2, 1),
        Mmap(2, 1, _RW, _PRIV),
        Munmap(1, 2),
        Mmap(1, 1, _RW, _PRIV),
        Mmap(2, 1, _RW, _PRIV),
    ), {
        "vmas": ((1, 3),),
        "adaptation": "the middle part, which turns on KSM (PR_SET_MEMORY_MERGE) before "
        "mapping the second page again, is run without KSM: the suite has no prctl",
    }


@_port(_MERGE)
def mremap_unfaulted_to_faulted() -> tuple[tuple[Step, ...], dict[str, object]]:
    """An unfaulted VMA moved right behind a faulted one merges with it."""
    return (
        Mmap(1, 3, _RW, _PRIV),
        Mmap(5, 3, _RW, _PRIV),
        Mremap(5, 3, 3, _MOVE, 12),
        Write(1, 0, _A),
        Mremap(12, 3, 3, _MOVE, 4),
    ), {"vmas": ((1, 7),), "adaptation": _MERGE_SCALE + "; 'further away' is page 12"}


@_port(_MERGE)
def mremap_unfaulted_behind_faulted() -> tuple[tuple[Step, ...], dict[str, object]]:
    """An unfaulted VMA moved right in front of a faulted one merges with it."""
    return (
        Mmap(4, 3, _RW, _PRIV),
        Mmap(9, 3, _RW, _PRIV),
        Mremap(9, 3, 3, _MOVE, 13),
        Write(4, 0, _A),
        Mremap(13, 3, 3, _MOVE, 1),
    ), {"vmas": ((1, 7),), "adaptation": _MERGE_SCALE + "; 'further away' is page 13"}


@_port(_MERGE)
def mremap_unfaulted_between_faulted() -> tuple[tuple[Step, ...], dict[str, object]]:
    """An unfaulted VMA moved between two faulted ones with different anon_vmas merges with
    the first only."""
    return (
        Mmap(0, 2, _RW, _PRIV),
        Mmap(3, 2, _RW, _PRIV),
        Mmap(6, 2, _RW, _PRIV),
        Mremap(6, 2, 2, _MOVE, 14),
        Mremap(3, 2, 2, _MOVE, 10),
        Write(0, 0, _A),
        Write(14, 0, _A),
        Mremap(14, 2, 2, _MOVE, 4),
        Mremap(10, 2, 2, _MOVE, 2),
    ), {"vmas": ((0, 4), (4, 6)), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def mremap_unfaulted_between_faulted_unfaulted() -> tuple[tuple[Step, ...], dict[str, object]]:
    """An unfaulted VMA moved between a faulted and an unfaulted one merges all three."""
    return (
        Mmap(0, 2, _RW, _PRIV),
        Mmap(3, 2, _RW, _PRIV),
        Mmap(6, 2, _RW, _PRIV),
        Mremap(6, 2, 2, _MOVE, 14),
        Mremap(3, 2, 2, _MOVE, 10),
        Write(0, 0, _A),
        Mremap(14, 2, 2, _MOVE, 4),
        Mremap(10, 2, 2, _MOVE, 2),
    ), {"vmas": ((0, 6),), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def mremap_unfaulted_between_correctly_placed_faulted() -> tuple[
    tuple[Step, ...], dict[str, object]
]:
    """The two faulted halves of one mapping (one anon_vma, page offsets in place) and an
    unfaulted VMA moved into the hole between them merge into one."""
    return (
        Mmap(0, 6, _RW, _PRIV),
        Write(0, 0, _A),
        Munmap(2, 2),
        Mmap(12, 2, _RW, _PRIV),
        Mremap(12, 2, 2, _MOVE, 2),
    ), {"vmas": ((0, 6),), "adaptation": _MERGE_SCALE}


@_port(_MERGE)
def mremap_correct_placed_faulted() -> tuple[tuple[Step, ...], dict[str, object]]:
    """Faulted pieces of one mapping moved away and back into their places merge again,
    whichever piece moves."""
    return (
        Mmap(0, 6, _RW, _PRIV),
        Write(0, 0, _A),
        Mremap(4, 2, 2, _MOVE, 14),
        Mremap(2, 2, 2, _MOVE, 10),
        Mremap(10, 2, 2, _MOVE, 2),
        Mremap(0, 2, 2, _MOVE, 10),
        Mremap(10, 2, 2, _MOVE, 0),
    ), {
        "vmas": ((0, 4), (14, 16)),
        "adaptation": _MERGE_SCALE + "; ported up to the second merge back into place",
    }


# --- map_fixed_noreplace.c --------------------------------------------------------------------


@_port("tools/testing/selftests/mm/map_fixed_noreplace.c", "main")
def map_fixed_noreplace_main() -> tuple[tuple[Step, ...], dict[str, object]]:
    """MAP_FIXED_NOREPLACE maps into free space, and fails with EEXIST over any page that is
    mapped: the same range, a range inside, overlapping the end or the start; pages right
    next to a mapping are free."""
    return (
        Munmap(4, 5),
        Mmap(4, 5, PROT_NONE, _NOREPLACE),
        Munmap(4, 5),
        Mmap(5, 3, PROT_NONE, _NOREPLACE),
        (Mmap(4, 5, PROT_NONE, _NOREPLACE), "-EEXIST"),
        (Mmap(6, 1, PROT_NONE, _NOREPLACE), "-EEXIST"),
        (Mmap(7, 2, PROT_NONE, _NOREPLACE), "-EEXIST"),
        (Mmap(4, 2, PROT_NONE, _NOREPLACE), "-EEXIST"),
        Mmap(4, 1, PROT_NONE, _NOREPLACE),
        Mmap(8, 1, PROT_NONE, _NOREPLACE),
        Munmap(4, 5),
    ), {
        "adaptation": "the free base the test finds with mmap(NULL)+munmap is region page 4, "
        "unmapped from the window first; the test's second call, mmap() of 2*PAGE_SIZE at "
        "base+2*PAGE_SIZE, maps one page, as the test's code does",
    }


# --- mremap_test.c ----------------------------------------------------------------------------

_MREMAP_TEST: Final = "tools/testing/selftests/mm/mremap_test.c"


@_port(_MREMAP_TEST)
def mremap_expand_merge() -> tuple[tuple[Step, ...], dict[str, object]]:
    """Three pages, the middle one unmapped; growing the first page in place into the hole
    merges it with the third: one mapping of three pages."""
    return (
        Munmap(4, 3),
        Mmap(4, 3, _RW, _PRIV),
        Munmap(5, 1),
        Mremap(4, 1, 2),
    ), {"vmas": ((4, 7),), "adaptation": "mmap(NULL) is a fixed mapping at region page 4"}


@_port(_MREMAP_TEST)
def mremap_expand_merge_offset() -> tuple[tuple[Step, ...], dict[str, object]]:
    """Three pages, the last one unmapped; growing the second page in place restores one
    mapping of three pages."""
    return (
        Munmap(4, 3),
        Mmap(4, 3, _RW, _PRIV),
        Munmap(6, 1),
        Mremap(5, 1, 2),
    ), {"vmas": ((4, 7),), "adaptation": "mmap(NULL) is a fixed mapping at region page 4"}


_REMAP_REGION: Final = (
    "remap_region with one configuration of main()'s test_cases: the source is a shared "
    "anonymous mapping made with MAP_FIXED_NOREPLACE in free space (unmapped from the window "
    "first), filled with a pattern (one byte per page), moved with MREMAP_MAYMOVE|MREMAP_FIXED "
    "and read back at the destination"
)


@_port(_MREMAP_TEST, "remap_region[3]")
def remap_region_pte_aligned() -> tuple[tuple[Step, ...], dict[str, object]]:
    """test_cases[3], "8KB mremap - Source PTE-aligned, Destination PTE-aligned": the
    pattern is found at the destination."""
    return (
        Munmap(2, 2),
        Mmap(2, 2, _RW, _SHARED_NOREPLACE),
        Write(2, 0, 0x11),
        Write(3, 0, 0x22),
        Munmap(5, 2),
        Mremap(2, 2, 2, _MOVE, 5),
        (Read(5, 0), "ok 0x11"),
        (Read(6, 0), "ok 0x22"),
    ), {"adaptation": _REMAP_REGION}


@_port(_MREMAP_TEST, "remap_region[0]")
def remap_region_overlapping() -> tuple[tuple[Step, ...], dict[str, object]]:
    """test_cases[0], "mremap - Source and Destination Regions Overlapping": the move is
    refused (EINVAL) and the source stays."""
    return (
        Munmap(2, 1),
        Mmap(2, 1, _RW, _SHARED_NOREPLACE),
        Write(2, 0, 0x11),
        (Mremap(2, 1, 1, _MOVE, 2), "-EINVAL"),
        (Read(2, 0), "ok 0x11"),
    ), {"vmas": ((2, 3),), "adaptation": _REMAP_REGION}


@_port(_MREMAP_TEST, "remap_region[1]")
def remap_region_dest_misaligned() -> tuple[tuple[Step, ...], dict[str, object]]:
    """test_cases[1], "mremap - Destination Address Misaligned (1KB-aligned)": EINVAL."""
    return (
        Munmap(2, 1),
        Mmap(2, 1, _RW, _SHARED_NOREPLACE),
        Write(2, 0, 0x11),
        (RawMremap(2 * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE, _MOVE, 6 * PAGE_SIZE + 1024), "-EINVAL"),
        (Read(2, 0), "ok 0x11"),
    ), {"vmas": ((2, 3),), "adaptation": _REMAP_REGION}


@_port(_MREMAP_TEST, "remap_region[2]")
def remap_region_source_misaligned() -> tuple[tuple[Step, ...], dict[str, object]]:
    """test_cases[2], "mremap - Source Address Misaligned (1KB-aligned)": the source cannot
    even be mapped at a 1KB-aligned address (EINVAL), so the remap fails as expected."""
    return (
        Munmap(2, 2),
        (
            RawMmap(2 * PAGE_SIZE + 1024, PAGE_SIZE, _RW, MAP_SHARED | MAP_ANONYMOUS | _NOREPLACE),
            "-EINVAL",
        ),
        (
            RawMremap(2 * PAGE_SIZE + 1024, PAGE_SIZE, PAGE_SIZE, _MOVE, 6 * PAGE_SIZE),
            "-EINVAL",
        ),
    ), {"adaptation": _REMAP_REGION}


# --- mremap_dontunmap.c -----------------------------------------------------------------------

_DONTUNMAP_TEST: Final = "tools/testing/selftests/mm/mremap_dontunmap.c"
_DONTUNMAP_FIXED: Final = (
    "the kernel-chosen destination (MREMAP_DONTUNMAP|MREMAP_MAYMOVE, NULL) is a fixed one in "
    "the window (MREMAP_FIXED added); pages are checked on their first byte"
)


def _fill(first: int, count: int, byte: int, *, child: bool = False) -> tuple[Step, ...]:
    writes = tuple(Write(page, 0, byte) for page in range(first, first + count))
    return tuple(InChild(w) for w in writes) if child else writes


def _expect(first: int, count: int, byte: int, *, child: bool = False) -> tuple[Step, ...]:
    return tuple(
        (InChild(Read(page, 0)) if child else Read(page, 0), f"ok {byte:#x}")
        for page in range(first, first + count)
    )


@_port(_DONTUNMAP_TEST)
def mremap_dontunmap_simple() -> tuple[tuple[Step, ...], dict[str, object]]:
    """MREMAP_DONTUNMAP moves the pages and leaves the source mapped and empty."""
    return (
        Mmap(0, 5, _RW, _PRIV),
        *_fill(0, 5, _A),
        Mremap(0, 5, 5, _DONTUNMAP, 8),
        *_expect(8, 5, _A),
        *_expect(0, 5, 0),
    ), {"vmas": ((0, 5), (8, 13)), "adaptation": _DONTUNMAP_FIXED}


@_port(_DONTUNMAP_TEST)
def mremap_dontunmap_simple_shmem() -> tuple[tuple[Step, ...], dict[str, object]]:
    """MREMAP_DONTUNMAP of a shared memfd mapping: the destination and the source both show
    the file's contents."""
    return (
        Ftruncate(5 * PAGE_SIZE),
        MmapFile(0, 5, _RW, True, 0),
        *_fill(0, 5, _A),
        Mremap(0, 5, 5, _DONTUNMAP, 8),
        *_expect(8, 5, _A),
        *_expect(0, 5, _A),
    ), {"vmas": ((0, 5), (8, 13)), "adaptation": _DONTUNMAP_FIXED}


@_port(_DONTUNMAP_TEST)
def mremap_dontunmap_simple_fixed() -> tuple[tuple[Step, ...], dict[str, object]]:
    """MREMAP_DONTUNMAP|MREMAP_FIXED onto an existing mapping replaces its pages with the
    moved ones; the source is left empty."""
    return (
        Mmap(8, 5, _RW, _PRIV),
        *_fill(8, 5, _X),
        Mmap(0, 5, _RW, _PRIV),
        *_fill(0, 5, _A),
        Mremap(0, 5, 5, _DONTUNMAP, 8),
        *_expect(8, 5, _A),
        *_expect(0, 5, 0),
    ), {"vmas": ((0, 5), (8, 13)), "adaptation": "pages are checked on their first byte"}


@_port(_DONTUNMAP_TEST)
def mremap_dontunmap_partial_mapping() -> tuple[tuple[Step, ...], dict[str, object]]:
    """MREMAP_DONTUNMAP of the last five pages of ten: the first five keep their contents,
    the last five are empty, the destination has the moved pages."""
    return (
        Mmap(0, 10, _RW, _PRIV),
        *_fill(0, 10, _A),
        Mremap(5, 5, 5, _DONTUNMAP, 11),
        *_expect(0, 5, _A),
        *_expect(5, 5, 0),
        *_expect(11, 5, _A),
    ), {"vmas": ((11, 16),), "adaptation": _DONTUNMAP_FIXED}


@_port(_DONTUNMAP_TEST)
def mremap_dontunmap_partial_mapping_overwrite() -> tuple[tuple[Step, ...], dict[str, object]]:
    """MREMAP_DONTUNMAP|MREMAP_FIXED over the first half of a ten-page mapping: that half has
    the moved pages, the second half keeps its own, the source is empty."""
    return (
        Mmap(0, 5, _RW, _PRIV),
        *_fill(0, 5, _A),
        Mmap(6, 10, _RW, _PRIV),
        *_fill(6, 10, _X),
        Mremap(0, 5, 5, _DONTUNMAP, 6),
        *_expect(0, 5, 0),
        *_expect(6, 5, _A),
        *_expect(11, 5, _X),
    ), {"adaptation": "pages are checked on their first byte"}


# --- mlock2-tests.c ---------------------------------------------------------------------------

_MLOCK2: Final = "tools/testing/selftests/mm/mlock2-tests.c"


@_port(_MLOCK2)
def test_mlock_lock() -> tuple[tuple[Step, ...], dict[str, object]]:
    """mlock locks the mapping and populates it; munlock unlocks it. The suite sees VM_LOCKED
    through merging: while locked, a new read/write neighbour stays apart; once unlocked, the
    mapping merges with it (its pages were populated, so it has an anon_vma to share)."""
    return (
        Mmap(4, 2, _RW, _PRIV),
        Mlock(4, 2),
        Mmap(6, 1, _RW, _PRIV),
        Munlock(4, 2),
    ), {
        "vmas_after": {2: ((4, 6), (6, 7))},
        "vmas": ((4, 7),),
        "adaptation": "mlock2(0) is mlock; the smaps checks (the 'lo' flag, Rss == Size) "
        "become a neighbour that may only merge once the mapping is unlocked",
    }


@_port(_MLOCK2)
def test_vma_management() -> tuple[tuple[Step, ...], dict[str, object]]:
    """Unlocking the middle page of a locked three-page mapping splits it in three VMAs;
    unlocking all three merges them back into one (call_mlock = true)."""
    return (
        Mmap(4, 3, _RW, _PRIV),
        Mlock(4, 3),
        Munlock(5, 1),
        Munlock(4, 3),
    ), {
        "vmas_after": {1: ((4, 7),), 2: ((4, 5), (5, 6), (6, 7))},
        "vmas": ((4, 7),),
        "adaptation": "mlock2(MLOCK_ONFAULT) is mlock (the suite has no mlock2)",
    }


# --- cow.c ------------------------------------------------------------------------------------

_COW: Final = "tools/testing/selftests/mm/cow.c"


@_port(_COW)
def test_cow_in_parent() -> tuple[tuple[Step, ...], dict[str, object]]:
    """After fork, the parent's writes to a private anonymous page are never seen by the
    child (do_test_cow_in_parent with child_memcmp_fn, on a populated base page)."""
    return (
        Mmap(4, 1, _RW, _PRIV),
        Write(4, 0, 1),
        Fork(),
        Write(4, 0, 0xFF),
        (InChild(Read(4, 0)), "ok 0x1"),
        (Read(4, 0), "ok 0xff"),
    ), {"adaptation": "run_with_base_page only; one byte of the page is compared"}


@_port(_COW)
def test_cow_in_parent_mprotect() -> tuple[tuple[Step, ...], dict[str, object]]:
    """The same with mprotect(PROT_READ) and back to PROT_READ|PROT_WRITE in the parent
    before it writes: the mprotect must not make the COW-shared page writable."""
    return (
        Mmap(4, 1, _RW, _PRIV),
        Write(4, 0, 1),
        Fork(),
        Mprotect(4, 1, PROT_READ),
        Mprotect(4, 1, _RW),
        Write(4, 0, 0xFF),
        (InChild(Read(4, 0)), "ok 0x1"),
        (Read(4, 0), "ok 0xff"),
    ), {"adaptation": "run_with_base_page only; one byte of the page is compared"}


# --- memfd_test.c -----------------------------------------------------------------------------

_MEMFD: Final = "tools/testing/selftests/memfd/memfd_test.c"
_MFD_DEF: Final = 2  # MFD_DEF_SIZE is 8192 bytes: two pages
_MEMFD_ADAPT: Final = (
    "the memfd is the suite's own (made at setup, empty at every reset) sized to "
    "MFD_DEF_SIZE with ftruncate; mappings are at fixed addresses in the window; sizes are "
    "checked with one-byte preads at the last byte and at the end"
)


@_port(_MEMFD)
def mfd_assert_read() -> tuple[tuple[Step, ...], dict[str, object]]:
    """The file can be read with pread and mapped PROT_READ private and shared."""
    return (
        Ftruncate(_MFD_DEF * PAGE_SIZE),
        (Pread(0), "ok 0x0"),
        MmapFile(4, _MFD_DEF, PROT_READ, False, 0),
        (Read(4, 0), "ok 0x0"),
        Munmap(4, _MFD_DEF),
        MmapFile(4, _MFD_DEF, PROT_READ, True, 0),
        (Read(5, 0), "ok 0x0"),
    ), {"adaptation": _MEMFD_ADAPT}


@_port(_MEMFD)
def mfd_assert_write() -> tuple[tuple[Step, ...], dict[str, object]]:
    """The file can be written with pwrite and through a shared PROT_READ|PROT_WRITE
    mapping, and a shared PROT_READ mapping can be mprotected writable; writes through the
    mapping are seen by pread."""
    return (
        Ftruncate(_MFD_DEF * PAGE_SIZE),
        (Pwrite(0, 0x31), "ok 0x1"),
        MmapFile(4, _MFD_DEF, _RW, True, 0),
        (Read(4, 0), "ok 0x31"),
        Write(5, 0, 0x32),
        (Pread(PAGE_SIZE), "ok 0x32"),
        Munmap(4, _MFD_DEF),
        MmapFile(4, _MFD_DEF, PROT_READ, True, 0),
        Mprotect(4, _MFD_DEF, _RW),
        Write(4, 0, 0x33),
        (Pread(0), "ok 0x33"),
    ), {"adaptation": _MEMFD_ADAPT + "; the fallocate(PUNCH_HOLE) part is left out"}


@_port(_MEMFD)
def mfd_assert_shrink() -> tuple[tuple[Step, ...], dict[str, object]]:
    """ftruncate to half the size shrinks the file; truncating to 0 (the test reopens with
    O_TRUNC) empties it."""
    return (
        Ftruncate(_MFD_DEF * PAGE_SIZE),
        Ftruncate(_MFD_DEF * PAGE_SIZE // 2),
        (Pread(_MFD_DEF * PAGE_SIZE // 2 - 1), "ok 0x0"),
        (Pread(_MFD_DEF * PAGE_SIZE // 2), "ok 0x100"),
        Ftruncate(0),
        (Pread(0), "ok 0x100"),
    ), {"adaptation": _MEMFD_ADAPT + "; the O_TRUNC reopen is ftruncate(0)"}


@_port(_MEMFD)
def mfd_assert_grow() -> tuple[tuple[Step, ...], dict[str, object]]:
    """ftruncate to twice the size grows the file; a mapping of the new part reads zeros
    where it was SIGBUS before."""
    return (
        Ftruncate(_MFD_DEF * PAGE_SIZE),
        MmapFile(4, 2 * _MFD_DEF, PROT_READ, True, 0),
        (Read(6, 0), "SIGBUS"),
        Ftruncate(2 * _MFD_DEF * PAGE_SIZE),
        (Pread(2 * _MFD_DEF * PAGE_SIZE - 1), "ok 0x0"),
        (Read(6, 0), "ok 0x0"),
    ), {
        "adaptation": _MEMFD_ADAPT + "; the fallocate(ALLOC) part is left out; the mapping "
        "across the end of the file is added to see the growth from user space",
    }


# --- running ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioReport:
    """One scenario run on both sides.

    Attributes:
        scenario: the scenario.
        kernel_unmet: the selftest's expectations the running kernel did not meet.
        mismatch: the first step where the model differs from the kernel, if any.
    """

    scenario: Scenario
    kernel_unmet: tuple[str, ...]
    mismatch: Mismatch | None

    @property
    def kernel_as_expected(self) -> bool:
        """The kernel met the expectations, or missed them exactly where it is known to."""
        return bool(self.kernel_unmet) == bool(self.scenario.kernel_differs)

    def summary(self) -> str:
        """One line: the name, the kernel's verdict, the model's."""
        if not self.kernel_unmet:
            kernel = "kernel meets the selftest's expectation"
        elif self.scenario.kernel_differs:
            kernel = f"kernel differs as known ({self.scenario.kernel_differs})"
        else:
            kernel = "kernel does NOT meet it: " + "; ".join(self.kernel_unmet)
        model = "model agrees" if self.mismatch is None else "MODEL DIFFERS"
        return f"{self.scenario.name}: {kernel}; {model}"


def run_scenario(scenario: Scenario, kernel: Side, model: Side) -> ScenarioReport:
    """Run ``scenario`` on the kernel and the model; check the kernel against the selftest's
    expectations and the model against the kernel, step by step."""
    ours = kernel.run(scenario.ops)
    theirs = model.run(scenario.ops)
    mismatch = compare_results(scenario.ops, ours, theirs, (kernel.name, model.name))
    return ScenarioReport(scenario, tuple(scenario.unmet(ours)), mismatch)

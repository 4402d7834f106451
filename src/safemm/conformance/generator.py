"""Random operation sequences over the window, for hypothesis and for seeded runs.

One generator, two sources of choices. :func:`generate_op` makes every decision
through a :class:`Chooser`: :class:`RandomChooser` answers from a seeded
``random.Random`` (the ``safemm conformance`` command, thousands of sequences,
no hypothesis needed), and :func:`sequences`/:func:`ops` wrap the same code in a
hypothesis strategy, whose choices hypothesis can shrink (integers towards their
lower bound, ``choice`` towards its first option, lists towards fewer items).
The first option of every choice is therefore the simplest one.

Shape of what is generated (relative weights, out of 142):

* 22 ``Mmap`` (private or shared anonymous, ``MAP_FIXED`` or
  ``MAP_FIXED_NOREPLACE``, now and then ``MAP_LOCKED`` or ``MAP_NORESERVE``, any of
  the eight R/W/X combinations), 14 ``Mprotect``, 12 ``Munmap``, 14 ``Mremap`` (in place,
  ``MREMAP_MAYMOVE|MREMAP_FIXED``, and ``|MREMAP_DONTUNMAP``), 14 ``Read``, 14
  ``Write``, 8 ``Madvise`` (DONTNEED, DONTFORK, DOFORK, WIPEONFORK, KEEPONFORK),
  6 ``Mlock``, 5 ``Munlock``, 8 ``MmapFile`` (the suite's memfd, shared or private,
  from file page 0 to 7), 3 ``Ftruncate`` (whole pages, or a page and a bit, up to
  10 pages), 3 ``Pread`` and 3 ``Pwrite`` (one byte, up to 11 pages into the file),
  4 ``Fork`` — over pages mostly in the region, sometimes in the guards, one to four pages
  long, sometimes up to the window's end;
* 12 malformed calls (raw operations): unaligned addresses, zero lengths,
  unaligned lengths, lengths past ``TASK_SIZE`` or wrapping around zero,
  addresses past ``TASK_SIZE``, unknown or contradictory flags, bad ``prot``
  bits, unaligned or ignored mmap offsets, ``mremap`` with ``old_len == 0``,
  unknown ``madvise`` advice, ``mlock``/``munlock`` of unaligned, empty or
  wrapping ranges, ``ftruncate``/``pread``/``pwrite`` at negative or huge offsets.

Besides single operations, a sequence is built from *shapes* (one piece in five): short
runs of well-formed calls that make the layouts real programs make and that independent
random calls rarely hit:

* ``carve``: a piece mapped with ``MAP_FIXED`` into the PROT_NONE reservation the window
  starts as (as allocators and JITs carve their reservations), sometimes written, then an
  ``mprotect`` straddling one of its edges;
* ``once_writable``: a range made writable with ``mprotect``, sometimes written, made
  read-only, exec-only or PROT_NONE again, then a never-writable neighbour mapped or
  mprotected to the same protection next to it (VM_ACCOUNT and the anon_vma decide
  whether they merge: ``mprotect_fixup`` drops VM_ACCOUNT only while there is no anon_vma);
* ``fork_cow``: a private or shared, anonymous or memfd mapping, written, sometimes
  marked ``MADV_DONTFORK`` or ``MADV_WIPEONFORK`` in part, then a ``Fork`` and loads and
  stores in both processes in random order (copy-on-write seen from both sides: a store
  in one is never seen by the other, unless the mapping is shared);
* ``adopt``: a written writable mapping, a new writable mapping next to it that merges
  into it (adopting its anon_vma), then an ``mprotect`` straddling the new mapping's other
  edge — the shape of a disagreement another generator found, where the written neighbour
  lay outside the compared window.

Once a sequence has forked, each later piece runs in the child (wrapped in ``InChild``)
one time in three, so the two processes' calls interleave.

Every generated operation satisfies :func:`~safemm.conformance.ops.confinement_error`
by construction: ranges end inside the window, lengths are small or huge.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from .ops import (
    BAD_MADVICE,
    FAR,
    FAR2,
    MADV_DONTFORK,
    MADV_WIPEONFORK,
    MADVICE,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    REGION_PAGES,
    U64_MAX,
    WINDOW_END_PAGE,
    WINDOW_FIRST_PAGE,
    WRAP,
    Fork,
    Ftruncate,
    InChild,
    Madvise,
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
    RawMadvise,
    RawMlock,
    RawMmap,
    RawMprotect,
    RawMremap,
    RawMunlock,
    RawMunmap,
    Read,
    Write,
)

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn, SearchStrategy

__all__ = [
    "MAX_STEPS",
    "Chooser",
    "RandomChooser",
    "generate_op",
    "generate_piece",
    "generate_sequence",
    "generate_shape",
    "in_child",
    "ops",
    "pieces",
    "place_pieces",
    "random_sequences",
    "sequences",
]

MAX_STEPS: Final = 20
"""The default length of a sequence: up to 20 steps."""

T = TypeVar("T")
R = TypeVar("R")


class Chooser(Protocol):
    """A source of choices."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``; shrinks towards ``lo``."""
        ...

    def choice(self, options: Sequence[T]) -> T:
        """One of ``options``; shrinks towards the first."""
        ...


class RandomChooser:
    """Choices from a ``random.Random``.

    Args:
        rng: the generator (seed it for reproducible sequences).
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``."""
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        """One of ``options``."""
        return options[self.rng.randrange(len(options))]


_PROTS: Final = (
    PROT_READ | PROT_WRITE,
    PROT_NONE,
    PROT_READ,
    PROT_READ | PROT_EXEC,
    PROT_WRITE,
    PROT_EXEC,
    PROT_READ | PROT_WRITE | PROT_EXEC,
    PROT_WRITE | PROT_EXEC,
)
# MAP_FIXED_NOREPLACE mostly fails (EEXIST: the window starts fully mapped): 2 in 7.
_MMAP_FLAGS: Final = (
    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
    MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
    MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
    MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED,
)
_MREMAP_FLAGS: Final = (
    0,
    MREMAP_MAYMOVE | MREMAP_FIXED,
    MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
)
_OFFSETS: Final = (0, PAGE_SIZE - 1, 1, PAGE_SIZE // 2)
_HUGE: Final = (FAR, FAR2, WRAP, U64_MAX)
_FAR_ADDRS: Final = (FAR, FAR2)
_BAD_MREMAP_FLAGS: Final = (
    MREMAP_FIXED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED | MREMAP_DONTUNMAP,
    0x8,
    MREMAP_MAYMOVE | MREMAP_FIXED | 0x10,
)
_BAD_MMAP_FLAGS: Final = (
    MAP_ANONYMOUS | MAP_FIXED,  # no mapping type
    MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_FIXED,
    MAP_PRIVATE | MAP_FIXED,  # not anonymous, fd -1
)
_BAD_MPROTECT_PROTS: Final = (
    PROT_READ | 0x40,
    PROT_READ | PROT_GROWSDOWN,
    PROT_READ | PROT_GROWSUP,
    PROT_GROWSDOWN | PROT_GROWSUP,
)

_Gen = Callable[[Chooser], Op]


def _weighted(c: Chooser, table: Sequence[tuple[int, Callable[[Chooser], R]]]) -> R:
    """One of the generators in ``table``, drawn by weight, called with ``c``."""
    pick = c.integer(0, sum(weight for weight, _ in table) - 1)
    for weight, gen in table:
        if pick < weight:
            return gen(c)
        pick -= weight
    raise AssertionError("unreachable")  # pragma: no cover


def _page(c: Chooser) -> int:
    """A page of the region, or now and then of the whole window."""
    if c.integer(0, 5) < 5:
        return c.integer(0, REGION_PAGES - 1)
    return c.integer(WINDOW_FIRST_PAGE, WINDOW_END_PAGE - 1)


def _npages(c: Chooser, page: int, most: int = 4) -> int:
    """A length for a range starting at ``page`` that ends inside the window."""
    room = WINDOW_END_PAGE - page
    if c.integer(0, 5) < 5:
        return c.integer(1, min(most, room))
    return c.integer(1, room)


def _mmap(c: Chooser) -> Op:
    page = _page(c)
    flags = c.choice(_MMAP_FLAGS)
    match c.integer(0, 7):
        case 7:
            flags |= MAP_LOCKED
        case 6:
            flags |= MAP_NORESERVE  # no VM_ACCOUNT: decides merges
        case _:
            pass
    return Mmap(page, _npages(c, page), c.choice(_PROTS), flags)


def _mmap_file(c: Chooser) -> Op:
    page = _page(c)
    shared = c.integer(0, 1) == 0
    return MmapFile(page, _npages(c, page), c.choice(_PROTS), shared, c.integer(0, 7))


def _ftruncate(c: Chooser) -> Op:
    return Ftruncate(c.integer(0, 10) * PAGE_SIZE + c.choice((0, 0, 100)))


def _file_offset(c: Chooser) -> int:
    return c.integer(0, 11) * PAGE_SIZE + c.choice((0, 1, PAGE_SIZE - 1))


def _pread(c: Chooser) -> Op:
    return Pread(_file_offset(c))


def _pwrite(c: Chooser) -> Op:
    return Pwrite(_file_offset(c), c.integer(1, 255))


def _bad_file_call(c: Chooser) -> Op:
    bad = c.choice((-1, -PAGE_SIZE, U64_MAX >> 1))
    match c.integer(0, 2):
        case 0:
            return Ftruncate(bad if bad < 0 else -bad)
        case 1:
            return Pread(bad)
        case _:
            return Pwrite(bad, 1)


def _madvise(c: Chooser) -> Op:
    page = _page(c)
    return Madvise(page, _npages(c, page), c.choice(MADVICE))


def _mlock(c: Chooser) -> Op:
    page = _page(c)
    return Mlock(page, _npages(c, page))


def _munlock(c: Chooser) -> Op:
    page = _page(c)
    return Munlock(page, _npages(c, page))


def _mprotect(c: Chooser) -> Op:
    page = _page(c)
    return Mprotect(page, _npages(c, page), c.choice(_PROTS))


def _munmap(c: Chooser) -> Op:
    page = _page(c)
    return Munmap(page, _npages(c, page))


def _mremap(c: Chooser) -> Op:
    flags = c.choice(_MREMAP_FLAGS)
    old = _page(c)
    room = WINDOW_END_PAGE - old
    old_n = c.integer(1, min(4, room))
    new_n = (
        old_n if flags & MREMAP_DONTUNMAP and c.integer(0, 3) < 3 else c.integer(1, min(6, room))
    )
    new_page = None
    if flags & MREMAP_FIXED:
        new_page = min(_page(c), WINDOW_END_PAGE - new_n)
    return Mremap(old, old_n, new_n, flags, new_page)


def _fork(c: Chooser) -> Op:
    return Fork()


def _read(c: Chooser) -> Op:
    return Read(_page(c), c.choice(_OFFSETS))


def _write(c: Chooser) -> Op:
    return Write(_page(c), c.choice(_OFFSETS), c.integer(1, 255))


# --- malformed calls ---------------------------------------------------------------


def _unaligned_addr(c: Chooser) -> Op:
    page = min(_page(c), WINDOW_END_PAGE - 2)
    addr = page * PAGE_SIZE + c.choice((1, PAGE_SIZE // 2, PAGE_SIZE - 1))
    length = PAGE_SIZE
    match c.integer(0, 4):
        case 0:
            return RawMunmap(addr, length)
        case 1:
            return RawMprotect(addr, length, c.choice(_PROTS))
        case 2:
            return RawMmap(addr, length, c.choice(_PROTS), c.choice(_MMAP_FLAGS))
        case 3:
            return RawMremap(addr, length, length)
        case _:
            return RawMremap(page * PAGE_SIZE, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, addr)


def _zero_length(c: Chooser) -> Op:
    addr = _page(c) * PAGE_SIZE
    match c.integer(0, 3):
        case 0:
            return RawMunmap(addr, 0)
        case 1:
            return RawMprotect(addr, 0, c.choice(_PROTS))
        case 2:
            return RawMmap(addr, 0, c.choice(_PROTS), c.choice(_MMAP_FLAGS))
        case _:
            return RawMremap(addr, PAGE_SIZE, 0, c.choice(_MREMAP_FLAGS), addr)


def _huge_length(c: Chooser) -> Op:
    page = _page(c)
    addr = page * PAGE_SIZE
    huge = c.choice(_HUGE)
    match c.integer(0, 5):
        case 0:
            return RawMunmap(addr, huge)
        case 1:
            return RawMprotect(addr, huge, c.choice(_PROTS))
        case 2:
            return RawMmap(addr, huge, c.choice(_PROTS), c.choice(_MMAP_FLAGS))
        case 3:
            return RawMremap(addr, huge, PAGE_SIZE)
        case 4:
            target = min(_page(c), WINDOW_END_PAGE - 1) * PAGE_SIZE
            return RawMremap(addr, huge, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, target)
        case _:
            return RawMremap(addr, PAGE_SIZE, huge)


def _far_addr(c: Chooser) -> Op:
    far = c.choice(_FAR_ADDRS)
    match c.integer(0, 5):
        case 0:
            return RawMunmap(far, PAGE_SIZE)
        case 1:
            return RawMprotect(far, PAGE_SIZE, c.choice(_PROTS))
        case 2:
            return RawMmap(far, PAGE_SIZE, c.choice(_PROTS), c.choice(_MMAP_FLAGS))
        case 3:
            return RawMremap(far, PAGE_SIZE, PAGE_SIZE)
        case 4:
            addr = _page(c) * PAGE_SIZE
            return RawMremap(addr, PAGE_SIZE, PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, far)
        case _:
            # new_addr without MREMAP_FIXED: ignored by old kernels, range-checked by new ones
            addr = _page(c) * PAGE_SIZE
            return RawMremap(addr, PAGE_SIZE, PAGE_SIZE, 0, far)


def _bad_flags(c: Chooser) -> Op:
    page = _page(c)
    addr = page * PAGE_SIZE
    match c.integer(0, 4):
        case 0:
            target = min(_page(c), WINDOW_END_PAGE - 1) * PAGE_SIZE
            return RawMremap(addr, PAGE_SIZE, PAGE_SIZE, c.choice(_BAD_MREMAP_FLAGS), target)
        case 1:
            return RawMmap(addr, PAGE_SIZE, c.choice(_PROTS), c.choice(_BAD_MMAP_FLAGS))
        case 2:
            return RawMmap(
                addr, PAGE_SIZE, c.choice(_PROTS), c.choice(_MMAP_FLAGS), c.choice((1, PAGE_SIZE))
            )
        case 3:
            return RawMprotect(addr, PAGE_SIZE, c.choice(_BAD_MPROTECT_PROTS))
        case _:
            return RawMmap(addr, PAGE_SIZE, PROT_READ | 0x40, c.choice(_MMAP_FLAGS))


def _unaligned_length(c: Chooser) -> Op:
    page = min(_page(c), WINDOW_END_PAGE - 2)
    room = WINDOW_END_PAGE - page
    npages = c.integer(1, min(3, room - 1))
    length = npages * PAGE_SIZE + c.choice((1, -1, PAGE_SIZE // 2))
    addr = page * PAGE_SIZE
    match c.integer(0, 3):
        case 0:
            return RawMunmap(addr, length)
        case 1:
            return RawMprotect(addr, length, c.choice(_PROTS))
        case 2:
            return RawMmap(addr, length, c.choice(_PROTS), c.choice(_MMAP_FLAGS))
        case _:
            return RawMremap(addr, PAGE_SIZE, length)


def _old_len_zero(c: Chooser) -> Op:
    page = _page(c)
    npages = _npages(c, page, most=2)
    if c.integer(0, 1) == 0:
        return RawMremap(page * PAGE_SIZE, 0, npages * PAGE_SIZE)
    target = min(_page(c), WINDOW_END_PAGE - npages) * PAGE_SIZE
    return RawMremap(
        page * PAGE_SIZE, 0, npages * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, target
    )


def _bad_madvise_mlock(c: Chooser) -> Op:
    page = min(_page(c), WINDOW_END_PAGE - 2)
    addr = page * PAGE_SIZE
    match c.integer(0, 5):
        case 0:
            return RawMadvise(addr, PAGE_SIZE, c.choice(BAD_MADVICE))
        case 1:
            return RawMadvise(addr + c.choice((1, PAGE_SIZE - 1)), PAGE_SIZE, c.choice(MADVICE))
        case 2:
            return RawMadvise(addr, c.choice((U64_MAX, WRAP, 0)), c.choice(MADVICE))
        case 3:
            return RawMadvise(c.choice(_FAR_ADDRS), PAGE_SIZE, c.choice(MADVICE))
        case 4:
            # rounded down / up to whole pages; U64_MAX wraps to an empty range
            length = c.choice((1, PAGE_SIZE, U64_MAX, 0))
            return RawMlock(addr + c.choice((1, PAGE_SIZE - 1)), length)
        case _:
            return RawMunlock(addr + c.choice((0, 1)), c.choice((1, U64_MAX, WRAP, 0)))


def _malformed(c: Chooser) -> Op:
    return _weighted(
        c,
        (
            (3, _bad_madvise_mlock),
            (2, _bad_file_call),
            (3, _unaligned_addr),
            (2, _zero_length),
            (3, _unaligned_length),
            (3, _huge_length),
            (2, _far_addr),
            (3, _bad_flags),
            (1, _old_len_zero),
        ),
    )


_KINDS: Final[tuple[tuple[int, _Gen], ...]] = (
    (22, _mmap),
    (14, _mprotect),
    (12, _munmap),
    (14, _mremap),
    (14, _read),
    (14, _write),
    (8, _madvise),
    (6, _mlock),
    (5, _munlock),
    (8, _mmap_file),
    (3, _ftruncate),
    (3, _pread),
    (3, _pwrite),
    (4, _fork),
    (12, _malformed),
)


def generate_op(c: Chooser) -> Op:
    """One operation (see the module docstring for the mix)."""
    return _weighted(c, _KINDS)


# --- shapes: short runs of calls that real programs make -------------------------------

_WRITABLE: Final = (PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE | PROT_EXEC, PROT_WRITE)
_NOT_WRITABLE: Final = (PROT_READ, PROT_NONE, PROT_READ | PROT_EXEC, PROT_EXEC)
_PRIVATE_FIXED: Final = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
_SHARED_FIXED: Final = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED


def _region_range(c: Chooser, most: int = 6) -> tuple[int, int]:
    """A range ``(page, npages)`` inside the region, at least two pages long."""
    page = c.integer(0, REGION_PAGES - 2)
    return page, c.integer(2, min(most, REGION_PAGES - page))


def _maybe_write(c: Chooser, page: int, npages: int) -> list[Op]:
    """A store to one page of the range, or nothing (faulted or not decides the anon_vma)."""
    if c.integer(0, 2) == 0:
        return []
    return [Write(page + c.integer(0, npages - 1), 0, c.integer(1, 255))]


def _straddle(c: Chooser, page: int, npages: int, prot: int) -> Op:
    """An mprotect across the lower or the upper edge of ``[page, page + npages)``."""
    if c.integer(0, 1) == 0 and page > WINDOW_FIRST_PAGE:
        lo = c.integer(max(WINDOW_FIRST_PAGE, page - 3), page - 1)
        hi = c.integer(page + 1, page + npages)
    else:
        lo = c.integer(page, page + npages - 1)
        hi = c.integer(page + npages + 1, min(WINDOW_END_PAGE, page + npages + 3))
    return Mprotect(lo, hi - lo, prot)


def _carve(c: Chooser) -> list[Op]:
    page, npages = _region_range(c)
    out: list[Op] = [Mmap(page, npages, c.choice(_PROTS), _PRIVATE_FIXED)]
    out += _maybe_write(c, page, npages)
    out.append(_straddle(c, page, npages, c.choice(_PROTS)))
    return out


def _once_writable(c: Chooser) -> list[Op]:
    page, npages = _region_range(c)
    prot = c.choice(_NOT_WRITABLE)
    out: list[Op] = [Mprotect(page, npages, c.choice(_WRITABLE))]
    out += _maybe_write(c, page, npages)
    out.append(Mprotect(page, npages, prot))
    end = page + npages
    if c.integer(0, 1) == 0 and end < REGION_PAGES:
        n = c.integer(1, min(3, REGION_PAGES - end))
        out.append(Mmap(end, n, prot, _PRIVATE_FIXED))
    else:
        out.append(_straddle(c, page, npages, prot))
    return out


def _adopt(c: Chooser) -> list[Op]:
    page, npages = _region_range(c, most=8)
    split = c.integer(1, npages - 1)
    prot = c.choice(_WRITABLE[:2])
    written, fresh = (page, split), (page + split, npages - split)
    if c.integer(0, 1) == 1:
        written, fresh = (page + npages - split, split), (page, npages - split)
    out: list[Op] = [
        Mmap(written[0], written[1], prot, _PRIVATE_FIXED),
        Write(written[0], 0, c.integer(1, 255)),
        Mmap(fresh[0], fresh[1], prot, _PRIVATE_FIXED),
    ]
    out.append(_straddle(c, fresh[0], fresh[1], c.choice(_NOT_WRITABLE)))
    return out


def _fork_cow(c: Chooser) -> list[Op]:
    page, npages = _region_range(c, most=4)
    prot = c.choice(_WRITABLE[:2])
    kind = c.integer(0, 3)
    out: list[Op] = []
    if kind < 2:
        out.append(Mmap(page, npages, prot, _PRIVATE_FIXED if kind == 0 else _SHARED_FIXED))
    else:
        out.append(Ftruncate(npages * PAGE_SIZE))
        out.append(MmapFile(page, npages, prot, kind == 2, 0))
    for _ in range(c.integer(1, 2)):
        out.append(Write(page + c.integer(0, npages - 1), 0, c.integer(1, 255)))
    if c.integer(0, 2) == 0:
        first = page + c.integer(0, npages - 1)
        out.append(Madvise(first, 1, c.choice((MADV_DONTFORK, MADV_WIPEONFORK))))
    out.append(Fork())
    for _ in range(c.integer(2, 4)):
        target = page + c.integer(0, npages - 1)
        access: Op = (
            Write(target, 0, c.integer(1, 255)) if c.integer(0, 1) == 0 else Read(target, 0)
        )
        out.append(InChild(access) if c.integer(0, 1) == 0 else access)
    return out


_SHAPES: Final[tuple[tuple[int, Callable[[Chooser], list[Op]]], ...]] = (
    (2, _carve),
    (2, _once_writable),
    (1, _adopt),
    (2, _fork_cow),
)


def generate_shape(c: Chooser) -> list[Op]:
    """One shape: a short run of calls (see the module docstring)."""
    return _weighted(c, _SHAPES)


def generate_piece(c: Chooser) -> list[Op]:
    """One operation (four times in five) or one shape."""
    if c.integer(0, 4) < 4:
        return [generate_op(c)]
    return generate_shape(c)


def in_child(piece: list[Op]) -> list[Op]:
    """``piece`` run in the child (unchanged if it forks or already names a process)."""
    if any(isinstance(op, Fork | InChild) for op in piece):
        return piece
    return [InChild(op) for op in piece]


def place_pieces(pieces: Sequence[tuple[bool, list[Op]]], max_steps: int) -> list[Op]:
    """Join pieces into a sequence of at most ``max_steps``: a piece flagged for the child
    runs there (:func:`in_child`) if an earlier piece forked, in the parent otherwise."""
    out: list[Op] = []
    forked = False
    for child, piece in pieces:
        out += in_child(piece) if child and forked else piece
        forked = forked or any(isinstance(op, Fork) for op in piece)
    return out[:max_steps]


def _flagged_piece(c: Chooser) -> tuple[bool, list[Op]]:
    """A piece, and whether it goes to the child (one time in three)."""
    return c.integer(0, 2) == 2, generate_piece(c)


def generate_sequence(c: Chooser, max_steps: int = MAX_STEPS) -> list[Op]:
    """A sequence of 1 to ``max_steps`` operations, made of single operations and shapes;
    after a fork, one piece in three runs in the child."""
    n = c.integer(1, max_steps)
    parts: list[tuple[bool, list[Op]]] = []
    total = 0
    while total < n:
        parts.append(_flagged_piece(c))
        total += len(parts[-1][1])
    return place_pieces(parts, n)


def random_sequences(n: int, seed: int, max_steps: int = MAX_STEPS) -> Iterator[list[Op]]:
    """``n`` sequences from ``random.Random(seed)``: the same ones for the same seed."""
    chooser = RandomChooser(random.Random(seed))
    for _ in range(n):
        yield generate_sequence(chooser, max_steps)


class _DrawChooser:
    def __init__(self, draw: DrawFn) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        from hypothesis import strategies as st

        return self.draw(st.integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        from hypothesis import strategies as st

        return self.draw(st.sampled_from(options))


def pieces() -> SearchStrategy[tuple[bool, list[Op]]]:
    """A hypothesis strategy for one piece (an operation or a shape) and whether it goes
    to the child once the sequence has forked."""
    from hypothesis import strategies as st

    def draw_piece(draw: DrawFn) -> tuple[bool, list[Op]]:
        return _flagged_piece(_DrawChooser(draw))

    return st.composite(draw_piece)()


def ops() -> SearchStrategy[Op]:
    """A hypothesis strategy for one operation (needs hypothesis installed)."""
    from hypothesis import strategies as st

    def draw_op(draw: DrawFn) -> Op:
        return generate_op(_DrawChooser(draw))

    return st.composite(draw_op)()


def sequences(max_steps: int = MAX_STEPS) -> SearchStrategy[list[Op]]:
    """A hypothesis strategy for sequences of up to ``max_steps`` operations."""
    from hypothesis import strategies as st

    def flatten(parts: list[tuple[bool, list[Op]]]) -> list[Op]:
        return place_pieces(parts, max_steps)

    return st.lists(pieces(), max_size=max_steps).map(flatten)

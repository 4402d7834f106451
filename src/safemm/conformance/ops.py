"""The operation vocabulary of the differential conformance suite.

Every operation names its arguments *relative to the region*: page 0 is the first
page of the 16-page region, pages ``-GUARD_PAGES .. -1`` and ``REGION_PAGES ..
REGION_PAGES + GUARD_PAGES - 1`` are the PROT_NONE guards around it, and together
they form the *window* ``[WINDOW_FIRST_PAGE, WINDOW_END_PAGE)``. Each side (the real
kernel, the model) places the window at an address of its own and turns an
operation into absolute system-call arguments with :meth:`call`, so the same
sequence replays unchanged on both.

Two families of operations:

* page-level ones (:class:`Mmap`, :class:`Munmap`, :class:`Mprotect`,
  :class:`Mremap`, :class:`Read`, :class:`Write`): well-formed calls on whole
  pages of the window;
* raw ones (:class:`RawMmap`, :class:`RawMunmap`, :class:`RawMprotect`,
  :class:`RawMremap`): byte-level arguments for malformed calls — unaligned
  addresses, zero, unaligned or huge lengths, addresses past ``TASK_SIZE``,
  unknown flags. Their ``addr`` fields are byte offsets from the region's page 0;
  an offset of :data:`FAR` or more lands past ``TASK_SIZE`` on every 64-bit
  architecture wherever the window is.

Two processes: a sequence starts with one (the *parent*); :class:`Fork` forks it
(ending an earlier child first), and :class:`InChild` runs any other operation in
the child instead. Both processes' layouts are compared after every step.

Arguments are reduced modulo 2**64 (the kernel's ``unsigned long``), so a length
such as :data:`WRAP` overflows ``addr + len`` on both sides alike.

Not every argument list may be run on the real kernel: a ``MAP_FIXED`` mmap
whose length runs past the window would replace whatever the helper process has
mapped there. :func:`confinement_error` states the rule (mirrored in
``executor.c``, which enforces it): every range a call could map, unmap or
protect lies inside the window, unless the kernel must refuse the call because
of that very argument.

The constants are the asm-generic Linux values (x86-64, arm64, riscv64, ...);
``executor.c`` asserts them at compile time. ``repr()`` of an operation is a
Python expression over the names exported here, so a shrunk failing sequence
can be pasted into a regression test as it is printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from typing_extensions import override

__all__ = [
    "BAD_MADVICE",
    "FAR",
    "FAR2",
    "FILE_EOF",
    "GUARD_PAGES",
    "MADVICE",
    "MADV_DOFORK",
    "MADV_DONTFORK",
    "MADV_DONTNEED",
    "MADV_KEEPONFORK",
    "MADV_WIPEONFORK",
    "MAP_ANONYMOUS",
    "MAP_FIXED",
    "MAP_FIXED_NOREPLACE",
    "MAP_LOCKED",
    "MAP_NORESERVE",
    "MAP_PRIVATE",
    "MAP_SHARED",
    "MAP_SHARED_VALIDATE",
    "MEMFD",
    "MEMFD_NAME",
    "MOAT_PAGES",
    "MREMAP_DONTUNMAP",
    "MREMAP_FIXED",
    "MREMAP_MAYMOVE",
    "PAGE_SIZE",
    "PROT_EXEC",
    "PROT_GROWSDOWN",
    "PROT_GROWSUP",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "REGION_PAGES",
    "U64_MAX",
    "WINDOW_END_PAGE",
    "WINDOW_FIRST_PAGE",
    "WRAP",
    "Call",
    "Fork",
    "ForkCall",
    "Ftruncate",
    "FtruncateCall",
    "InChild",
    "Madvise",
    "MadviseCall",
    "Mlock",
    "MlockCall",
    "Mmap",
    "MmapCall",
    "MmapFile",
    "Mprotect",
    "MprotectCall",
    "Mremap",
    "MremapCall",
    "Munlock",
    "MunlockCall",
    "Munmap",
    "MunmapCall",
    "Op",
    "Pread",
    "PreadCall",
    "Pwrite",
    "PwriteCall",
    "RawMadvise",
    "RawMlock",
    "RawMmap",
    "RawMprotect",
    "RawMremap",
    "RawMunlock",
    "RawMunmap",
    "Read",
    "ReadCall",
    "Write",
    "WriteCall",
    "confinement_error",
    "format_advice",
    "format_sequence",
    "is_confined",
]

PAGE_SIZE: Final = 4096
"""The page size the suite is written for; other page sizes are skipped."""
REGION_PAGES: Final = 16
"""Pages in the region proper (pages ``0 .. 15``)."""
GUARD_PAGES: Final = 2
"""PROT_NONE guard pages on each side of the region, inside the window."""
MOAT_PAGES: Final = 16
"""Unmapped pages on each side of the window (real kernel only; see executor.c)."""
WINDOW_FIRST_PAGE: Final = -GUARD_PAGES
"""First page of the window, relative to the region."""
WINDOW_END_PAGE: Final = REGION_PAGES + GUARD_PAGES
"""One past the last page of the window, relative to the region."""

#: ``mmap``/``mprotect`` protection: no access.
PROT_NONE: Final = 0x0
#: ``mmap``/``mprotect`` protection: the pages may be read.
PROT_READ: Final = 0x1
#: ``mmap``/``mprotect`` protection: the pages may be written.
PROT_WRITE: Final = 0x2
#: ``mmap``/``mprotect`` protection: the pages may be executed.
PROT_EXEC: Final = 0x4
#: ``mprotect``: extend the change down to the start of a grows-down mapping.
PROT_GROWSDOWN: Final = 0x01000000
#: ``mprotect``: extend the change up to the end of a grows-up mapping.
PROT_GROWSUP: Final = 0x02000000

#: ``mmap``: share the mapping; stores reach the file or device and other mappers.
MAP_SHARED: Final = 0x01
#: ``mmap``: a private copy-on-write mapping.
MAP_PRIVATE: Final = 0x02
#: ``mmap``: MAP_SHARED that refuses flags it does not know (EOPNOTSUPP).
MAP_SHARED_VALIDATE: Final = 0x03
#: ``mmap``: map exactly at ``addr``, replacing whatever is mapped there.
MAP_FIXED: Final = 0x10
#: ``mmap``: memory backed by no file, zero-filled.
MAP_ANONYMOUS: Final = 0x20
#: ``mmap``: map exactly at ``addr``, or fail with EEXIST if anything is mapped there.
MAP_FIXED_NOREPLACE: Final = 0x100000
_MAP_TYPE: Final = 0x0F

#: ``mremap``: the mapping may move to a new address if it cannot grow in place.
MREMAP_MAYMOVE: Final = 1
#: ``mremap``: move to ``new_addr``, replacing what is there (needs MREMAP_MAYMOVE).
MREMAP_FIXED: Final = 2
#: ``mremap``: move the pages but leave the old range mapped, empty.
MREMAP_DONTUNMAP: Final = 4

#: ``mmap``: lock the pages in memory, like ``mlock`` (VM_LOCKED).
MAP_LOCKED: Final = 0x2000

#: ``mmap``: no commit charge for the pages (VM_NORESERVE); merges only with its like.
MAP_NORESERVE: Final = 0x4000

#: ``madvise``: drop the range's pages; the next access faults them in anew.
MADV_DONTNEED: Final = 4
#: ``madvise``: a child of ``fork`` does not get the range (VM_DONTCOPY).
MADV_DONTFORK: Final = 10
#: ``madvise``: undo MADV_DONTFORK.
MADV_DOFORK: Final = 11
#: ``madvise``: a child of ``fork`` sees the range zero-filled (VM_WIPEONFORK).
MADV_WIPEONFORK: Final = 18
#: ``madvise``: undo MADV_WIPEONFORK.
MADV_KEEPONFORK: Final = 19
MADVICE: Final = (MADV_DONTNEED, MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK)
"""The advice the suite runs (``executor.c`` refuses other valid advice)."""
BAD_MADVICE: Final = (999, 0x7FFFFFFF, -1)
"""Advice values no Linux accepts (EINVAL)."""

MEMFD: Final = 1000
"""The descriptor of the suite's memfd on both sides (the helper moves it there with ``dup2``)."""
MEMFD_NAME: Final = "safemm"
"""Its name: ``/proc/PID/maps`` shows ``/memfd:safemm (deleted)``."""
FILE_EOF: Final = 0x100
"""What a one-byte ``pread`` at or past the end of the file returns (no byte read)."""

FAR: Final = 1 << 62
"""An address offset or length past ``TASK_SIZE`` on every 64-bit Linux."""
FAR2: Final = 1 << 63
"""Another one, with the top bit set."""
WRAP: Final = (1 << 64) - PAGE_SIZE
"""A page-aligned length that makes ``addr + len`` wrap around zero."""
U64_MAX: Final = (1 << 64) - 1
"""A length that ``PAGE_ALIGN`` rounds to zero."""

#: Syscall arguments are unsigned 64-bit: values are taken modulo this.
_U64_MODULUS: Final = 1 << 64


def _u64(value: int) -> int:
    return value % _U64_MODULUS


def _page_align(length: int) -> int:
    """``PAGE_ALIGN`` on an ``unsigned long``: wraps to a small value."""
    return _u64(length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


# --- formatting -------------------------------------------------------------

_NAMED_INTS: Final[dict[int, str]] = {
    FAR: "FAR",
    FAR2: "FAR2",
    WRAP: "WRAP",
    U64_MAX: "U64_MAX",
}


def _fmt_int(value: int) -> str:
    if value in _NAMED_INTS:
        return _NAMED_INTS[value]
    if -PAGE_SIZE < value < PAGE_SIZE:
        return str(value)
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def _fmt_bits(value: int, names: tuple[tuple[int, str], ...], zero: str) -> str:
    parts = [name for bit, name in names if value & bit]
    rest = value & ~sum(bit for bit, _ in names)
    if rest:
        parts.append(f"{rest:#x}")
    return " | ".join(parts) if parts else zero


def format_prot(prot: int) -> str:
    """Render a ``prot`` argument as an expression over the PROT_* names."""
    names = (
        (PROT_READ, "PROT_READ"),
        (PROT_WRITE, "PROT_WRITE"),
        (PROT_EXEC, "PROT_EXEC"),
        (PROT_GROWSDOWN, "PROT_GROWSDOWN"),
        (PROT_GROWSUP, "PROT_GROWSUP"),
    )
    return _fmt_bits(prot, names, "PROT_NONE")


def format_map_flags(flags: int) -> str:
    """Render mmap ``flags`` as an expression over the MAP_* names."""
    types = {
        MAP_SHARED: "MAP_SHARED",
        MAP_PRIVATE: "MAP_PRIVATE",
        MAP_SHARED_VALIDATE: "MAP_SHARED_VALIDATE",
    }
    parts = []
    kind = flags & _MAP_TYPE
    if kind in types:
        parts.append(types[kind])
        flags &= ~_MAP_TYPE
    rest = _fmt_bits(
        flags,
        (
            (MAP_ANONYMOUS, "MAP_ANONYMOUS"),
            (MAP_FIXED, "MAP_FIXED"),
            (MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"),
            (MAP_LOCKED, "MAP_LOCKED"),
            (MAP_NORESERVE, "MAP_NORESERVE"),
        ),
        "",
    )
    if rest:
        parts.append(rest)
    return " | ".join(parts) if parts else "0"


def format_advice(advice: int) -> str:
    """Render a ``madvise`` advice as its MADV_* name (or the number)."""
    names = {
        MADV_DONTNEED: "MADV_DONTNEED",
        MADV_DONTFORK: "MADV_DONTFORK",
        MADV_DOFORK: "MADV_DOFORK",
        MADV_WIPEONFORK: "MADV_WIPEONFORK",
        MADV_KEEPONFORK: "MADV_KEEPONFORK",
    }
    return names.get(advice, str(advice))


def format_mremap_flags(flags: int) -> str:
    """Render mremap ``flags`` as an expression over the MREMAP_* names."""
    names = (
        (MREMAP_MAYMOVE, "MREMAP_MAYMOVE"),
        (MREMAP_FIXED, "MREMAP_FIXED"),
        (MREMAP_DONTUNMAP, "MREMAP_DONTUNMAP"),
    )
    return _fmt_bits(flags, names, "0")


# --- absolute calls -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MmapCall:
    """``mmap(addr, length, prot, flags, fd, offset)`` with absolute arguments."""

    addr: int
    length: int
    prot: int
    flags: int
    fd: int
    offset: int


@dataclass(frozen=True, slots=True)
class MunmapCall:
    """``munmap(addr, length)`` with absolute arguments."""

    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class MprotectCall:
    """``mprotect(addr, length, prot)`` with absolute arguments."""

    addr: int
    length: int
    prot: int


@dataclass(frozen=True, slots=True)
class MremapCall:
    """``mremap(old_addr, old_len, new_len, flags, new_addr)``; ``new_addr`` None is 0."""

    old_addr: int
    old_len: int
    new_len: int
    flags: int
    new_addr: int | None


@dataclass(frozen=True, slots=True)
class ReadCall:
    """A one-byte load from ``addr``."""

    addr: int


@dataclass(frozen=True, slots=True)
class WriteCall:
    """A one-byte store of ``byte`` to ``addr``."""

    addr: int
    byte: int


@dataclass(frozen=True, slots=True)
class MadviseCall:
    """``madvise(addr, length, advice)`` with absolute arguments."""

    addr: int
    length: int
    advice: int


@dataclass(frozen=True, slots=True)
class MlockCall:
    """``mlock(addr, length)`` with absolute arguments."""

    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class MunlockCall:
    """``munlock(addr, length)`` with absolute arguments."""

    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class FtruncateCall:
    """``ftruncate(MEMFD, length)`` (``length`` is a signed ``off_t``)."""

    length: int


@dataclass(frozen=True, slots=True)
class PreadCall:
    """``pread(MEMFD, buf, 1, offset)``: the byte, or :data:`FILE_EOF` if none was read."""

    offset: int


@dataclass(frozen=True, slots=True)
class PwriteCall:
    """``pwrite(MEMFD, &byte, 1, offset)``."""

    offset: int
    byte: int


@dataclass(frozen=True, slots=True)
class ForkCall:
    """``fork()`` of the parent; an earlier child is ended first."""


Call: TypeAlias = (
    ForkCall
    | FtruncateCall
    | PreadCall
    | PwriteCall
    | MmapCall
    | MunmapCall
    | MprotectCall
    | MremapCall
    | ReadCall
    | WriteCall
    | MadviseCall
    | MlockCall
    | MunlockCall
)
"""One system call or access, with the absolute arguments a side executes."""


def _page_addr(base: int, page: int) -> int:
    return _u64(base + page * PAGE_SIZE)


class _Shrinkable:
    """Base of the operations: the shrinker's view of them."""

    __slots__ = ()

    def _candidates(self) -> list[Op]:
        return []

    def simpler(self) -> list[Op]:
        """Simpler variants of this operation that still stay inside the window.

        Fewer pages, nearer page 0, fewer permission bits, the parent instead of the
        child: each variant is strictly smaller in the sum of the absolute values of its
        integer fields or one wrapper less, so the shrinker's repeated simplification
        terminates.
        """
        return [op for op in self._candidates() if is_confined(op)]


# --- page-level operations ----------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Mmap(_Shrinkable):
    """``mmap`` of ``npages`` pages at region page ``page`` (anonymous, fd -1)."""

    page: int
    npages: int
    prot: int
    flags: int

    def call(self, base: int) -> MmapCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MmapCall(
            _page_addr(base, self.page), self.npages * PAGE_SIZE, self.prot, self.flags, -1, 0
        )

    @override
    def _candidates(self) -> list[Op]:
        return [
            *_fewer_pages(self.npages, lambda n: Mmap(self.page, n, self.prot, self.flags)),
            *_towards_zero(self.page, lambda p: Mmap(p, self.npages, self.prot, self.flags)),
            *_fewer_bits(self.prot, lambda p: Mmap(self.page, self.npages, p, self.flags)),
        ]

    @override
    def __repr__(self) -> str:
        return (
            f"Mmap(page={self.page}, npages={self.npages}, prot={format_prot(self.prot)}, "
            f"flags={format_map_flags(self.flags)})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class Munmap(_Shrinkable):
    """``munmap`` of ``npages`` pages at region page ``page``."""

    page: int
    npages: int

    def call(self, base: int) -> MunmapCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MunmapCall(_page_addr(base, self.page), self.npages * PAGE_SIZE)

    @override
    def _candidates(self) -> list[Op]:
        return [
            *_fewer_pages(self.npages, lambda n: Munmap(self.page, n)),
            *_towards_zero(self.page, lambda p: Munmap(p, self.npages)),
        ]

    @override
    def __repr__(self) -> str:
        return f"Munmap(page={self.page}, npages={self.npages})"


@dataclass(frozen=True, slots=True, repr=False)
class Mprotect(_Shrinkable):
    """``mprotect`` of ``npages`` pages at region page ``page``."""

    page: int
    npages: int
    prot: int

    def call(self, base: int) -> MprotectCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MprotectCall(_page_addr(base, self.page), self.npages * PAGE_SIZE, self.prot)

    @override
    def _candidates(self) -> list[Op]:
        return [
            *_fewer_pages(self.npages, lambda n: Mprotect(self.page, n, self.prot)),
            *_towards_zero(self.page, lambda p: Mprotect(p, self.npages, self.prot)),
            *_fewer_bits(self.prot, lambda p: Mprotect(self.page, self.npages, p)),
        ]

    @override
    def __repr__(self) -> str:
        return f"Mprotect(page={self.page}, npages={self.npages}, prot={format_prot(self.prot)})"


@dataclass(frozen=True, slots=True, repr=False)
class Mremap(_Shrinkable):
    """``mremap`` of ``old_npages`` pages at ``old_page`` to ``new_npages`` pages.

    ``new_page`` is the target for ``MREMAP_FIXED`` and None otherwise (the call
    then passes ``new_addr=None``, i.e. 0).
    """

    old_page: int
    old_npages: int
    new_npages: int
    flags: int = 0
    new_page: int | None = None

    def call(self, base: int) -> MremapCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        new_addr = None if self.new_page is None else _page_addr(base, self.new_page)
        return MremapCall(
            _page_addr(base, self.old_page),
            self.old_npages * PAGE_SIZE,
            self.new_npages * PAGE_SIZE,
            self.flags,
            new_addr,
        )

    @override
    def _candidates(self) -> list[Op]:
        out: list[Op] = [
            *_fewer_pages(
                self.old_npages,
                lambda n: Mremap(self.old_page, n, self.new_npages, self.flags, self.new_page),
            ),
            *_fewer_pages(
                self.new_npages,
                lambda n: Mremap(self.old_page, self.old_npages, n, self.flags, self.new_page),
            ),
            *_towards_zero(
                self.old_page,
                lambda p: Mremap(p, self.old_npages, self.new_npages, self.flags, self.new_page),
            ),
        ]
        if self.new_page is not None:
            out += _towards_zero(
                self.new_page,
                lambda p: Mremap(self.old_page, self.old_npages, self.new_npages, self.flags, p),
            )
        return out

    @override
    def __repr__(self) -> str:
        tail = "" if self.new_page is None else f", new_page={self.new_page}"
        return (
            f"Mremap(old_page={self.old_page}, old_npages={self.old_npages}, "
            f"new_npages={self.new_npages}, flags={format_mremap_flags(self.flags)}{tail})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class Read(_Shrinkable):
    """A one-byte load from byte ``offset`` of region page ``page``."""

    page: int
    offset: int = 0

    def call(self, base: int) -> ReadCall:
        """The absolute access for a region whose page 0 is at ``base``."""
        return ReadCall(_u64(_page_addr(base, self.page) + self.offset))

    @override
    def _candidates(self) -> list[Op]:
        return [
            *_towards_zero(self.offset, lambda o: Read(self.page, o)),
            *_towards_zero(self.page, lambda p: Read(p, self.offset)),
        ]

    @override
    def __repr__(self) -> str:
        return f"Read(page={self.page}, offset={_fmt_int(self.offset)})"


@dataclass(frozen=True, slots=True, repr=False)
class Write(_Shrinkable):
    """A one-byte store of ``byte`` to byte ``offset`` of region page ``page``."""

    page: int
    offset: int
    byte: int

    def call(self, base: int) -> WriteCall:
        """The absolute access for a region whose page 0 is at ``base``."""
        return WriteCall(_u64(_page_addr(base, self.page) + self.offset), self.byte)

    @override
    def _candidates(self) -> list[Op]:
        out: list[Op] = [
            *_towards_zero(self.offset, lambda o: Write(self.page, o, self.byte)),
            *_towards_zero(self.page, lambda p: Write(p, self.offset, self.byte)),
        ]
        if self.byte != 1:
            out.append(Write(self.page, self.offset, 1))
        return out

    @override
    def __repr__(self) -> str:
        return f"Write(page={self.page}, offset={_fmt_int(self.offset)}, byte={self.byte:#04x})"


@dataclass(frozen=True, slots=True, repr=False)
class Madvise(_Shrinkable):
    """``madvise`` of ``npages`` pages at region page ``page``."""

    page: int
    npages: int
    advice: int

    def call(self, base: int) -> MadviseCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MadviseCall(_page_addr(base, self.page), self.npages * PAGE_SIZE, self.advice)

    @override
    def _candidates(self) -> list[Op]:
        return [
            *_fewer_pages(self.npages, lambda n: Madvise(self.page, n, self.advice)),
            *_towards_zero(self.page, lambda p: Madvise(p, self.npages, self.advice)),
        ]

    @override
    def __repr__(self) -> str:
        return (
            f"Madvise(page={self.page}, npages={self.npages}, advice={format_advice(self.advice)})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class MmapFile(_Shrinkable):
    """``mmap`` of ``npages`` pages of the memfd, from file page ``file_page``, at region
    page ``page`` (``MAP_FIXED``; shared or private)."""

    page: int
    npages: int
    prot: int
    shared: bool
    file_page: int = 0

    def call(self, base: int) -> MmapCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        kind = MAP_SHARED if self.shared else MAP_PRIVATE
        return MmapCall(
            _page_addr(base, self.page),
            self.npages * PAGE_SIZE,
            self.prot,
            kind | MAP_FIXED,
            MEMFD,
            self.file_page * PAGE_SIZE,
        )

    def _with(self, page: int, npages: int, prot: int, file_page: int) -> Op:
        return MmapFile(page, npages, prot, self.shared, file_page)

    @override
    def _candidates(self) -> list[Op]:
        page, n, prot, fp = self.page, self.npages, self.prot, self.file_page
        return [
            *_fewer_pages(n, lambda k: self._with(page, k, prot, fp)),
            *_towards_zero(page, lambda q: self._with(q, n, prot, fp)),
            *_towards_zero(fp, lambda q: self._with(page, n, prot, q)),
            *_fewer_bits(prot, lambda q: self._with(page, n, q, fp)),
        ]

    @override
    def __repr__(self) -> str:
        return (
            f"MmapFile(page={self.page}, npages={self.npages}, prot={format_prot(self.prot)}, "
            f"shared={self.shared}, file_page={self.file_page})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class Ftruncate(_Shrinkable):
    """``ftruncate`` of the memfd to ``length`` bytes (negative: malformed)."""

    length: int

    def call(self, base: int) -> FtruncateCall:
        """The call (it does not depend on ``base``)."""
        return FtruncateCall(self.length)

    @override
    def _candidates(self) -> list[Op]:
        return _towards_zero(self.length, Ftruncate)

    @override
    def __repr__(self) -> str:
        return f"Ftruncate(length={_fmt_int(self.length)})"


@dataclass(frozen=True, slots=True, repr=False)
class Pread(_Shrinkable):
    """A one-byte ``pread`` of the memfd at ``offset`` (negative: malformed)."""

    offset: int

    def call(self, base: int) -> PreadCall:
        """The call (it does not depend on ``base``)."""
        return PreadCall(self.offset)

    @override
    def _candidates(self) -> list[Op]:
        return _towards_zero(self.offset, Pread)

    @override
    def __repr__(self) -> str:
        return f"Pread(offset={_fmt_int(self.offset)})"


@dataclass(frozen=True, slots=True, repr=False)
class Pwrite(_Shrinkable):
    """A one-byte ``pwrite`` of ``byte`` to the memfd at ``offset``."""

    offset: int
    byte: int

    def call(self, base: int) -> PwriteCall:
        """The call (it does not depend on ``base``)."""
        return PwriteCall(self.offset, self.byte)

    @override
    def _candidates(self) -> list[Op]:
        return _towards_zero(self.offset, lambda o: Pwrite(o, self.byte))

    @override
    def __repr__(self) -> str:
        return f"Pwrite(offset={_fmt_int(self.offset)}, byte={self.byte:#04x})"


@dataclass(frozen=True, slots=True, repr=False)
class _LockRange(_Shrinkable):
    """``npages`` pages at region page ``page`` for mlock or munlock."""

    page: int
    npages: int

    def _make(self, page: int, npages: int) -> Op:
        raise NotImplementedError  # pragma: no cover

    @override
    def _candidates(self) -> list[Op]:
        return [
            *_fewer_pages(self.npages, lambda n: self._make(self.page, n)),
            *_towards_zero(self.page, lambda p: self._make(p, self.npages)),
        ]

    @override
    def __repr__(self) -> str:
        return f"{type(self).__name__}(page={self.page}, npages={self.npages})"


@dataclass(frozen=True, slots=True, repr=False)
class Mlock(_LockRange):
    """``mlock`` of ``npages`` pages at region page ``page``."""

    def call(self, base: int) -> MlockCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MlockCall(_page_addr(base, self.page), self.npages * PAGE_SIZE)

    @override
    def _make(self, page: int, npages: int) -> Op:
        return Mlock(page, npages)


@dataclass(frozen=True, slots=True, repr=False)
class Munlock(_LockRange):
    """``munlock`` of ``npages`` pages at region page ``page``."""

    def call(self, base: int) -> MunlockCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MunlockCall(_page_addr(base, self.page), self.npages * PAGE_SIZE)

    @override
    def _make(self, page: int, npages: int) -> Op:
        return Munlock(page, npages)


# --- raw (byte-level) operations -------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class RawMmap(_Shrinkable):
    """``mmap`` with byte-level arguments; ``addr`` is an offset from region page 0."""

    addr: int
    length: int
    prot: int
    flags: int
    offset: int = 0
    fd: int = -1

    def call(self, base: int) -> MmapCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MmapCall(
            _u64(base + self.addr),
            _u64(self.length),
            self.prot,
            self.flags,
            self.fd,
            _u64(self.offset),
        )

    @override
    def __repr__(self) -> str:
        tail = "" if self.offset == 0 else f", offset={_fmt_int(self.offset)}"
        tail += "" if self.fd == -1 else f", fd={self.fd}"
        return (
            f"RawMmap(addr={_fmt_int(self.addr)}, length={_fmt_int(self.length)}, "
            f"prot={format_prot(self.prot)}, flags={format_map_flags(self.flags)}{tail})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class RawMunmap(_Shrinkable):
    """``munmap`` with byte-level arguments; ``addr`` is an offset from region page 0."""

    addr: int
    length: int

    def call(self, base: int) -> MunmapCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MunmapCall(_u64(base + self.addr), _u64(self.length))

    @override
    def __repr__(self) -> str:
        return f"RawMunmap(addr={_fmt_int(self.addr)}, length={_fmt_int(self.length)})"


@dataclass(frozen=True, slots=True, repr=False)
class RawMprotect(_Shrinkable):
    """``mprotect`` with byte-level arguments; ``addr`` is an offset from region page 0."""

    addr: int
    length: int
    prot: int

    def call(self, base: int) -> MprotectCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MprotectCall(_u64(base + self.addr), _u64(self.length), self.prot)

    @override
    def __repr__(self) -> str:
        return (
            f"RawMprotect(addr={_fmt_int(self.addr)}, length={_fmt_int(self.length)}, "
            f"prot={format_prot(self.prot)})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class RawMremap(_Shrinkable):
    """``mremap`` with byte-level arguments; addresses are offsets from region page 0."""

    old_addr: int
    old_len: int
    new_len: int
    flags: int = 0
    new_addr: int | None = None

    def call(self, base: int) -> MremapCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        new_addr = None if self.new_addr is None else _u64(base + self.new_addr)
        return MremapCall(
            _u64(base + self.old_addr),
            _u64(self.old_len),
            _u64(self.new_len),
            self.flags,
            new_addr,
        )

    @override
    def __repr__(self) -> str:
        tail = "" if self.new_addr is None else f", new_addr={_fmt_int(self.new_addr)}"
        return (
            f"RawMremap(old_addr={_fmt_int(self.old_addr)}, old_len={_fmt_int(self.old_len)}, "
            f"new_len={_fmt_int(self.new_len)}, flags={format_mremap_flags(self.flags)}{tail})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class RawMadvise(_Shrinkable):
    """``madvise`` with byte-level arguments; ``addr`` is an offset from region page 0."""

    addr: int
    length: int
    advice: int

    def call(self, base: int) -> MadviseCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MadviseCall(_u64(base + self.addr), _u64(self.length), self.advice)

    @override
    def __repr__(self) -> str:
        return (
            f"RawMadvise(addr={_fmt_int(self.addr)}, length={_fmt_int(self.length)}, "
            f"advice={format_advice(self.advice)})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class _RawLockRange(_Shrinkable):
    """mlock or munlock with byte-level arguments; ``addr`` is an offset from region page 0."""

    addr: int
    length: int

    @override
    def __repr__(self) -> str:
        return f"{type(self).__name__}(addr={_fmt_int(self.addr)}, length={_fmt_int(self.length)})"


@dataclass(frozen=True, slots=True, repr=False)
class RawMlock(_RawLockRange):
    """``mlock`` with byte-level arguments; ``addr`` is an offset from region page 0."""

    def call(self, base: int) -> MlockCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MlockCall(_u64(base + self.addr), _u64(self.length))


@dataclass(frozen=True, slots=True, repr=False)
class RawMunlock(_RawLockRange):
    """``munlock`` with byte-level arguments; ``addr`` is an offset from region page 0."""

    def call(self, base: int) -> MunlockCall:
        """The absolute call for a region whose page 0 is at ``base``."""
        return MunlockCall(_u64(base + self.addr), _u64(self.length))


@dataclass(frozen=True, slots=True, repr=False)
class Fork(_Shrinkable):
    """``fork()`` of the parent: the child gets a copy of its address space and descriptors.

    A child forked earlier is ended first (``exit``), so a sequence has at most two
    processes. The outcome is ``ok 0`` on both sides (the pid is not compared).
    """

    def call(self, base: int) -> ForkCall:
        """The call (it does not depend on ``base``)."""
        return ForkCall()

    @override
    def __repr__(self) -> str:
        return "Fork()"


@dataclass(frozen=True, slots=True, repr=False)
class InChild(_Shrinkable):
    """``op`` run in the child instead of the parent (skipped on both sides if none exists).

    ``op`` is never a :class:`Fork` nor another :class:`InChild`.
    """

    op: Op

    def __post_init__(self) -> None:
        if isinstance(self.op, Fork | InChild):
            raise ValueError(f"InChild wraps a call of the child, not {self.op!r}")

    def call(self, base: int) -> Call:
        """The absolute call of the wrapped operation (run in the child)."""
        return self.op.call(base)

    @override
    def _candidates(self) -> list[Op]:
        return [*(InChild(op) for op in self.op.simpler()), self.op]

    @override
    def __repr__(self) -> str:
        return f"InChild({self.op!r})"


Op: TypeAlias = (
    Fork
    | InChild
    | Mmap
    | MmapFile
    | Ftruncate
    | Pread
    | Pwrite
    | Munmap
    | Mprotect
    | Mremap
    | Read
    | Write
    | Madvise
    | Mlock
    | Munlock
    | RawMmap
    | RawMunmap
    | RawMprotect
    | RawMremap
    | RawMadvise
    | RawMlock
    | RawMunlock
)
"""One step of a sequence."""


def format_sequence(ops: list[Op] | tuple[Op, ...], indent: str = "    ", margin: str = "") -> str:
    """Render a sequence as a Python list literal, one operation per line.

    Args:
        ops: the sequence.
        indent: indentation of the operations, relative to the brackets.
        margin: indentation of the lines after the first (for nesting in text).
    """
    if not ops:
        return "[]"
    body = "".join(f"{margin}{indent}{op!r},\n" for op in ops)
    return f"[\n{body}{margin}]"


# --- shrinking helpers ------------------------------------------------------------

_Make: TypeAlias = Callable[[int], Op]


def _fewer_pages(npages: int, make: _Make) -> list[Op]:
    if npages <= 1:
        return []
    return [make(1)] if npages == 2 else [make(1), make(npages - 1)]


def _towards_zero(value: int, make: _Make) -> list[Op]:
    if value == 0:
        return []
    step = value - 1 if value > 0 else value + 1
    return [make(0)] if step == 0 else [make(0), make(step)]


def _fewer_bits(bits: int, make: _Make) -> list[Op]:
    return [make(bits & ~bit) for bit in (PROT_EXEC, PROT_WRITE, PROT_READ) if bits & bit]


# --- the confinement rule ----------------------------------------------------------


_NOMINAL_BASE: Final = 1 << 40


def is_confined(op: Op) -> bool:
    """Whether ``op`` satisfies :func:`confinement_error` (wherever the window is)."""
    lo = _NOMINAL_BASE + WINDOW_FIRST_PAGE * PAGE_SIZE
    hi = _NOMINAL_BASE + WINDOW_END_PAGE * PAGE_SIZE
    return confinement_error(op.call(_NOMINAL_BASE), lo, hi) is None


def confinement_error(call: Call, window_lo: int, window_hi: int) -> str | None:
    """Why ``call`` may not run on the real kernel, or None if it may.

    Mirrors ``executor.c``, which enforces the same rule. A call may run if every
    range it could map, unmap, move or protect lies inside ``[window_lo,
    window_hi)``, or if the kernel must refuse it because of that argument:
    an unaligned or far address (``>= FAR``), a zero length, or a huge length
    (``>= FAR``). Address arguments must be inside the window or far, length
    arguments at most the window's size or huge. mmap needs ``MAP_FIXED`` or
    ``MAP_FIXED_NOREPLACE`` and fd -1; mremap may not let the kernel choose the
    target (``MREMAP_MAYMOVE`` without ``MREMAP_FIXED``). A huge mprotect is
    allowed from inside the window: it stops at the first unmapped page, and the
    window is surrounded by unmapped moats.

    Args:
        call: the absolute call.
        window_lo: first byte of the window.
        window_hi: one past its last byte.

    Returns:
        A reason string, or None when the call is confined.
    """
    size = window_hi - window_lo

    def addr_ok(a: int) -> bool:
        return window_lo <= a <= window_hi or a >= FAR

    def len_ok(n: int) -> bool:
        return n <= size or n >= FAR

    def range_ok(a: int, n: int) -> bool:
        if a >= FAR or a % PAGE_SIZE or n == 0 or n >= FAR:
            return True
        return window_lo <= a <= window_hi and _page_align(n) <= window_hi - a

    match call:
        case MmapCall(addr, length, prot, flags, fd, _):
            known = (
                MAP_SHARED_VALIDATE
                | MAP_FIXED
                | MAP_ANONYMOUS
                | MAP_FIXED_NOREPLACE
                | MAP_LOCKED
                | MAP_NORESERVE
            )
            if not flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
                return "mmap without MAP_FIXED or MAP_FIXED_NOREPLACE"
            if flags & ~known:
                return "mmap flag outside the allowed set"
            if not 0 <= prot <= 0xFF:
                return "mmap prot outside 0..0xff"
            if fd not in (-1, MEMFD):
                return "mmap with a file descriptor other than the memfd"
            if not (addr_ok(addr) and len_ok(length) and range_ok(addr, length)):
                return "mmap range not confined to the window"
            return None
        case MunmapCall(addr, length):
            if not (addr_ok(addr) and len_ok(length) and range_ok(addr, length)):
                return "munmap range not confined to the window"
            return None
        case MprotectCall(addr, length, _):
            if not (addr_ok(addr) and len_ok(length)):
                return "mprotect range not confined to the window"
            if length < FAR and not range_ok(addr, length):
                return "mprotect range not confined to the window"
            return None
        case MremapCall(old, old_len, new_len, flags, new_addr):
            if flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
                return None
            if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) and not flags & MREMAP_MAYMOVE:
                return None
            if flags & MREMAP_MAYMOVE and not flags & MREMAP_FIXED:
                return "mremap may move to an address of the kernel's choice"
            if not (addr_ok(old) and len_ok(old_len) and len_ok(new_len)):
                return "mremap range not confined to the window"
            if not range_ok(old, max(old_len, new_len)):
                return "mremap source range not confined to the window"
            target = 0 if new_addr is None else new_addr
            if flags & MREMAP_FIXED and not (addr_ok(target) and range_ok(target, new_len)):
                return "mremap target range not confined to the window"
            return None
        case ReadCall(addr) | WriteCall(addr, _):
            if not window_lo <= addr < window_hi:
                return "access outside the window"
            return None
        case FtruncateCall() | PreadCall() | PwriteCall() | ForkCall():
            return None  # the memfd only, or the whole process: no address is involved
        case MadviseCall(addr, length, advice):
            # do_madvise refuses before walking: a bad advice, an unaligned start, a length
            # PAGE_ALIGN rounds to 0, a wrapping range; a zero length walks nothing, a far
            # start finds no VMA. Anything else walks (across holes!) to its end.
            if advice in BAD_MADVICE:
                return None
            if advice not in MADVICE:
                return "madvise advice outside the allowed set"
            aligned = _page_align(length)
            if addr % PAGE_SIZE or (length and not aligned) or addr + aligned >= 1 << 64:
                return None
            if length == 0 or addr >= FAR:
                return None
            if not (window_lo <= addr and addr + aligned <= window_hi):
                return "madvise range not confined to the window"
            return None
        case MlockCall(addr, length) | MunlockCall(addr, length):
            # do_mlock/munlock round the start down and PAGE_ALIGN(len + offset): a range
            # that wraps is EINVAL, an empty one does nothing, a far one has no VMA.
            start = addr - addr % PAGE_SIZE
            aligned = _page_align(length + addr % PAGE_SIZE)
            if aligned == 0 or start + aligned >= 1 << 64 or start >= FAR:
                return None
            if not (window_lo <= start and start + aligned <= window_hi):
                return "mlock range not confined to the window"
            return None

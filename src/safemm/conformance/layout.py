"""The window's layout, read from ``/proc/PID/maps`` text on either side.

Both sides produce maps text in the kernel's format (``fs/proc/task_mmu.c``
``show_map_vma``)::

    7f9cf226c000-7f9cf2280000 rw-p 00000000 00:00 0
    7f9cf2280000-7f9cf2282000 rw-s 00001000 00:01 1042                       /dev/zero (deleted)

columns: ``start-end`` (hex, end exclusive), perms (``rwx`` then ``p``rivate or
``s``hared), offset (hex; ``vm_pgoff << PAGE_SHIFT`` for file-backed VMAs, 0 for
anonymous ones), device ``major:minor``, inode, and an optional name. The real
kernel's executor sends only the lines that intersect the moats and the window;
the model side sends the whole file. :class:`LayoutReader` keeps the lines
inside the window and turns each into a :class:`Vma` in *region pages*:

* ``start``/``end``: page numbers relative to region page 0 (guards negative);
* ``perms``: the four-letter column as is;
* ``backing``: ``"anon"`` for a private anonymous mapping (inode 0, no name), or
  ``"shmem#N"`` for shared anonymous memory (name ``/dev/zero (deleted)``), where
  N numbers the distinct ``(device, inode)`` pairs in order of first appearance
  over the whole sequence, so "these two VMAs map the same object" and "this VMA
  still maps the object it mapped three steps ago" are compared, not the inode
  numbers themselves;
* ``pgoff``: the offset column in pages (0 for private anonymous memory);
* ``"memfd"`` for a mapping (shared or private) of the suite's memfd
  (``/memfd:safemm (deleted)``).

Anything else in the window or the moats (a named mapping, a line crossing the
window's edge, a mapping in a moat) means the window was disturbed: the reader
raises :class:`Disturbance`, and the step cannot be trusted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from typing_extensions import override

from .ops import GUARD_PAGES, MOAT_PAGES, PAGE_SIZE, REGION_PAGES

__all__ = [
    "MEMFD_MAPS_NAME",
    "SHMEM_NAMES",
    "Disturbance",
    "Layout",
    "LayoutReader",
    "MapsLine",
    "Vma",
    "parse_maps",
    "read_skip_reason",
]

SHMEM_NAMES: Final = ("/dev/zero (deleted)",)
"""Names the kernel shows for shared anonymous (shmem-backed) mappings."""
MEMFD_MAPS_NAME: Final = "/memfd:safemm (deleted)"
"""The name of a mapping of the suite's memfd (``ops.MEMFD_NAME``)."""


class Disturbance(Exception):
    """Something the sequence did not create showed up in the window or the moats."""


@dataclass(frozen=True, slots=True)
class MapsLine:
    """One parsed ``/proc/PID/maps`` line, with absolute addresses."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    name: str

    @classmethod
    def parse(cls, line: str) -> MapsLine:
        """Parse one maps line.

        Raises:
            ValueError: if the line does not have the kernel's columns.
        """
        fields = line.split(maxsplit=5)
        if len(fields) < 5:
            raise ValueError(f"not a maps line: {line!r}")
        lo, sep, hi = fields[0].partition("-")
        perms = fields[1]
        if not sep or len(perms) != 4:
            raise ValueError(f"not a maps line: {line!r}")
        name = fields[5].strip() if len(fields) == 6 else ""
        return cls(
            int(lo, 16), int(hi, 16), perms, int(fields[2], 16), fields[3], int(fields[4]), name
        )


def parse_maps(text: str) -> list[MapsLine]:
    """Parse a whole ``/proc/PID/maps`` text."""
    return [MapsLine.parse(line) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True, slots=True)
class Vma:
    """One VMA of the window, in region pages (see the module docstring)."""

    start: int
    end: int
    perms: str
    backing: str = "anon"
    pgoff: int = 0

    @override
    def __str__(self) -> str:
        tail = "" if self.backing == "anon" else f" {self.backing}@{self.pgoff}"
        return f"[{self.start},{self.end}) {self.perms}{tail}"


@dataclass(frozen=True, slots=True)
class Layout:
    """The window's VMAs in address order."""

    vmas: tuple[Vma, ...]

    def at(self, page: int) -> Vma | None:
        """The VMA that contains region page ``page``, if any."""
        for vma in self.vmas:
            if vma.start <= page < vma.end:
                return vma
        return None

    def page_view(self, page: int) -> tuple[str, str, int] | None:
        """What one page looks like: ``(perms, backing, pgoff of that page)``.

        Splits and merges change VMA boundaries but not this per-page view.
        """
        vma = self.at(page)
        if vma is None:
            return None
        pgoff = vma.pgoff + (page - vma.start) if vma.backing != "anon" else 0
        return (vma.perms, vma.backing, pgoff)

    @override
    def __str__(self) -> str:
        return " | ".join(str(vma) for vma in self.vmas) if self.vmas else "(nothing mapped)"


class LayoutReader:
    """Turns maps lines into :class:`Layout` values for one sequence.

    One reader per sequence per side: it numbers shmem objects in order of first
    appearance, so the numbering is part of what is compared.

    Args:
        region_base: absolute address of region page 0 on this side.
    """

    def __init__(self, region_base: int) -> None:
        self._base = region_base
        self._window_lo = region_base - GUARD_PAGES * PAGE_SIZE
        self._window_hi = region_base + (REGION_PAGES + GUARD_PAGES) * PAGE_SIZE
        self._moat_lo = self._window_lo - MOAT_PAGES * PAGE_SIZE
        self._moat_hi = self._window_hi + MOAT_PAGES * PAGE_SIZE
        self._objects: dict[tuple[str, int], str] = {}

    def read(self, lines: Iterable[MapsLine]) -> Layout:
        """Build the window's layout from maps lines (any lines may be passed).

        Raises:
            Disturbance: a line in the moats or the window that the sequence
                cannot have created.
        """
        vmas: list[Vma] = []
        for line in lines:
            if line.end <= self._moat_lo or line.start >= self._moat_hi:
                continue
            text = f"{line.start:x}-{line.end:x} {line.perms} {line.name}".rstrip()
            if line.start < self._window_lo or line.end > self._window_hi:
                raise Disturbance(f"mapping outside the window, in a moat: {text}")
            if line.start % PAGE_SIZE or line.end % PAGE_SIZE or line.offset % PAGE_SIZE:
                raise Disturbance(f"mapping not page aligned: {text}")
            vmas.append(
                Vma(
                    (line.start - self._base) // PAGE_SIZE,
                    (line.end - self._base) // PAGE_SIZE,
                    line.perms,
                    self._backing(line, text),
                    line.offset // PAGE_SIZE,
                )
            )
        return Layout(tuple(vmas))

    def _backing(self, line: MapsLine, text: str) -> str:
        if line.name == "" and line.inode == 0:
            return "anon"
        if line.name in SHMEM_NAMES:
            key = (line.dev, line.inode)
            if key not in self._objects:
                self._objects[key] = f"shmem#{len(self._objects)}"
            return self._objects[key]
        if line.name == MEMFD_MAPS_NAME:
            return "memfd"
        raise Disturbance(f"foreign mapping in the window: {text}")


def read_skip_reason(layout: Layout, page: int) -> str | None:
    """Why a one-byte load from ``page`` is not compared, or None to run it.

    A load is run when the page is readable (it must succeed everywhere) and when
    it is unmapped or mapped with no access at all (it must fault everywhere).
    A page that is writable or executable but not readable is readable on some
    architectures and not on others (x86-64 without protection keys maps
    ``-w-``/``--x`` pages readable), so such loads are skipped on both sides
    alike. Stores are always run: only ``w`` pages take them, on every
    architecture.

    Args:
        layout: the window's layout just before the load.
        page: the region page the load touches.
    """
    vma = layout.at(page)
    if vma is None or vma.perms[0] == "r" or vma.perms[:3] == "---":
        return None
    return f"load from a {vma.perms} page is architecture-dependent"

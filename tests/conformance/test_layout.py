"""Parsing /proc/PID/maps into layouts, shmem numbering, disturbance, load policy."""

from __future__ import annotations

import pytest

from safemm.conformance.layout import (
    Disturbance,
    Layout,
    LayoutReader,
    MapsLine,
    Vma,
    parse_maps,
    read_skip_reason,
)
from safemm.conformance.ops import GUARD_PAGES, MOAT_PAGES, PAGE_SIZE, REGION_PAGES

BASE = 0x7F9C_F226_E000


def line(start_page: int, end_page: int, rest: str) -> str:
    start = BASE + start_page * PAGE_SIZE
    end = BASE + end_page * PAGE_SIZE
    return f"{start:x}-{end:x} {rest}"


def test_parse_maps_columns() -> None:
    text = (
        "563eac8f2000-563eac8f4000 r--p 00000000 fe:00 260131                     /usr/bin/cat\n"
        "7f704dd87000-7f704dda9000 rw-p 00000000 00:00 0 \n"
        "7f9cf2280000-7f9cf2282000 rw-s 00001000 00:01 1042"
        "                       /dev/zero (deleted)\n"
    )
    cat, anon, shm = parse_maps(text)
    assert cat == MapsLine(
        0x563EAC8F2000, 0x563EAC8F4000, "r--p", 0, "fe:00", 260131, "/usr/bin/cat"
    )
    assert anon.name == ""
    assert anon.inode == 0
    assert shm.offset == 0x1000
    assert shm.name == "/dev/zero (deleted)"
    with pytest.raises(ValueError, match="not a maps line"):
        MapsLine.parse("garbage")


def test_reader_keeps_the_window_in_region_pages() -> None:
    reader = LayoutReader(BASE)
    lines = parse_maps(
        "\n".join(
            [
                "1000-2000 r-xp 00000000 fe:00 1 /usr/bin/far-away",
                line(-GUARD_PAGES, 0, "---p 00000000 00:00 0"),
                line(0, 3, "rw-s 00002000 00:01 77 /dev/zero (deleted)"),
                line(3, 5, "rw-s 00000000 00:01 78 /dev/zero (deleted)"),
                line(5, REGION_PAGES + GUARD_PAGES, "r--p 00000000 00:00 0"),
            ]
        )
    )
    layout = reader.read(lines)
    assert layout.vmas == (
        Vma(-2, 0, "---p"),
        Vma(0, 3, "rw-s", "shmem#0", 2),
        Vma(3, 5, "rw-s", "shmem#1", 0),
        Vma(5, 18, "r--p"),
    )
    assert str(layout) == "[-2,0) ---p | [0,3) rw-s shmem#0@2 | [3,5) rw-s shmem#1@0 | [5,18) r--p"
    assert layout.page_view(1) == ("rw-s", "shmem#0", 3)
    assert layout.page_view(7) == ("r--p", "anon", 0)
    assert layout.page_view(-3) is None
    # numbering persists across steps of one sequence
    again = reader.read(parse_maps(line(0, 1, "rw-s 00000000 00:01 78 /dev/zero (deleted)")))
    assert again.vmas == (Vma(0, 1, "rw-s", "shmem#1", 0),)


@pytest.mark.parametrize(
    "text",
    [
        line(-GUARD_PAGES - MOAT_PAGES, -GUARD_PAGES - MOAT_PAGES + 1, "rw-p 00000000 00:00 0"),
        line(REGION_PAGES + GUARD_PAGES, REGION_PAGES + GUARD_PAGES + 1, "rw-p 00000000 00:00 0"),
        line(REGION_PAGES, REGION_PAGES + GUARD_PAGES + 1, "---p 00000000 00:00 0"),
        line(0, 1, "r-xp 00000000 00:00 0 [uprobes]"),
        line(0, 1, "r--p 00000000 fe:00 99 /usr/lib/libc.so.6"),
    ],
    ids=["lower moat", "upper moat", "crosses the edge", "uprobes", "file"],
)
def test_reader_detects_disturbance(text: str) -> None:
    with pytest.raises(Disturbance):
        LayoutReader(BASE).read(parse_maps(text))


def test_load_policy() -> None:
    layout = Layout(
        (
            Vma(0, 1, "r--p"),
            Vma(1, 2, "---p"),
            Vma(2, 3, "-w-p"),
            Vma(3, 4, "--xs"),
            Vma(4, 5, "rwxp"),
        )
    )
    assert read_skip_reason(layout, 0) is None
    assert read_skip_reason(layout, 1) is None  # faults everywhere
    assert read_skip_reason(layout, 9) is None  # unmapped: faults everywhere
    assert read_skip_reason(layout, 2) == "load from a -w-p page is architecture-dependent"
    assert read_skip_reason(layout, 3) == "load from a --xs page is architecture-dependent"
    assert read_skip_reason(layout, 4) is None

"""``/proc/PID/maps``: fs/proc/task_mmu.c ``show_map_vma``/``show_vma_header_prefix``."""

from __future__ import annotations

from safemm.model import Kernel, Process
from safemm.model.mman import MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ

from .strategies import ANON, RW, SHANON, P, TestDevice


def test_maps_lines(k: Kernel, p: Process) -> None:
    """``show_vma_header_prefix``: ``start-end perms pgoff major:minor ino``, hex at least 8
    digits; 's' for VM_MAYSHARE; file VMAs print pgoff in bytes and are padded
    (``seq_pad``) to column 73 before the path; anonymous VMAs end after the inode and a
    space."""
    TestDevice(k, "/dev/t")
    fd = p.open("/dev/t")
    a = p.mmap(0x1000_0000, 2 * P, RW, ANON)
    b = p.mmap(0x1000_4000, P, PROT_READ | PROT_EXEC, ANON)
    c = p.mmap(0x2000_0000, 2 * P, PROT_READ, MAP_SHARED, fd, 3 * P)
    d = p.mmap(0x3000_0000, P, RW, SHANON)
    e = p.mmap(0x4000_0000, P, PROT_READ, MAP_PRIVATE, fd, P)
    dev_ino = p.fds[fd].f_inode.ino
    vd = p.mm.mm_mt.load(d)
    assert vd is not None and vd.vm_file is not None
    shm_ino = vd.vm_file.f_inode.ino
    lines = p.maps().splitlines()
    assert lines[0] == f"{a:08x}-{a + 2 * P:08x} rw-p 00000000 00:00 0 "
    assert lines[1] == f"{b:08x}-{b + P:08x} r-xp 00000000 00:00 0 "
    head = f"{c:08x}-{c + 2 * P:08x} r--s 00003000 00:05 {dev_ino} "
    assert lines[2] == head.ljust(72) + " /dev/t"
    head = f"{d:08x}-{d + P:08x} rw-s 00000000 00:01 {shm_ino} "
    assert lines[3] == head.ljust(72) + " /dev/zero (deleted)"
    head = f"{e:08x}-{e + P:08x} r--p 00001000 00:05 {dev_ino} "
    assert lines[4] == head.ljust(72) + " /dev/t"
    assert len(lines) == 5
    assert p.maps().endswith("\n")


def test_maps_follows_splits_and_is_ascending(p: Process) -> None:
    """One line per VMA, in address order, after splits and merges."""
    a = p.mmap(0x1000_0000, 4 * P, RW, ANON)
    p.mprotect(a + P, P, PROT_READ)
    p.mmap(0x0800_0000, P, RW, ANON | MAP_FIXED)
    starts = [int(line.split("-")[0], 16) for line in p.maps().splitlines()]
    assert starts == [0x0800_0000, a, a + P, a + 2 * P]


def test_empty_maps(p: Process) -> None:
    """No VMA, no line."""
    assert p.maps() == ""

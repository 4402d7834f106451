"""memfd files: mm/memfd.c ``memfd_create``; mm/shmem.c ``shmem_mmap``, ``shmem_file_read_iter``,
``shmem_file_write_iter``, ``shmem_setattr`` (truncate through ``unmap_mapping_range``);
fs/open.c ``do_sys_ftruncate``; fs/read_write.c ``ksys_pread64``/``ksys_pwrite64``. The
behaviour below was checked on Linux 6.18.44 with ``os.memfd_create`` and ``mmap``."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from safemm.model import BusError, Kernel, KernelError, Process
from safemm.model.mman import MAP_PRIVATE, MAP_SHARED

from .strategies import RW, P, TestDevice


@pytest.fixture
def fd(p: Process) -> int:
    """A three-page memfd holding ``b"hello"`` at offset 0."""
    fd = p.memfd_create("buf")
    assert p.pwrite(fd, b"hello", 0) == 5
    p.ftruncate(fd, 3 * P)
    return fd


def test_memfd_maps_line_and_sizes(k: Kernel, p: Process, fd: int) -> None:
    """The file reads back what was written, holes read as zeroes, reads stop at the size,
    and ``/proc/PID/maps`` names a mapping ``/memfd:NAME (deleted)``."""
    assert p.pread(fd, 8, 0) == b"hello\0\0\0"
    assert len(p.pread(fd, 100 * P, 0)) == 3 * P
    assert p.pread(fd, 10, 3 * P) == b""
    a = p.mmap(None, P, RW, MAP_SHARED, fd, 0)
    assert p.maps().split()[-2:] == ["/memfd:buf", "(deleted)"]
    assert p.read(a, 5) == b"hello"
    k.check_invariants()


def test_shared_and_private_mappings(k: Kernel, p: Process, fd: int) -> None:
    """Shared writes reach the file (``pread``) and other processes; private writes are
    copies nobody else sees."""
    a = p.mmap(None, 3 * P, RW, MAP_SHARED, fd, 0)
    b = p.mmap(None, 3 * P, RW, MAP_PRIVATE, fd, 0)
    child = p.fork()
    p.write(a + P, b"shared")
    assert p.pread(fd, 6, P) == b"shared"
    assert child.read(a + P, 6) == b"shared"
    assert p.read(b + P, 6) == b"shared"  # not yet copied: the page cache page
    p.write(b + 2 * P, b"priv")
    assert p.pread(fd, 4, 2 * P) == b"\0\0\0\0"
    assert child.read(b + 2 * P, 4) == b"\0\0\0\0"
    child.pwrite(fd, b"late", 2 * P)
    assert p.read(a + 2 * P, 4) == b"late"
    assert p.read(b + 2 * P, 4) == b"priv"
    k.check_invariants()


def test_ftruncate_shrink_zaps_every_mapping(k: Kernel, p: Process, fd: int) -> None:
    """Shrinking zaps the pages past the new size from every mapping in every process,
    private COW copies included (``unmap_mapping_range(holebegin, 0, 1)``): touching them is
    SIGBUS; the partial last page keeps its head and reads zero past the size."""
    a = p.mmap(None, 3 * P, RW, MAP_SHARED, fd, 0)
    b = p.mmap(None, 3 * P, RW, MAP_PRIVATE, fd, 0)
    p.write(a + P, b"shared")
    p.write(b + 2 * P, b"priv")
    child = p.fork()
    child.ftruncate(fd, P + 3)
    for proc, addr in ((p, a + 2 * P), (p, b + 2 * P), (child, b + 2 * P)):
        with pytest.raises(BusError):
            proc.read(addr, 1)
    assert p.read(a + P, 6) == b"sha\0\0\0"
    assert p.pread(fd, 10, P) == b"sha"
    p.ftruncate(fd, 3 * P)  # growing back: holes, zero-filled
    assert p.read(a + 2 * P, 4) == b"\0\0\0\0"
    k.check_invariants()


def test_file_is_freed_with_its_last_reference(k: Kernel, p: Process, fd: int) -> None:
    """The page cache goes when the descriptor and the last mapping are gone."""
    a = p.mmap(None, P, RW, MAP_SHARED, fd, 0)
    p.close(fd)
    assert p.read(a, 5) == b"hello"
    free = k.pages.nr_free
    p.munmap(a, P)
    assert k.pages.nr_free == free + 1
    k.check_invariants()


@pytest.mark.parametrize(
    ("call", "err"),
    [
        (lambda p, fd: p.memfd_create("x" * 250), errno.EINVAL),
        (lambda p, fd: p.memfd_create("x", 0x100), errno.EINVAL),
        (lambda p, fd: p.memfd_create("x", 0x4), errno.EINVAL),
        (lambda p, fd: p.memfd_create("x", 0x18), errno.EINVAL),
        (lambda p, fd: p.memfd_create("a\0b"), errno.EINVAL),
        (lambda p, fd: p.ftruncate(fd, -1), errno.EINVAL),
        (lambda p, fd: p.ftruncate(99, 0), errno.EBADF),
        (lambda p, fd: p.pread(fd, 1, -1), errno.EINVAL),
        (lambda p, fd: p.pread(99, 1, 0), errno.EBADF),
        (lambda p, fd: p.pread(fd, 1, (1 << 63) - 1), errno.EINVAL),
        (lambda p, fd: p.pwrite(fd, b"x", -P), errno.EINVAL),
        (lambda p, fd: p.pwrite(99, b"x", 0), errno.EBADF),
        (lambda p, fd: p.pwrite(fd, b"xy", (1 << 63) - 1), errno.EINVAL),
    ],
)
def test_bad_file_calls(
    k: Kernel, p: Process, fd: int, call: Callable[[Process, int], object], err: int
) -> None:
    """Refused with the kernel's errno; the file is unchanged."""
    before = (p.pread(fd, 3 * P, 0), len(p.fds))
    with pytest.raises(KernelError) as ei:
        call(p, fd)
    assert ei.value.errno == err
    assert (p.pread(fd, 3 * P, 0), len(p.fds)) == before


def test_device_files_have_no_read_write_or_truncate(k: Kernel, p: Process) -> None:
    """A character device without read/write operations: EINVAL (``FMODE_CAN_READ`` is
    not set; ``do_sys_ftruncate`` wants a regular file); a memfd name of 249 bytes is fine."""
    TestDevice(k, "/dev/t")
    dev = p.open("/dev/t")
    for call in (
        lambda: p.pread(dev, 1, 0),
        lambda: p.pwrite(dev, b"x", 0),
        lambda: p.ftruncate(dev, 0),
    ):
        with pytest.raises(KernelError) as ei:
            call()
        assert ei.value.errno == errno.EINVAL
    p.memfd_create("x" * 249)

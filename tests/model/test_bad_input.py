# mypy: disallow-any-decorated=False
# (mypy.ini's [mypy-tests.*] setting does not reach this module's name; hypothesis's @given
# returns Callable[..., None].)
"""Bad input: every syscall and kernel API checks its arguments and answers with the kernel's
errno, and a refused call leaves the model exactly as Linux leaves it (whole-model snapshots
before and after, counters excluded).

The per-operation files test each check where its behaviour is described; this file sweeps
the argument space: a table of refused calls with their errno (arch/x86/kernel/sys_x86_64.c
``sys_mmap``, mm/mmap.c ``ksys_mmap_pgoff``/``do_mmap``, mm/vma.c ``do_vmi_munmap``,
mm/mprotect.c ``do_mprotect_pkey``, mm/mremap.c ``check_mremap_params``, fs/open.c,
fs/file.c ``close_fd``, fs/ioctl.c, fs/userfaultfd.c) and a hypothesis fuzz of the memory
syscalls with hostile arguments.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safemm.model import (
    BusError,
    FileOperationsStruct,
    Kernel,
    KernelError,
    Process,
    SegmentationFault,
)
from safemm.model.memory import unmap_mapping_range
from safemm.model.mman import (
    MADV_DOFORK,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_WIPEONFORK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_HUGETLB,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_SYNC,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    TASK_SIZE,
)
from safemm.model.process import O_RDONLY, O_WRONLY
from safemm.model.vm_flags import VM_DONTCOPY
from safemm.model.vm_flags_update import vm_flags_set

from .strategies import (
    ANON,
    RW,
    P,
    TestDevice,
    assert_unchanged,
    hostile_syscalls,
    in_task,
    locked,
    snapshot,
    vma_at,
)

ULONG_MAX = (1 << 64) - 1


@dataclass
class W:
    """A small world on a non-strict kernel (Linux's own checks only): anonymous and device
    mappings, an O_RDWR and an O_RDONLY fd."""

    k: Kernel
    p: Process
    a: int  # 4 pages RW anon, written
    d: int  # 2 pages shared device mapping (VM_MAYWRITE)
    r: int  # 1 page shared device mapping through the O_RDONLY fd (no VM_MAYWRITE)
    fd: int
    ro: int
    wo: int  # O_WRONLY
    closed: int  # a descriptor that was opened and closed again


def make_world() -> W:
    k = Kernel(strict=False, nr_pages=512)
    p = k.spawn()
    TestDevice(k, "/dev/t", npages=8)
    k.register_device("/dev/plain", FileOperationsStruct("plain"))
    fd = p.open("/dev/t")
    ro = p.open("/dev/t", O_RDONLY)
    wo = p.open("/dev/t", O_WRONLY)
    closed = p.open("/dev/t")
    p.close(closed)
    a = p.mmap(0x2000_0000, 4 * P, RW, ANON)
    for i in range(4):
        p.write(a + i * P, b"data")
    d = p.mmap(0x3000_0000, 2 * P, PROT_READ, MAP_SHARED, fd)
    r = p.mmap(0x3800_0000, P, PROT_READ, MAP_SHARED, ro)
    return W(k, p, a, d, r, fd, ro, wo, closed)


Call = Callable[[W], object]

CASES: list[tuple[str, Call, int]] = [
    # mmap
    ("mmap zero length", lambda w: w.p.mmap(None, 0, RW, ANON), errno.EINVAL),
    ("mmap length wraps", lambda w: w.p.mmap(None, ULONG_MAX, RW, ANON), errno.ENOMEM),
    ("mmap length > TASK_SIZE", lambda w: w.p.mmap(None, TASK_SIZE + P, RW, ANON), errno.ENOMEM),
    ("mmap negative length", lambda w: w.p.mmap(None, -P, RW, ANON), errno.ENOMEM),
    (
        "mmap unaligned offset",
        lambda w: w.p.mmap(None, P, PROT_READ, MAP_SHARED, w.fd, 5),
        errno.EINVAL,
    ),
    ("mmap no map type", lambda w: w.p.mmap(None, P, RW, MAP_ANONYMOUS), errno.EINVAL),
    ("mmap file no map type", lambda w: w.p.mmap(None, P, PROT_READ, 0, w.fd), errno.EINVAL),
    ("mmap unknown fd", lambda w: w.p.mmap(None, P, PROT_READ, MAP_SHARED, 42), errno.EBADF),
    (
        "mmap closed fd",
        lambda w: w.p.mmap(None, P, PROT_READ, MAP_SHARED, w.closed),
        errno.EBADF,
    ),
    (
        "mmap private on O_WRONLY",
        lambda w: w.p.mmap(None, P, PROT_READ, MAP_PRIVATE, w.wo),
        errno.EACCES,
    ),
    (
        "mmap shared on O_WRONLY",
        lambda w: w.p.mmap(None, P, PROT_READ, MAP_SHARED, w.wo),
        errno.EACCES,
    ),
    ("mmap negative fd", lambda w: w.p.mmap(None, P, PROT_READ, MAP_SHARED, -1), errno.EBADF),
    ("mmap fixed unaligned", lambda w: w.p.mmap(w.a + 1, P, RW, ANON | MAP_FIXED), errno.EINVAL),
    (
        "mmap fixed past TASK_SIZE",
        lambda w: w.p.mmap(TASK_SIZE - P, 2 * P, RW, ANON | MAP_FIXED),
        errno.ENOMEM,
    ),
    (
        "mmap noreplace over mapping",
        lambda w: w.p.mmap(w.a, P, RW, ANON | MAP_FIXED_NOREPLACE),
        errno.EEXIST,
    ),
    (
        "mmap validate unknown flag",
        lambda w: w.p.mmap(None, P, PROT_READ, MAP_SHARED_VALIDATE | MAP_SYNC, w.fd),
        errno.EOPNOTSUPP,
    ),
    (
        "mmap shared write on O_RDONLY",
        lambda w: w.p.mmap(None, P, RW, MAP_SHARED, w.ro),
        errno.EACCES,
    ),
    (
        "mmap growsdown file",
        lambda w: w.p.mmap(None, P, PROT_READ, MAP_PRIVATE | MAP_GROWSDOWN, w.fd),
        errno.EINVAL,
    ),
    (
        "mmap hugetlb file",
        lambda w: w.p.mmap(None, P, PROT_READ, MAP_SHARED | MAP_HUGETLB, w.fd),
        errno.EINVAL,
    ),
    ("mmap value beyond ulong", lambda w: w.p.mmap(None, 1 << 64, RW, ANON), errno.EINVAL),
    # munmap
    ("munmap unaligned", lambda w: w.p.munmap(w.a + 8, P), errno.EINVAL),
    ("munmap zero", lambda w: w.p.munmap(w.a, 0), errno.EINVAL),
    ("munmap negative", lambda w: w.p.munmap(w.a, -1), errno.EINVAL),
    ("munmap past TASK_SIZE", lambda w: w.p.munmap(TASK_SIZE - P, 2 * P), errno.EINVAL),
    ("munmap start > TASK_SIZE", lambda w: w.p.munmap(TASK_SIZE + P, P), errno.EINVAL),
    # mprotect
    ("mprotect unaligned", lambda w: w.p.mprotect(w.a + 1, P, PROT_READ), errno.EINVAL),
    ("mprotect bad prot", lambda w: w.p.mprotect(w.a, P, 0x100), errno.EINVAL),
    ("mprotect wraps", lambda w: w.p.mprotect(w.a, ULONG_MAX, PROT_READ), errno.ENOMEM),
    ("mprotect unmapped", lambda w: w.p.mprotect(0x10000, P, PROT_READ), errno.ENOMEM),
    ("mprotect past may", lambda w: w.p.mprotect(w.r, P, RW), errno.EACCES),
    # mremap
    ("mremap bad flags", lambda w: w.p.mremap(w.a, P, 2 * P, 0x10), errno.EINVAL),
    ("mremap unaligned", lambda w: w.p.mremap(w.a + 1, P, 2 * P), errno.EINVAL),
    ("mremap zero new", lambda w: w.p.mremap(w.a, P, 0), errno.EINVAL),
    ("mremap wrapping new", lambda w: w.p.mremap(w.a, P, ULONG_MAX, 1), errno.EINVAL),
    ("mremap no vma", lambda w: w.p.mremap(0x10000, P, 2 * P, 1), errno.EFAULT),
    ("mremap crosses end", lambda w: w.p.mremap(w.a, 8 * P, 9 * P, 1), errno.EFAULT),
    (
        "mremap fixed without maymove",
        lambda w: w.p.mremap(w.a, P, P, MREMAP_FIXED, 0x4000_0000),
        errno.EINVAL,
    ),
    (
        "mremap dontunmap resize",
        lambda w: w.p.mremap(w.a, P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP),
        errno.EINVAL,
    ),
    (
        "mremap fixed overlap",
        lambda w: w.p.mremap(w.a, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, w.a + P),
        errno.EINVAL,
    ),
    (
        "mremap fixed unaligned",
        lambda w: w.p.mremap(w.a, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, 0x4000_0010),
        errno.EINVAL,
    ),
    ("mremap private dup", lambda w: w.p.mremap(w.a, 0, P, MREMAP_MAYMOVE), errno.EINVAL),
    ("mremap grow mixedmap in place", lambda w: w.p.mremap(w.d, 2 * P, 3 * P), errno.ENOMEM),
    # madvise (mm/madvise.c do_madvise, madvise_walk_vmas, madvise_vma_behavior)
    ("madvise unknown advice", lambda w: w.p.madvise(w.a, P, 999), errno.EINVAL),
    ("madvise unmodelled advice", lambda w: w.p.madvise(w.a, P, 8), errno.EINVAL),
    ("madvise unaligned", lambda w: w.p.madvise(w.a + 1, P, MADV_DONTNEED), errno.EINVAL),
    ("madvise length rounds to 0", lambda w: w.p.madvise(w.a, ULONG_MAX, 4), errno.EINVAL),
    ("madvise wraps", lambda w: w.p.madvise(w.a, ULONG_MAX - P + 1, 4), errno.EINVAL),
    ("madvise unmapped", lambda w: w.p.madvise(0x10000, P, MADV_DONTFORK), errno.ENOMEM),
    ("madvise past TASK_SIZE", lambda w: w.p.madvise(1 << 62, P, MADV_DONTNEED), errno.ENOMEM),
    ("madvise dofork device", lambda w: w.p.madvise(w.d, P, MADV_DOFORK), errno.EINVAL),
    ("madvise wipeonfork file", lambda w: w.p.madvise(w.d, P, MADV_WIPEONFORK), errno.EINVAL),
    # mlock/munlock (mm/mlock.c do_mlock, apply_vma_lock_flags)
    ("mlock unmapped", lambda w: w.p.mlock(0x10000, P), errno.ENOMEM),
    ("mlock wraps", lambda w: w.p.mlock(w.a, ULONG_MAX - P + 1), errno.EINVAL),
    ("mlock past TASK_SIZE", lambda w: w.p.mlock(1 << 62, P), errno.ENOMEM),
    ("munlock unmapped", lambda w: w.p.munlock(0x10000, P), errno.ENOMEM),
    ("munlock wraps", lambda w: w.p.munlock(w.a, ULONG_MAX - P + 1), errno.EINVAL),
    # memfd and file I/O (mm/memfd.c, fs/open.c do_sys_ftruncate, fs/read_write.c)
    ("memfd name too long", lambda w: w.p.memfd_create("n" * 250), errno.EINVAL),
    ("memfd unknown flags", lambda w: w.p.memfd_create("n", 0x8000), errno.EINVAL),
    ("ftruncate device", lambda w: w.p.ftruncate(w.fd, 0), errno.EINVAL),
    ("ftruncate negative", lambda w: w.p.ftruncate(w.fd, -1), errno.EINVAL),
    ("ftruncate closed fd", lambda w: w.p.ftruncate(w.closed, 0), errno.EBADF),
    ("pread device", lambda w: w.p.pread(w.fd, 1, 0), errno.EINVAL),
    ("pread O_WRONLY", lambda w: w.p.pread(w.wo, 1, 0), errno.EBADF),
    ("pwrite O_RDONLY", lambda w: w.p.pwrite(w.ro, b"x", 0), errno.EBADF),
    ("pwrite negative offset", lambda w: w.p.pwrite(w.fd, b"x", -1), errno.EINVAL),
    # files
    ("open no such device", lambda w: w.p.open("/dev/none"), errno.ENOENT),
    ("open bad flags", lambda w: w.p.open("/dev/t", 3), errno.EINVAL),
    ("close unknown fd", lambda w: w.p.close(w.closed), errno.EBADF),
    ("ioctl unknown fd", lambda w: w.p.ioctl(w.closed, 1), errno.EBADF),
    ("ioctl without hook", lambda w: w.p.ioctl(w.fd, 1), errno.ENOTTY),
    (
        "mmap without ->mmap",
        lambda w: w.p.mmap(None, P, PROT_READ, MAP_SHARED, w.p.open("/dev/plain")),
        errno.ENODEV,
    ),
    # userfaultfd
    ("uffd bad mode", lambda w: w.p.userfaultfd_register(w.a, P, 0x80), errno.EINVAL),
    ("uffd zero length", lambda w: w.p.userfaultfd_register(w.a, 0), errno.EINVAL),
    ("uffd device vma", lambda w: w.p.userfaultfd_register(w.d, P), errno.EINVAL),
    (
        "uffd past TASK_SIZE",
        lambda w: w.p.userfaultfd_register(TASK_SIZE - P, 2 * P),
        errno.EINVAL,
    ),
    # reads and writes
    ("read negative length", lambda w: w.p.read(w.a, -1), errno.EINVAL),
]


@pytest.mark.parametrize(("what", "call", "err"), CASES, ids=[c[0] for c in CASES])
def test_refused_call_changes_nothing(what: str, call: Call, err: int) -> None:
    """The call is refused with the kernel's errno and the whole model is unchanged."""
    w = make_world()
    before = snapshot(w.k)
    with pytest.raises(KernelError) as ei:
        call(w)
    assert ei.value.errno == err, f"{what}: {ei.value}"
    after = snapshot(w.k)
    if what == "mmap without ->mmap":
        # the open() inside the call added a descriptor; nothing else may differ
        assert after.mms == before.mms and after.pages == before.pages
    else:
        assert_unchanged(before, after)
    w.k.check_invariants()


def test_exited_process_is_esrch() -> None:
    """Every syscall of an exited process: ESRCH (the task is gone)."""
    w = make_world()
    w.p.exit()
    calls: list[Call] = [
        lambda w: w.p.mmap(None, P, RW, ANON),
        lambda w: w.p.munmap(w.a, P),
        lambda w: w.p.mprotect(w.a, P, PROT_READ),
        lambda w: w.p.mremap(w.a, P, 2 * P),
        lambda w: w.p.fork(),
        lambda w: w.p.exit(),
        lambda w: w.p.read(w.a, 1),
        lambda w: w.p.write(w.a, b"x"),
        lambda w: w.p.open("/dev/t"),
        lambda w: w.p.maps(),
        lambda w: w.p.userfaultfd_register(w.a, P),
        lambda w: w.p.madvise(w.a, P, MADV_DONTNEED),
        lambda w: w.p.mlock(w.a, P),
        lambda w: w.p.munlock(w.a, P),
        lambda w: w.p.memfd_create("x"),
        lambda w: w.p.ftruncate(w.fd, 0),
        lambda w: w.p.pread(w.fd, 1, 0),
        lambda w: w.p.pwrite(w.fd, b"x", 0),
    ]
    for call in calls:
        with pytest.raises(KernelError) as ei:
            call(w)
        assert ei.value.errno == errno.ESRCH


def test_non_integer_arguments_are_type_errors() -> None:
    """Python-level misuse (a str where C takes an unsigned long) is a TypeError, not an
    errno: no kernel would see such a call."""
    w = make_world()
    with pytest.raises(TypeError):
        w.p.mmap(None, "4096", RW, ANON)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        w.p.munmap(w.a, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        w.p.write(w.a, "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        w.p.close(True)
    with pytest.raises(TypeError):
        w.p.madvise(w.a, P, "dontneed")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        w.p.mlock(w.a, None)  # type: ignore[arg-type]


def test_kernel_api_arguments() -> None:
    """Kernel-side entry points check their arguments too."""
    with pytest.raises(ValueError, match="max_map_count"):
        Kernel(max_map_count=0)
    with pytest.raises(ValueError, match="nr_pages"):
        Kernel(nr_pages=0)
    w = make_world()
    k = w.k
    for path in ("dev/x", "/", ""):
        with pytest.raises(KernelError) as ei:
            k.register_device(path, FileOperationsStruct("x"))
        assert ei.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as ei:
        k.register_device("/dev/t", FileOperationsStruct("x"))
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(KernelError) as ei:
        k.shrink(-5)
    assert ei.value.errno == errno.EINVAL
    mapping = w.p.fds[w.fd].f_mapping
    with pytest.raises(KernelError) as ei, in_task(w.p):
        unmap_mapping_range(mapping, -P, P)
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as ei, locked(w.p):
        vm_flags_set(vma_at(w.p, w.a), 1 << 62)  # not a VM_* bit
    assert ei.value.errno == errno.EINVAL
    with locked(w.p):
        vm_flags_set(vma_at(w.p, w.a), VM_DONTCOPY)


# -- fuzz -----------------------------------------------------------------------------------------


def _expect_unchanged(w: W, kind: str, args: tuple[int, ...], err: int) -> bool:
    """Whether Linux guarantees that this refused call changed nothing."""
    if kind == "munmap":
        return True
    if kind == "mmap":
        # MAP_FIXED with a file: ->mmap may refuse after the old mapping was torn down
        return not (args[3] & (MAP_FIXED | MAP_FIXED_NOREPLACE) and not args[3] & MAP_ANONYMOUS)
    if kind == "mprotect":
        return err == errno.EINVAL or w.p.mm.mm_mt.load(args[0]) is None
    # mremap: MREMAP_FIXED unmaps the destination (and the tail) before its checks
    return not args[3] & MREMAP_FIXED


@settings(max_examples=200)
@given(ops=st.lists(hostile_syscalls(), min_size=1, max_size=6))
def test_fuzz_memory_syscalls(ops: list[tuple[str, tuple[int, ...]]]) -> None:
    """Hostile arguments: every outcome is success or KernelError (never a model crash); the
    invariants hold after each call; refusals Linux makes before changing anything leave the
    whole model unchanged."""
    w = make_world()
    fds = {0: -1, 1: w.fd, 2: w.ro}
    for kind, args in ops:
        before = snapshot(w.k)
        try:
            if kind == "mmap":
                addr, length, prot, flags, fdsel = args
                w.p.mmap(addr, length, prot, flags, fds[fdsel])
            elif kind == "munmap":
                w.p.munmap(args[0], args[1])
            elif kind == "mprotect":
                w.p.mprotect(args[0], args[1], args[2])
            else:
                addr, old, new, flags, new_addr = args
                w.p.mremap(addr, old, new, flags, new_addr)
        except KernelError as e:
            if _expect_unchanged(w, kind, args, e.errno or 0):
                assert_unchanged(before, snapshot(w.k))
        w.k.check_invariants()
    for addr in (w.a, w.d):
        try:
            w.p.read(addr, 1)
        except (SegmentationFault, BusError):
            pass
    w.p.exit()
    w.k.check_invariants()

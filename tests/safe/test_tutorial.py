"""The README's tutorial driver (examples/tutorial.py) works as described."""

from __future__ import annotations

import errno

import pytest

from examples.tutorial import HELLO_ZAP, HelloDriver, main
from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    Kernel,
    KernelError,
)


def test_tutorial_runs_clean(capsys: pytest.CaptureFixture[str]) -> None:
    """The tutorial maps, reads, zaps, faults (SIGBUS) and tears down without a splat."""
    main()
    out = capsys.readouterr().out
    assert "r--s 00000000" in out
    assert "/dev/hello" in out
    assert "read: b'hello, world'" in out
    assert "SIGBUS" in out
    assert "dmesg: clean" in out


def test_tutorial_refuses_writable_and_second_mapping() -> None:
    """->mmap refuses PROT_WRITE (EPERM, and mprotect can never add it: EACCES) and a second
    mapping of the same open file (EBUSY)."""
    kernel = Kernel()
    kernel.register_device("/dev/hello", HelloDriver())
    proc = kernel.spawn()
    fd = proc.open("/dev/hello")
    with pytest.raises(KernelError) as exc:
        proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd)
    assert exc.value.errno == errno.EPERM
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    with pytest.raises(KernelError) as exc:
        proc.mprotect(addr, PAGE_SIZE, PROT_READ | PROT_WRITE)
    assert exc.value.errno == errno.EACCES
    with pytest.raises(KernelError) as exc:
        proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    assert exc.value.errno == errno.EBUSY
    proc.exit()
    kernel.check_invariants()
    assert kernel.dmesg == []


def test_tutorial_refuses_exec() -> None:
    """PROT_EXEC is refused at mmap (EPERM) and can never be added by mprotect (EACCES):
    gaining VM_EXEC over an inserted page breaks access-after-insert (the fuzzer found the
    tutorial missing this)."""
    kernel = Kernel()
    kernel.register_device("/dev/hello", HelloDriver())
    proc = kernel.spawn()
    fd = proc.open("/dev/hello")
    with pytest.raises(KernelError) as exc:
        proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_EXEC, MAP_SHARED, fd)
    assert exc.value.errno == errno.EPERM
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    with pytest.raises(KernelError) as exc:
        proc.mprotect(addr, PAGE_SIZE, PROT_READ | PROT_EXEC)
    assert exc.value.errno == errno.EACCES
    proc.exit()
    kernel.check_invariants()
    assert kernel.dmesg == []


def test_tutorial_ioctl_refuses_a_different_vma_at_the_address() -> None:
    """After munmap + mmap of anonymous memory at the same address, check_vma refuses it."""
    kernel = Kernel()
    kernel.register_device("/dev/hello", HelloDriver())
    proc = kernel.spawn()
    fd = proc.open("/dev/hello")
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ, MAP_SHARED, fd)
    proc.munmap(addr, PAGE_SIZE)
    proc.mmap(addr, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    with pytest.raises(KernelError) as exc:
        proc.ioctl(fd, HELLO_ZAP)
    assert exc.value.errno == errno.ENXIO
    proc.exit()
    kernel.check_invariants()
    assert kernel.dmesg == []

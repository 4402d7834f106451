"""The safemm model's side: replay the same operations through ``Process``.

For every sequence a fresh ``Kernel`` and process are made, and the window is
reserved the way the executor does it: one PROT_NONE
``MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE`` mapping of
``GUARD_PAGES + REGION_PAGES + GUARD_PAGES`` pages at :data:`MODEL_WINDOW`
(region page 0 is :data:`MODEL_REGION_BASE`). Operations then run at
``MODEL_REGION_BASE + page * PAGE_SIZE``; returned addresses are compared
relative to that base. ``KernelError`` becomes ``-errno``,
``SegmentationFault``/``BusError`` become ``SIGSEGV``/``SIGBUS``, and any other
exception is recorded as an ``exception`` outcome (which never matches the
kernel). ``Process.maps()`` is parsed by the same reader as the kernel's maps,
so it uses the kernel's columns: see :mod:`safemm.conformance.layout`. The
operations carry Linux's ``PROT_``/``MAP_``/``MREMAP_`` numbers, which are the model's
(``tests/conformance/test_model_side.py`` checks that they agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from safemm.model.errors import BusError, KernelError, SegmentationFault
from safemm.model.kernel import Kernel
from safemm.model.process import Process

from .layout import MapsLine, parse_maps
from .ops import (
    FILE_EOF,
    GUARD_PAGES,
    MAP_ANONYMOUS,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MEMFD,
    MEMFD_NAME,
    PAGE_SIZE,
    PROT_NONE,
    REGION_PAGES,
    Call,
    ForkCall,
    FtruncateCall,
    MadviseCall,
    MlockCall,
    MmapCall,
    MprotectCall,
    MremapCall,
    MunlockCall,
    MunmapCall,
    Op,
    PreadCall,
    PwriteCall,
    ReadCall,
    WriteCall,
)
from .steps import Outcome, SequenceResult, run_sequence

__all__ = ["MODEL_REGION_BASE", "MODEL_WINDOW", "ModelMachine", "ModelSide"]

MODEL_REGION_BASE: Final = 0x10_0000_0000
"""Region page 0 in the model's process (64 GiB: far from anything spawn() maps)."""
MODEL_WINDOW: Final = MODEL_REGION_BASE - GUARD_PAGES * PAGE_SIZE
"""First byte of the model's window (the lower guard)."""


class ModelMachine:
    """The model as a :class:`~safemm.conformance.steps.Machine`.

    Args:
        region_base: where region page 0 goes in the model's process.
    """

    def __init__(self, region_base: int = MODEL_REGION_BASE) -> None:
        self._base = region_base
        self._process: Process | None = None
        self._child: Process | None = None
        self._memfd = -1

    @property
    def region_base(self) -> int:
        """Absolute address of region page 0 in the model's process."""
        return self._base

    @property
    def process(self) -> Process:
        """The current sequence's process."""
        if self._process is None:
            raise RuntimeError("reset() first")
        return self._process

    def reset(self) -> list[MapsLine]:
        """Spawn a fresh process and reserve its window.

        Raises:
            RuntimeError: the reservation failed or landed elsewhere (a model bug).
        """
        self._process = Kernel().spawn()
        self._child = None
        self._memfd = self._process.memfd_create(MEMFD_NAME)
        window = self._base - GUARD_PAGES * PAGE_SIZE
        length = (2 * GUARD_PAGES + REGION_PAGES) * PAGE_SIZE
        outcome, lines = self.perform(
            MmapCall(
                window, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0
            )
        )
        if outcome != Outcome.ok(window):
            raise RuntimeError(f"reserving the window at {window:#x} gave {outcome}")
        return lines

    def perform(self, call: Call, *, in_child: bool = False) -> tuple[Outcome, list[MapsLine]]:
        """Run one absolute call on the model's process, or on its child (``in_child``).

        A :class:`~safemm.conformance.ops.ForkCall` ends an earlier child and forks the
        process (``Process.fork``). The child's descriptor table is a copy, so the memfd
        has the same number there.
        """
        process = self.process
        try:
            if isinstance(call, ForkCall):
                if self._child is not None:
                    self._child.exit()
                    self._child = None
                self._child = process.fork()
                outcome = Outcome.ok(0)
            elif in_child:
                if self._child is None:
                    raise RuntimeError("no child process")
                outcome = self._dispatch(self._child, call, self._memfd)
            else:
                outcome = self._dispatch(process, call, self._memfd)
        except Exception as exc:
            outcome = self._classify(exc)
        return outcome, parse_maps(process.maps())

    def child_lines(self) -> list[MapsLine] | None:
        """The child's maps lines, or None if there is no child."""
        return None if self._child is None else parse_maps(self._child.maps())

    @staticmethod
    def _classify(exc: Exception) -> Outcome:
        if isinstance(exc, SegmentationFault):
            return Outcome.signal("SIGSEGV")
        if isinstance(exc, BusError):
            return Outcome.signal("SIGBUS")
        if isinstance(exc, KernelError) and exc.errno is not None:
            return Outcome.error(exc.errno)
        return Outcome.exception(f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _dispatch(process: Process, call: Call, memfd: int) -> Outcome:
        match call:
            case ForkCall():
                raise RuntimeError("fork is run by perform()")
            case MmapCall(addr, length, prot, flags, fd, offset):
                fd = memfd if fd == MEMFD else fd
                return Outcome.ok(process.mmap(addr, length, prot, flags, fd, offset))
            case MunmapCall(addr, length):
                process.munmap(addr, length)
                return Outcome.ok(0)
            case MprotectCall(addr, length, prot):
                process.mprotect(addr, length, prot)
                return Outcome.ok(0)
            case MremapCall(old, old_len, new_len, flags, new_addr):
                return Outcome.ok(process.mremap(old, old_len, new_len, flags, new_addr))
            case ReadCall(addr):
                data = process.read(addr, 1)
                if len(data) != 1:
                    return Outcome.exception(f"read(addr, 1) returned {data!r}")
                return Outcome.ok(data[0])
            case WriteCall(addr, byte):
                process.write(addr, bytes([byte]))
                return Outcome.ok(0)
            case MadviseCall(addr, length, advice):
                process.madvise(addr, length, advice)
                return Outcome.ok(0)
            case MlockCall(addr, length):
                process.mlock(addr, length)
                return Outcome.ok(0)
            case MunlockCall(addr, length):
                process.munlock(addr, length)
                return Outcome.ok(0)
            case FtruncateCall(length):
                process.ftruncate(memfd, length)
                return Outcome.ok(0)
            case PreadCall(offset):
                data = process.pread(memfd, 1, offset)
                return Outcome.ok(data[0] if data else FILE_EOF)
            case PwriteCall(offset, byte):
                return Outcome.ok(process.pwrite(memfd, bytes([byte]), offset))


class ModelSide:
    """The safemm model as a :class:`~safemm.conformance.steps.Side`.

    Args:
        machine: the adapter to use; a new :class:`ModelMachine` if None.
    """

    def __init__(self, machine: ModelMachine | None = None) -> None:
        self.machine = ModelMachine() if machine is None else machine

    @property
    def name(self) -> str:
        """Always ``model``."""
        return "model"

    def run(self, ops: Sequence[Op]) -> SequenceResult:
        """Run ``ops`` on a fresh model process."""
        return run_sequence(self.machine, ops)

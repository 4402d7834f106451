"""The safemm model's side: replay the same operations through ``Process``.

The model is driven only through the user-space API that ``DESIGN.md`` fixes::

    from safemm import Kernel, KernelError, SegmentationFault, BusError
    k = Kernel(); p = k.spawn()
    p.mmap(addr, length, prot, flags, fd=-1, offset=0) -> int
    p.munmap(addr, length); p.mprotect(addr, length, prot)
    p.mremap(old_addr, old_len, new_len, flags=0, new_addr=None) -> int
    p.read(addr, length) -> bytes; p.write(addr, data); p.maps() -> str

For every sequence a fresh ``Kernel`` and process are made, and the window is
reserved the way the executor does it: one PROT_NONE
``MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE`` mapping of
``GUARD_PAGES + REGION_PAGES + GUARD_PAGES`` pages at :data:`MODEL_WINDOW`
(region page 0 is :data:`MODEL_REGION_BASE`). Operations then run at
``MODEL_REGION_BASE + page * PAGE_SIZE``; returned addresses are compared
relative to that base. ``KernelError`` becomes ``-errno``,
``SegmentationFault``/``BusError`` become ``SIGSEGV``/``SIGBUS``, and any other
exception is recorded as an ``exception`` outcome (which never matches the
kernel). ``p.maps()`` is parsed by the same reader as the kernel's maps, so it
must use the kernel's columns: see :mod:`safemm.conformance.layout`.

The model does not exist yet while this is written, so nothing here imports it
statically: :func:`load_model_api` looks the names up at run time and narrows
them with ``isinstance`` checks against :class:`UserProcess`, a protocol that
spells out the API above. Tests skip with "model not available yet" until
``safemm.Kernel`` exists. The model's PROT_/MAP_/MREMAP_ constants must equal
Linux's (the operations carry Linux's numbers); :func:`load_model_api` checks
that and raises :class:`ModelIncompatible` if they differ.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from . import ops as linux
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

__all__ = [
    "MODEL_REGION_BASE",
    "MODEL_WINDOW",
    "ModelApi",
    "ModelIncompatible",
    "ModelMachine",
    "ModelSide",
    "ModelUnavailable",
    "UserProcess",
    "load_model_api",
    "model_unavailable_reason",
]

MODEL_REGION_BASE: Final = 0x10_0000_0000
"""Region page 0 in the model's process (64 GiB: far from anything spawn() maps)."""
MODEL_WINDOW: Final = MODEL_REGION_BASE - GUARD_PAGES * PAGE_SIZE
"""First byte of the model's window (the lower guard)."""

_CONSTANTS: Final = (
    "PAGE_SIZE",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "PROT_EXEC",
    "MAP_SHARED",
    "MAP_PRIVATE",
    "MAP_ANONYMOUS",
    "MAP_FIXED",
    "MAP_FIXED_NOREPLACE",
    "MREMAP_MAYMOVE",
    "MREMAP_FIXED",
    "MREMAP_DONTUNMAP",
)


@runtime_checkable
class UserProcess(Protocol):
    """The part of ``safemm.Process`` the suite uses (DESIGN.md, "Top level")."""

    def mmap(
        self, addr: int | None, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0
    ) -> int:
        """Map memory; returns the address."""
        ...

    def munmap(self, addr: int, length: int) -> object:
        """Unmap memory."""
        ...

    def mprotect(self, addr: int, length: int, prot: int) -> object:
        """Change protection."""
        ...

    def mremap(
        self,
        old_addr: int,
        old_len: int,
        new_len: int,
        flags: int = 0,
        new_addr: int | None = None,
    ) -> int:
        """Resize or move a mapping; returns the address."""
        ...

    def read(self, addr: int, length: int) -> bytes:
        """Read user memory as the process would."""
        ...

    def write(self, addr: int, data: bytes) -> object:
        """Write user memory as the process would."""
        ...

    def maps(self) -> str:
        """``/proc/PID/maps`` text."""
        ...

    def madvise(self, addr: int, length: int, advice: int) -> object:
        """Advise on a range."""
        ...

    def mlock(self, addr: int, length: int) -> object:
        """Lock a range."""
        ...

    def munlock(self, addr: int, length: int) -> object:
        """Unlock a range."""
        ...

    def memfd_create(self, name: str, flags: int = 0) -> int:
        """Create a memfd; returns its descriptor."""
        ...

    def ftruncate(self, fd: int, length: int) -> object:
        """Set a file's size."""
        ...

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        """Read from a file at an offset."""
        ...

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        """Write to a file at an offset; returns the count."""
        ...


class ModelUnavailable(Exception):
    """The model cannot be loaded (it does not exist yet); ``str()`` says why."""


class ModelIncompatible(Exception):
    """The model exists but does not match what the suite passes it (a real bug)."""


@dataclass(frozen=True, slots=True)
class ModelApi:
    """The model's entry points, found at run time.

    Attributes:
        spawn: makes a fresh process (a new ``Kernel()`` each time).
        kernel_error: ``safemm.KernelError``.
        faults: the exception types that stand for signals, with the signal names.
    """

    spawn: Callable[[], UserProcess]
    kernel_error: type[OSError]
    faults: tuple[tuple[type[BaseException], str], ...]


def _exception_type(module: object, name: str) -> type[BaseException]:
    value: object = getattr(module, name, None)
    if not (isinstance(value, type) and issubclass(value, BaseException)):
        raise ModelUnavailable(f"model not available yet: safemm.{name} is missing")
    return value


def load_model_api() -> ModelApi:
    """Find ``safemm.Kernel`` and friends.

    Raises:
        ModelUnavailable: ``safemm`` or one of the names is missing.
        ModelIncompatible: a constant differs from Linux's value.
    """
    try:
        module = importlib.import_module("safemm")
    except ImportError as exc:
        raise ModelUnavailable(f"model not available yet: cannot import safemm ({exc})") from exc
    kernel_cls: object = getattr(module, "Kernel", None)
    if not callable(kernel_cls):
        raise ModelUnavailable("model not available yet: safemm.Kernel is missing")
    kernel_error = _exception_type(module, "KernelError")
    if not issubclass(kernel_error, OSError):
        raise ModelIncompatible("safemm.KernelError is not an OSError")
    faults = (
        (_exception_type(module, "SegmentationFault"), "SIGSEGV"),
        (_exception_type(module, "BusError"), "SIGBUS"),
    )
    for name in _CONSTANTS:
        theirs: object = getattr(module, name, None)
        ours: object = getattr(linux, name)
        if theirs != ours:
            raise ModelIncompatible(
                f"safemm.{name} is {theirs!r}; the suite passes Linux's value {ours!r}"
            )

    def spawn() -> UserProcess:
        kernel: object = kernel_cls()
        spawner: object = getattr(kernel, "spawn", None)
        if not callable(spawner):
            raise ModelIncompatible("safemm.Kernel() has no spawn()")
        process: object = spawner()
        if not isinstance(process, UserProcess):
            raise ModelIncompatible(
                f"Kernel().spawn() returned {process!r}, which lacks the Process API"
            )
        return process

    return ModelApi(spawn, kernel_error, faults)


def model_unavailable_reason() -> str | None:
    """Why the model side cannot run (the model does not exist yet), or None."""
    try:
        load_model_api()
    except ModelUnavailable as exc:
        return str(exc)
    return None


class ModelMachine:
    """The model as a :class:`~safemm.conformance.steps.Machine`.

    Args:
        api: the model's entry points; :func:`load_model_api` if None.
        region_base: where region page 0 goes in the model's process.
    """

    def __init__(self, api: ModelApi | None = None, region_base: int = MODEL_REGION_BASE) -> None:
        self.api = load_model_api() if api is None else api
        self._base = region_base
        self._process: UserProcess | None = None
        self._memfd = -1

    @property
    def region_base(self) -> int:
        """Absolute address of region page 0 in the model's process."""
        return self._base

    @property
    def process(self) -> UserProcess:
        """The current sequence's process."""
        if self._process is None:
            raise RuntimeError("reset() first")
        return self._process

    def reset(self) -> list[MapsLine]:
        """Spawn a fresh process and reserve its window.

        Raises:
            ModelIncompatible: the reservation failed or landed elsewhere.
        """
        self._process = self.api.spawn()
        self._memfd = self._process.memfd_create(MEMFD_NAME)
        window = self._base - GUARD_PAGES * PAGE_SIZE
        length = (2 * GUARD_PAGES + REGION_PAGES) * PAGE_SIZE
        outcome, lines = self.perform(
            MmapCall(
                window, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0
            )
        )
        if outcome != Outcome.ok(window):
            raise ModelIncompatible(f"reserving the window at {window:#x} gave {outcome}")
        return lines

    def perform(self, call: Call) -> tuple[Outcome, list[MapsLine]]:
        """Run one absolute call on the model's process."""
        process = self.process
        try:
            outcome = self._dispatch(process, call, self._memfd)
        except Exception as exc:
            outcome = self._classify(exc)
        return outcome, parse_maps(process.maps())

    def _classify(self, exc: Exception) -> Outcome:
        for fault_type, name in self.api.faults:
            if isinstance(exc, fault_type):
                return Outcome.signal(name)
        if isinstance(exc, self.api.kernel_error):
            if exc.errno is None:
                return Outcome.exception(f"{exc!r} has no errno")
            return Outcome.error(exc.errno)
        return Outcome.exception(f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _dispatch(process: UserProcess, call: Call, memfd: int) -> Outcome:
        match call:
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
        machine: the adapter to use; a :class:`ModelMachine` over
            :func:`load_model_api` if None.

    Raises:
        ModelUnavailable: the model does not exist yet.
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

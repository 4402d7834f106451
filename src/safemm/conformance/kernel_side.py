"""The real kernel's side: compile ``executor.c``, run it, read its answers.

``executor.c`` is shipped in this package and compiled at run time with the
machine's ``gcc -O2`` into a cache directory (``$SAFEMM_CACHE_DIR``, else
``$XDG_CACHE_HOME/safemm``, else ``~/.cache/safemm``, else a per-user directory
under the system temp dir), under a name keyed by the SHA-256 of the source, the
compiler's version and the flags, so a changed source or compiler rebuilds and
concurrent test workers share one binary (it is written under a temporary name
and renamed into place).

One :class:`KernelExecutor` is one helper process (and, after a fork request, its
child, which it drives over a pipe). It reserves its window once at start-up;
:meth:`KernelExecutor.reset` ends the child and puts the window back to one PROT_NONE
private anonymous VMA (a single ``MAP_FIXED`` mmap over the whole window), so a
process serves any number of sequences. :class:`KernelSide` adapts it to the
:class:`~safemm.conformance.steps.Side` protocol.

Why the helper is a separate C process rather than ``ctypes`` calls from Python:
the Python interpreter allocates memory (and so maps and unmaps pages) whenever
it likes, and could place an arena in a hole an operation just made. The helper
allocates nothing after setup and never lets the kernel choose an address; the
argument is spelt out at the top of ``executor.c``. On top of that every step's
maps are checked (:class:`~safemm.conformance.layout.LayoutReader`): a mapping
that the sequence cannot have made raises
:class:`~safemm.conformance.layout.Disturbance` instead of being compared.

Kernel behaviour depends on the version and on configuration, so
:class:`KernelInfo` records ``platform.release()``, ``vm.overcommit_memory``
and ``vm.max_map_count`` with every report and states what the suite assumes
(:data:`ASSUMPTIONS`). :func:`unavailable_reason` says, in one sentence, why the
kernel side cannot run here (not Linux, no gcc, another page size ...); tests
skip with that sentence.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Self

from .layout import MapsLine
from .ops import (
    GUARD_PAGES,
    MOAT_PAGES,
    PAGE_SIZE,
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

__all__ = [
    "ASSUMPTIONS",
    "CFLAGS",
    "ExecutorError",
    "KernelExecutor",
    "KernelInfo",
    "KernelSide",
    "KernelUnavailable",
    "UnsafeOperation",
    "build_executor",
    "unavailable_reason",
]

CFLAGS: Final = ("-O2", "-Wall", "-Wextra", "-Wl,-z,now")
"""Flags for the helper. ``-z now``: no lazy binding, so ld.so never runs after setup."""

MIN_MAX_MAP_COUNT: Final = 1024
"""Below this, ``vm.max_map_count`` could be reached by the helper's own VMAs."""

#: What the suite assumes of the machine it compares against, one sentence each.
ASSUMPTIONS: Final = (
    "Linux >= 4.17 (MAP_FIXED_NOREPLACE), 64-bit, asm-generic mmap constants, 4 KiB pages.",
    "vm.max_map_count is far above the ~60 VMAs the helper has (checked: >= 1024), so no "
    "operation fails with ENOMEM for the map count.",
    "vm.overcommit_memory is 0 or 1: no mapping of at most 20 pages is refused for lack of "
    "commit charge (in mode 2 one can be, depending on the whole machine's commitments).",
    "RLIMIT_MEMLOCK is at least 80 KiB (the default has been 8 MiB since 5.16) or the helper "
    "has CAP_IPC_LOCK: mlock and MAP_LOCKED of the whole 20-page window are never refused for "
    "the limit (the model has no RLIMIT_MEMLOCK).",
    "No uprobes on the helper, no ptrace of it: such outside interference is detected "
    "(the step raises Disturbance), not prevented.",
    "The reference is the running kernel, whatever its version: behaviour that changed "
    "between versions (e.g. mremap moving several VMAs at once since 6.17, mprotect dropping "
    "VM_ACCOUNT since 6.2, the order of mremap's argument checks) is compared as this "
    "kernel does it.",
)


class KernelUnavailable(Exception):
    """The kernel side cannot run on this machine; ``str()`` is the reason."""


class ExecutorError(Exception):
    """The helper process broke its protocol or died."""


class UnsafeOperation(Exception):
    """The helper refused a call that could reach outside its window."""


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class KernelInfo:
    """The kernel and configuration a run was made against.

    Attributes:
        system: ``platform.system()``.
        release: ``platform.release()``, e.g. ``6.18.44``.
        version: ``platform.version()`` (build string).
        machine: ``platform.machine()``.
        page_size: ``os.sysconf("SC_PAGE_SIZE")`` or None.
        overcommit_memory: ``/proc/sys/vm/overcommit_memory`` or None.
        max_map_count: ``/proc/sys/vm/max_map_count`` or None.
        compiler: path of the ``gcc`` used, or None.
    """

    system: str
    release: str
    version: str
    machine: str
    page_size: int | None
    overcommit_memory: int | None
    max_map_count: int | None
    compiler: str | None = None
    assumptions: tuple[str, ...] = field(default=ASSUMPTIONS)

    @classmethod
    def collect(cls) -> KernelInfo:
        """Read the running kernel's identity and the settings the suite depends on."""
        page_size: int | None = None
        if hasattr(os, "sysconf"):
            try:
                page_size = os.sysconf("SC_PAGE_SIZE")
            except (OSError, ValueError):
                page_size = None
        return cls(
            system=platform.system(),
            release=platform.release(),
            version=platform.version(),
            machine=platform.machine(),
            page_size=page_size,
            overcommit_memory=_read_int("/proc/sys/vm/overcommit_memory"),
            max_map_count=_read_int("/proc/sys/vm/max_map_count"),
            compiler=shutil.which("gcc"),
        )

    def warnings(self) -> list[str]:
        """Assumptions this machine does not meet but that do not stop a run."""
        out = []
        if self.overcommit_memory == 2:
            out.append(
                "vm.overcommit_memory is 2 (never overcommit): a mapping may fail with ENOMEM here"
            )
        if self.overcommit_memory is None:
            out.append("vm.overcommit_memory could not be read")
        return out

    def describe(self) -> str:
        """A few lines for reports: version, settings and assumptions."""
        lines = [
            f"kernel: {self.system} {self.release} ({self.machine}), {self.version}",
            f"settings: page size {self.page_size}, "
            f"vm.overcommit_memory={self.overcommit_memory}, "
            f"vm.max_map_count={self.max_map_count}",
            "assumes:",
            *(f"  - {text}" for text in self.assumptions),
        ]
        lines += [f"warning: {text}" for text in self.warnings()]
        return "\n".join(lines)


def _release_tuple(release: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in release.split("-")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def unavailable_reason(info: KernelInfo | None = None) -> str | None:
    """Why the kernel side cannot run here, or None if it can (before compiling).

    Args:
        info: the machine to judge; collected now if None.
    """
    info = KernelInfo.collect() if info is None else info
    if info.system != "Linux" or not sys.platform.startswith("linux"):
        this = info.system or sys.platform
        return f"the kernel side of the conformance suite needs Linux; this is {this}"
    if info.page_size != PAGE_SIZE:
        return (
            f"the suite is written for {PAGE_SIZE}-byte pages; this machine has {info.page_size}"
        )
    if sys.maxsize < 2**63 - 1:
        return "the suite needs a 64-bit machine"
    if (release := _release_tuple(info.release)) and release < (4, 17):
        return f"the suite needs Linux >= 4.17 (MAP_FIXED_NOREPLACE); this is {info.release}"
    if info.max_map_count is not None and info.max_map_count < MIN_MAX_MAP_COUNT:
        return (
            f"vm.max_map_count is {info.max_map_count}; the suite assumes >= {MIN_MAX_MAP_COUNT}"
        )
    if info.compiler is None:
        return "gcc not found: the kernel executor (executor.c) is compiled with gcc at run time"
    return None


def _cache_dir() -> Path:
    explicit = os.environ.get("SAFEMM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "safemm"


def _executor_source() -> bytes:
    return importlib.resources.files("safemm.conformance").joinpath("executor.c").read_bytes()


def build_executor(cache_dir: Path | None = None) -> Path:
    """Compile the helper (or find it already compiled) and return its path.

    Args:
        cache_dir: where to keep the binary; see the module docstring for the default.

    Raises:
        KernelUnavailable: not Linux, no gcc, or the source does not compile here.
    """
    reason = unavailable_reason()
    if reason is not None:
        raise KernelUnavailable(reason)
    gcc = shutil.which("gcc")
    if gcc is None:  # pragma: no cover - unavailable_reason checked it
        raise KernelUnavailable("gcc not found")
    source = _executor_source()
    try:
        version = subprocess.run(
            [gcc, "--version"], capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise KernelUnavailable(f"gcc does not run: {exc}") from exc
    key = hashlib.sha256(source + version.encode() + " ".join(CFLAGS).encode()).hexdigest()[:16]

    if cache_dir is not None:
        candidates = [cache_dir]
    else:
        candidates = [_cache_dir(), Path(tempfile.gettempdir()) / f"safemm-{os.getuid()}"]
    errors = []
    for directory in candidates:
        binary = directory / f"conformance-executor-{key}"
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if directory.stat().st_uid != os.getuid():
                raise PermissionError(f"{directory} belongs to another user")
            if binary.is_file() and os.access(binary, os.X_OK):
                return binary
            return _compile(gcc, source, directory, binary)
        except OSError as exc:
            errors.append(f"{directory}: {exc}")
    raise KernelUnavailable("cannot write the compiled executor: " + "; ".join(errors))


def _compile(gcc: str, source: bytes, directory: Path, binary: Path) -> Path:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        src = Path(tmp) / "executor.c"
        src.write_bytes(source)
        out = Path(tmp) / "executor"
        result = subprocess.run(
            [gcc, *CFLAGS, "-o", str(out), str(src)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise KernelUnavailable(
                f"executor.c does not compile here ({gcc}):\n{result.stderr.strip()}"
            )
        os.replace(out, binary)
    return binary


def _encode(call: Call) -> str:
    match call:
        case ForkCall():
            return "f"
        case MmapCall(addr, length, prot, flags, fd, offset):
            return f"m {addr} {length} {prot} {flags} {fd} {offset}"
        case MunmapCall(addr, length):
            return f"u {addr} {length}"
        case MprotectCall(addr, length, prot):
            return f"p {addr} {length} {prot}"
        case MremapCall(old, old_len, new_len, flags, new_addr):
            return f"r {old} {old_len} {new_len} {flags} {0 if new_addr is None else new_addr}"
        case ReadCall(addr):
            return f"l {addr}"
        case WriteCall(addr, byte):
            return f"s {addr} {byte}"
        case MadviseCall(addr, length, advice):
            return f"a {addr} {length} {advice & 0xFFFFFFFF}"
        case MlockCall(addr, length):
            return f"k {addr} {length}"
        case MunlockCall(addr, length):
            return f"K {addr} {length}"
        case FtruncateCall(length):
            return f"t {length % (1 << 64)}"
        case PreadCall(offset):
            return f"R {offset % (1 << 64)}"
        case PwriteCall(offset, byte):
            return f"W {offset % (1 << 64)} {byte}"


def _field_int(reply: dict[str, object], key: str) -> int:
    value = reply.get(key)
    if not isinstance(value, int):
        raise ExecutorError(f"executor reply lacks integer {key!r}: {reply}")
    return value


def _field_str(reply: dict[str, object], key: str) -> str:
    value = reply.get(key)
    if not isinstance(value, str):
        raise ExecutorError(f"executor reply lacks string {key!r}: {reply}")
    return value


def _maps(reply: dict[str, object], key: str = "maps") -> list[MapsLine]:
    lines = reply.get(key)
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise ExecutorError(f"executor reply lacks maps: {reply}")
    return [MapsLine.parse(str(line)) for line in lines]


class KernelExecutor:
    """One running helper process: the real kernel as a :class:`~steps.Machine`.

    Args:
        binary: the compiled helper; :func:`build_executor` if None.

    Raises:
        KernelUnavailable: see :func:`build_executor`.
        ExecutorError: the helper did not start properly.
    """

    def __init__(self, binary: Path | None = None) -> None:
        binary = build_executor() if binary is None else binary
        self._proc = subprocess.Popen(
            [str(binary), str(REGION_PAGES), str(GUARD_PAGES), str(MOAT_PAGES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        hello = self._receive()
        if hello.get("kind") != "hello" or _field_int(hello, "page_size") != PAGE_SIZE:
            self.close()
            raise ExecutorError(f"unexpected greeting from the executor: {hello}")
        self.pid = _field_int(hello, "pid")
        self.window_lo = _field_int(hello, "window")
        self.window_hi = _field_int(hello, "window_end")
        self.moat_lo = _field_int(hello, "moat_lo")
        self.moat_hi = _field_int(hello, "moat_hi")
        self._base = self.window_lo + GUARD_PAGES * PAGE_SIZE
        self.initial_maps = _maps(hello)
        self._child_maps: list[MapsLine] | None = None

    @property
    def region_base(self) -> int:
        """Absolute address of region page 0 in the helper."""
        return self._base

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None or stdin.closed:
            raise ExecutorError("the executor is closed")
        return stdin, stdout

    def _receive(self) -> dict[str, object]:
        _, stdout = self._pipes()
        raw = stdout.readline()
        if not raw:
            raise ExecutorError(f"the executor died: {self._stderr()}")
        parsed: object = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ExecutorError(f"unexpected executor reply: {raw!r}")
        reply = {str(key): value for key, value in parsed.items()}
        if reply.get("kind") == "fatal":
            raise ExecutorError(f"the executor gave up: {reply.get('reason')} {self._stderr()}")
        return reply

    def _stderr(self) -> str:
        """What the helper wrote to stderr; only once it has exited (or is made to)."""
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        stderr = self._proc.stderr
        if stderr is None or stderr.closed:
            return ""
        return stderr.read().decode(errors="replace").strip()

    def request(self, line: str) -> dict[str, object]:
        """Send one raw request line (see executor.c) and return the parsed reply."""
        stdin, _ = self._pipes()
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except BrokenPipeError as exc:
            raise ExecutorError(f"the executor died: {self._stderr()}") from exc
        return self._receive()

    def reset(self) -> list[MapsLine]:
        """Put the window back to one PROT_NONE private anonymous VMA (ending the child)."""
        self._child_maps = None
        return _maps(self.request("z"))

    def child_lines(self) -> list[MapsLine] | None:
        """The child's maps lines in the last reply, or None if there was no child."""
        return self._child_maps

    def perform(self, call: Call, *, in_child: bool = False) -> tuple[Outcome, list[MapsLine]]:
        """Run one absolute call in the helper, or in its child (``in_child``).

        Raises:
            UnsafeOperation: the call could reach outside the window; not run.
        """
        line = _encode(call)
        reply = self.request(f"c {line}" if in_child else line)
        kind = reply.get("kind")
        if kind == "unsafe":
            raise UnsafeOperation(f"{call}: {reply.get('reason')}")
        if kind == "ok":
            outcome = Outcome.ok(_field_int(reply, "value"))
        elif kind == "errno":
            outcome = Outcome.error(_field_int(reply, "value"))
        elif kind == "signal":
            outcome = Outcome.signal(_field_str(reply, "name"))
        else:
            raise ExecutorError(f"unexpected executor reply: {reply}")
        self._child_maps = _maps(reply, "child_maps") if "child_maps" in reply else None
        return outcome, _maps(reply)

    def close(self) -> None:
        """Stop the helper (it exits at end of input) and reap it. Idempotent."""
        stdin = self._proc.stdin
        if stdin is not None and not stdin.closed:
            try:
                stdin.write(b"q\n")
                stdin.flush()
            except OSError:
                pass
            try:
                stdin.close()
            except OSError:
                pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class KernelSide:
    """The real kernel as a :class:`~safemm.conformance.steps.Side`.

    Args:
        executor: a running helper; a new one is started if None.
    """

    def __init__(self, executor: KernelExecutor | None = None) -> None:
        self.info = KernelInfo.collect()
        self.executor = KernelExecutor() if executor is None else executor

    @property
    def name(self) -> str:
        """Always ``kernel``."""
        return "kernel"

    def run(self, ops: Sequence[Op]) -> SequenceResult:
        """Run ``ops`` from a reset window in the helper."""
        return run_sequence(self.executor, ops)

    def close(self) -> None:
        """Stop the helper."""
        self.executor.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

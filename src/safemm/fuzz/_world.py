"""One fuzzed machine: the kernel, the driver under test, the user space that drives it, and
the program it has run so far.

A :class:`World` executes *operations* (:class:`Op`: one syscall, or one kernel action such
as ``Kernel.shrink``) and classifies each outcome. A return, a refused call's
:class:`KernelError` and a signal (:class:`SegmentationFault`, :class:`BusError`) are
outcomes; anything else escaping the call, a new report in ``dmesg`` or a broken invariant is
a failure, raised as :class:`FailureFound`. Every operation is also recorded as the Python
line that repeats it through the public API, so the program so far can be rendered as a
pytest function (:mod:`safemm.fuzz._render`) at any moment — in particular at a failure,
after hypothesis has shrunk the program.
"""

from __future__ import annotations

import errno as _errno
import gc
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, NoReturn

from hypothesis import strategies as st
from typing_extensions import override

from safemm.explore._strategies import HypothesisChooser, Recorder
from safemm.fs import FileOperations
from safemm.model import exit_report
from safemm.model.errors import (
    BusError,
    InvariantError,
    KernelError,
    SegmentationFault,
)
from safemm.model.fs import File as _RawFile
from safemm.model.kernel import Kernel, _DriverHook
from safemm.model.printk import Splat
from safemm.model.process import Process

from ._render import Program, render

__all__ = [
    "DEVICE",
    "OTHER_DEVICE",
    "Coverage",
    "FailureFound",
    "FuzzFailure",
    "Op",
    "Proc",
    "Region",
    "ScheduleDraws",
    "UserMapping",
    "World",
]

_SAFEMM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

#: Where the driver under test is registered.
DEVICE = "/dev/fuzz"
#: Where the bystander driver is registered (see :mod:`safemm.fuzz._bystander`).
OTHER_DEVICE = "/dev/fuzz-other"


class UserMapping(NamedTuple):
    """One VMA of a process, as an ioctl argument strategy sees it (``/proc/PID/maps``).

    Attributes:
        start: first address.
        end: one past the last address.
        prot: ``PROT_*`` bits.
        device: the mapped device's path, or None for anonymous memory.
    """

    start: int
    end: int
    prot: int
    device: str | None


@dataclass(eq=False)
class Region:
    """An address range a call returned (mmap, mremap): later calls name addresses relative
    to it (``m3 + 0x1000``), whatever happened to the mapping since."""

    var: str
    addr: int
    pages: int


@dataclass(eq=False)
class Proc:
    """A user task of the program: ``var`` names it in the rendered program; ``fds`` maps
    each descriptor open in its table to the variable that holds it and the device path
    (threads share the dict, as they share the table)."""

    var: str
    process: Process
    fds: dict[int, tuple[str, str]]


@dataclass(eq=False)
class Op:
    """One operation: ``call`` runs it, ``text`` is the Python that repeats it, ``assign``
    the variable its result is bound to in the program (if any), ``after`` updates the
    world with its result."""

    call: Callable[[], object]
    text: str
    proc: Proc | None = None
    assign: str | None = None
    after: Callable[[object], None] | None = None
    kind: str = ""


@dataclass
class FuzzFailure:
    """One failure, with the smallest program that shows it.

    Attributes:
        kind: ``"report"`` (a splat: BUG, WARN, lockdep, strict, leak), ``"exception"`` (an
            exception other than a refused call or a user-space signal escaped a call),
            ``"invariant"`` (``Kernel.check_invariants`` failed) or ``"leak"`` (something
            outlived every process).
        error: the exception (a :class:`KernelWarning`, :class:`StaleReferenceError`,
            :class:`InvariantError`, ...), without its traceback.
        contract: the contract id the report names (``"foreign-vma"``), the invariant name
            for an invariant, or None.
        splat: the report as dmesg shows it, if there is one.
        step: the line of the program that failed.
        reproducer: a pytest function (with its imports) that rebuilds the failure through
            the public API only; it fails while the bug is there and passes once it is fixed.
        steps: operations in the (shrunk) program.
        program: the program the reproducer renders.
        verified: whether the reproducer was run and failed the same way (None: not run).
        origin: where an exception was raised: ``file:line`` of the innermost frame of the
            driver's code (outside safemm), else of the innermost frame.
    """

    kind: str
    error: BaseException
    contract: str | None
    splat: str | None
    step: str
    reproducer: str = ""
    steps: int = 0
    program: Program | None = None
    verified: bool | None = None
    origin: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What makes two failures the same: the exception type and the contract (or where
        it was raised, or the message with numbers blanked)."""
        if self.contract is not None:
            return type(self.error).__name__, self.contract
        if self.origin:
            return type(self.error).__name__, self.origin
        first = (str(self.error).strip().splitlines() or [""])[0]
        return type(self.error).__name__, re.sub(r"0x[0-9a-f]+|\d+", "N", first)

    @property
    def what(self) -> str:
        """One line: the exception, the contract, the first line of the message."""
        lines = [ln for ln in str(self.error).strip().splitlines() if ln]
        title = next((ln for ln in lines if not ln.startswith("---")), "")
        tag = f" [{self.contract}]" if self.contract else ""
        return f"{type(self.error).__name__}{tag}: {title}"


class FailureFound(AssertionError):
    """Raised inside the state machine when a step fails; carries the failure (the
    message has the report and the reproducer, as hypothesis shows it)."""

    def __init__(self, failure: FuzzFailure) -> None:
        parts = [failure.what, f"at: {failure.step}"]
        if failure.splat:
            parts.append(failure.splat)
        parts.append("reproducer:\n" + failure.reproducer)
        super().__init__("\n".join(parts))
        self.failure = failure


@dataclass
class Coverage:
    """What the fuzzer exercised, summed over every example.

    Attributes:
        hooks: driver hook name (``hello->mmap``, ``hello_vm_ops->close``) → calls.
        outcomes: ``"ok"``, errno names and signals → steps that ended so.
        operations: operation kind (``mmap``, ``fork``, ``race``, ...) → steps.
        counters: the kernel's event counters (``insert_page``, ``zap_calls``, ...), summed.
        injected: fault-injection site → failures injected.
        examples: programs run (including hypothesis's shrinking runs).
        steps: operations run.
        call_seconds: time spent in the calls themselves (the model and the driver).
        check_seconds: time spent checking after each step (dmesg, ``check_invariants``)
            and at each program's end (exits, collection, leaks).
    """

    hooks: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    examples: int = 0
    steps: int = 0
    call_seconds: float = 0.0
    check_seconds: float = 0.0


class _FuzzKernel(Kernel):
    """A :class:`Kernel` that counts the driver hooks it enters (for the coverage summary);
    otherwise the same machine the reproducer's ``Kernel`` is."""

    def __init__(self, hooks: Counter[str], nr_pages: int) -> None:
        super().__init__(nr_pages=nr_pages)
        self._hook_counts = hooks

    @override
    def driver_hook(self, owner: object, file: _RawFile | None, name: str) -> _DriverHook:
        if owner is not None:
            self._hook_counts[name] += 1
        return super().driver_hook(owner, file, name)


def _hex(n: int) -> str:
    return f"{n:#x}" if n >= 10 or n < 0 else str(n)


def _errname(err: int) -> str:
    return _errno.errorcode.get(err, str(err))


def _first_splat(splats: Sequence[Splat]) -> Splat | None:
    return splats[0] if splats else None


class World:
    """One machine under fuzzing, and the program run on it so far.

    Args:
        factory: makes the driver under test (called once, here).
        factory_expr: how the rendered program names ``factory`` (``HelloDriver``).
        factory_import: the import that brings it in (``from examples.tutorial import
            HelloDriver``), or "".
        coverage: where to add what this world exercises.
        nr_pages: RAM of the machine, in pages.
        concurrency: whether steps may run as :meth:`Kernel.concurrently` races.

    Invariant: ``lines`` holds the program so far, one statement per entry (a statement may
    span several lines); every ``Proc`` in ``procs`` is alive.
    """

    def __init__(
        self,
        factory: Callable[[], object],
        factory_expr: str,
        factory_import: str,
        coverage: Coverage,
        *,
        nr_pages: int = 256,
        concurrency: bool = False,
    ) -> None:
        self.coverage = coverage
        self.factory_expr = factory_expr
        self.factory_import = factory_import
        self.nr_pages = nr_pages
        self.concurrency = concurrency
        self.kernel = _FuzzKernel(coverage.hooks, nr_pages=nr_pages)
        # The fuzzer reports what this machine leaks itself; the interpreter's exit report
        # (leaks and locks of machines still alive) is not for it.
        exit_report.forget(self.kernel)
        self.lines: list[str] = []
        self.procs: list[Proc] = []
        self.regions: list[Region] = []
        self.other_registered = False
        self.failed: FuzzFailure | None = None
        self.uses_user_helper = False
        self._names: Counter[str] = Counter()
        self._dmesg_seen = 0
        self._counters0 = self.kernel.counters.snapshot()
        self._done = False
        self.schedule = ScheduleDraws()
        if concurrency:
            self.kernel.sched_policy = self.schedule.recorder
        coverage.examples += 1

        def register() -> None:
            driver = factory()
            if not isinstance(driver, FileOperations):
                raise TypeError(f"the factory returned {driver!r}, not a FileOperations")
            self.kernel.register_device(DEVICE, driver)

        self.op(
            Op(
                register,
                f'kernel.register_device("{DEVICE}", {factory_expr}())',
                kind="register",
            )
        )

    # ---------------------------------------------------------------- naming

    def name(self, prefix: str) -> str:
        """A fresh variable name: ``p1``, ``f2``, ``m3``, ``r4``."""
        self._names[prefix] += 1
        return f"{prefix}{self._names[prefix]}"

    def addr_text(self, region: Region | None, offset: int) -> tuple[int, str]:
        """An address ``offset`` bytes from ``region``'s start, and how the program says it."""
        if region is None:
            return offset, _hex(offset)
        if offset == 0:
            return region.addr + offset, region.var
        sign = "+" if offset > 0 else "-"
        return region.addr + offset, f"{region.var} {sign} {_hex(abs(offset))}"

    def addr_name(self, value: int) -> str | None:
        """How the program names address ``value``: relative to the latest region it lies in
        (or just past), or None."""
        if value < 4096:
            return None
        for r in reversed(self.regions):
            if r.addr <= value <= r.addr + r.pages * 4096:
                return self.addr_text(r, value - r.addr)[1]
        return None

    def new_region(self, addr: object, pages: int, var: str) -> None:
        """Record the address a call returned as a region named ``var``."""
        if isinstance(addr, int):
            self.regions.append(Region(var, addr, pages))

    def new_proc(self, process: object, var: str, fds: dict[int, tuple[str, str]]) -> None:
        """Record a task the program created."""
        if isinstance(process, Process):
            self.procs.append(Proc(var, process, fds))

    def user_mappings(self, proc: Proc) -> tuple[UserMapping, ...]:
        """``proc``'s VMAs, for ioctl argument strategies."""
        out: list[UserMapping] = []
        p = proc.process
        if not p.alive:
            return ()
        for v in p.mm.vmas():
            f = v.vm_file
            out.append(UserMapping(v.vm_start, v.vm_end, v.vm_flags & 7, f.path if f else None))
        return tuple(out)

    # ---------------------------------------------------------------- running

    def op(self, op: Op) -> object:
        """Run one operation, record it, classify its outcome, check the machine."""
        cov = self.coverage
        cov.steps += 1
        cov.operations[op.kind or "other"] += 1
        t0 = time.perf_counter()
        try:
            result = op.call()
        except KernelError as e:
            cov.call_seconds += time.perf_counter() - t0
            name = _errname(e.errno or 0)
            self.coverage.outcomes[name] += 1
            self.lines.append(f'with pytest.raises(KernelError, match="{name}:"):\n    {op.text}')
        except (SegmentationFault, BusError) as e:
            cov.call_seconds += time.perf_counter() - t0
            name = type(e).__name__
            self.coverage.outcomes["SIGSEGV" if name == "SegmentationFault" else "SIGBUS"] += 1
            self.lines.append(f"with pytest.raises({name}):\n    {op.text}")
        except Exception as e:
            cov.call_seconds += time.perf_counter() - t0
            self.lines.append(op.text)
            self.fail_with(e, op.text)
        else:
            cov.call_seconds += time.perf_counter() - t0
            self.coverage.outcomes["ok"] += 1
            self.lines.append(f"{op.assign} = {op.text}" if op.assign else op.text)
            if op.after is not None:
                op.after(result)
            self.check(op.text)
            return result
        self.check(op.text)
        return None

    def race(self, ops: Sequence[Op], shrink: bool) -> None:
        """Run ``ops`` (each on its own task) and, with ``shrink``, kswapd, concurrently."""
        self.coverage.steps += 1
        self.coverage.operations["race"] += 1
        self.uses_user_helper = True
        bodies: list[Callable[[], object]] = [_user(o.call) for o in ops]
        texts = [f"user(lambda: {o.text})" for o in ops]
        if shrink:
            bodies.append(self.kernel.shrink)
            texts.append("kernel.shrink")
        var = self.name("r")
        stmt = f"{var} = kernel.concurrently(\n" + "".join(f"    {t},\n" for t in texts) + ")"
        self.lines.append(stmt)
        t0 = time.perf_counter()
        try:
            results = self.kernel.concurrently(*bodies)
        except Exception as e:
            self.coverage.call_seconds += time.perf_counter() - t0
            self.fail_with(e, stmt)
        self.coverage.call_seconds += time.perf_counter() - t0
        for i, (o, res) in enumerate(zip(ops, results, strict=False)):
            if isinstance(res, KernelError):
                self.coverage.outcomes[_errname(res.errno or 0)] += 1
            elif isinstance(res, SegmentationFault | BusError):
                self.coverage.outcomes[
                    "SIGSEGV" if isinstance(res, SegmentationFault) else "SIGBUS"
                ] += 1
            else:
                self.coverage.outcomes["ok"] += 1
                if o.assign:
                    self.lines.append(f"{o.assign} = {var}[{i}]")
                if o.after is not None:
                    o.after(res)
        del results
        self.check(stmt)

    def check(self, where: str) -> None:
        """After a step: no new report in dmesg, every invariant holds."""
        t1 = time.perf_counter()
        try:
            self._check(where)
        finally:
            self.coverage.check_seconds += time.perf_counter() - t1

    def _check(self, where: str) -> None:
        k = self.kernel
        if len(k.dmesg) > self._dmesg_seen:
            new = k.splats[self._dmesg_seen :]
            self._dmesg_seen = len(k.dmesg)
            s = new[0]
            err = InvariantError(s.render())
            self.failure("report", err, s.contract, "\n".join(k.dmesg), where)
        try:
            k.check_invariants()
        except InvariantError as e:
            m = re.match(r"invariant '([^']+)'", str(e))
            self.failure("invariant", e, m.group(1) if m else None, None, where)

    def fail_with(self, e: Exception, where: str) -> NoReturn:
        """A failure by exception: a splat raised (BUG, WARN under panic_on_warn, lockdep,
        deadlock) or anything else escaping the call."""
        contract = getattr(e, "contract", None)
        splat = None
        k = self.kernel
        if isinstance(contract, str):
            splat = "\n".join(k.dmesg[self._dmesg_seen :]) or None
            kind = "report"
        else:
            contract = None
            kind = "invariant" if isinstance(e, InvariantError) else "exception"
        self.failure(kind, e, contract, splat, where)

    def failure(
        self, kind: str, e: BaseException, contract: str | None, splat: str | None, where: str
    ) -> NoReturn:
        """Record the failure and stop this program (raises :class:`FailureFound`)."""
        # Where: the innermost frame of the driver's own code (outside safemm), else the
        # innermost frame.
        origin = ""
        tb = e.__traceback__
        while tb is not None:
            loc = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
            if not tb.tb_frame.f_code.co_filename.startswith(_SAFEMM_DIR) or not origin:
                origin = loc
            tb = tb.tb_next
        e = e.with_traceback(None)
        e.__context__ = None
        # The fuzzer reports the leaks itself (not again at interpreter exit).
        self.kernel.leaks_reported = len(self.kernel.leaks)
        prog = Program(
            tuple(self.lines),
            self.nr_pages,
            self.factory_import,
            self.schedule.recorder.token("hypothesis", 0) if self.uses_user_helper else None,
        )
        f = FuzzFailure(
            kind,
            e,
            contract,
            splat,
            where.splitlines()[0],
            steps=len(self.lines),
            program=prog,
            origin=origin,
        )
        f.reproducer = render(prog, f)
        self.failed = f
        self._done = True
        raise FailureFound(f)

    # ---------------------------------------------------------------- the end

    def finish(self) -> None:
        """Every process exits; then nothing may be left: no report, no leak, no mm, no
        open file."""
        if self._done:
            return
        self._done = True
        for proc in list(self.procs):
            self.exit(proc)
        t0 = time.perf_counter()
        # gc is off while a program runs, so all of its cyclic garbage is in generation 0.
        gc.collect(0)
        self.coverage.check_seconds += time.perf_counter() - t0
        self.check("gc.collect()")
        k = self.kernel
        if k.mms or k.open_files:
            left = [
                f"mm {mm.id} (mm_users {mm.mm_users}, mm_count {mm.mm_count})"
                for mm in k.mms.values()
            ]
            left += [f"open file {f.path} #{f.id}" for f in k.open_files.values()]
            err = InvariantError(
                "leak: after every process exited, still alive: "
                + ", ".join(left)
                + " (a reference taken by the driver was never dropped)"
            )
            self.lines.append("# every process has exited")
            self.failure("leak", err, "leak", None, "every process exited")
        self.account()

    def exit(self, proc: Proc) -> None:
        """``proc`` exits (its mappings and descriptors still open)."""

        def after(_: object) -> None:
            if proc in self.procs:
                self.procs.remove(proc)

        self.op(Op(proc.process.exit, f"{proc.var}.exit()", proc, after=after, kind="exit"))

    def account(self) -> None:
        """Add this world's kernel counters to the coverage (once, at its end)."""
        self.kernel.leaks_reported = len(self.kernel.leaks)
        now = self.kernel.counters.snapshot()
        for name, v in now.items():
            d = v - self._counters0.get(name, 0)
            if d:
                self.coverage.counters[name] += d
        self._counters0 = now
        for site, n in self.kernel.fault_inject.injected.items():
            if n:
                self.coverage.injected[site] += n


class ScheduleDraws:
    """The scheduling policy of a fuzzed world: every decision of every race is drawn from
    the hypothesis data of the rule that runs the race (so the schedule is searched and
    shrunk with the program), and recorded (for the reproducer's schedule token)."""

    def __init__(self) -> None:
        self.data: st.DataObject | None = None
        self.recorder = Recorder(HypothesisChooser(self._bool, self._index))

    def _bool(self) -> bool:
        assert self.data is not None, "a switch point outside a race"
        return self.data.draw(st.booleans(), label="preempt")

    def _index(self, n: int) -> int:
        assert self.data is not None, "a switch point outside a race"
        return self.data.draw(st.integers(0, n - 1), label="task")


def _user(call: Callable[[], object]) -> Callable[[], object]:
    """A race body: a refused call or a signal is the body's result, not the run's end."""

    def body() -> object:
        try:
            return call()
        except (KernelError, SegmentationFault, BusError) as e:
            return e

    return body

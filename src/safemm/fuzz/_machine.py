"""``driver_machine``: the fuzzer as a hypothesis state machine.

One rule per operation (``mmap``, ``fork``, ``ioctl``, ``shrink``, ..., and ``race`` with
concurrency), each drawing its task and arguments from hypothesis's ``data``; hypothesis
chooses the rules (with swarm testing: each example turns some of them off), shrinks a
failing example, and replays it from its database. A failing step raises
:class:`~safemm.fuzz._world.FailureFound`, whose message has the report and the
reproducer; at the end of each example every process exits and nothing may be left.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule
from typing_extensions import override

from ._rules import MAX_TASKS, OPERATIONS, Ioctls, draw_operation, draw_race, start
from ._world import Coverage, FailureFound, FuzzFailure, World

__all__ = [
    "DriverMachine",
    "Session",
    "ShrinkBudgetSpent",
    "configured",
    "driver_machine",
    "factory_reference",
]


@dataclass
class Session:
    """What the machines of one fuzzing run share: the configuration, the coverage, and
    the failures already known (a known failure ends its example quietly, so that the
    search goes on for others)."""

    factory: Callable[[], object]
    factory_expr: str
    factory_import: str
    ioctls: Ioctls | None = None
    concurrency: bool = False
    nr_pages: int = 256
    coverage: Coverage = field(default_factory=Coverage)
    ignore: AbstractSet[tuple[str, str]] = frozenset()
    #: Examples started before the first failure of this search (hypothesis's budget).
    generated: int = 0
    found: bool = False
    #: The failure this search is shrinking (the first it found).
    target: tuple[str, str] | None = None
    last: FuzzFailure | None = None
    progress: Callable[[], None] | None = None
    #: Seconds hypothesis may spend shrinking a failure (None: as long as it likes).
    shrink_time: float | None = None
    #: When the first failure of this search was found.
    found_at: float = 0.0
    _last_progress: float = 0.0

    def tick(self) -> None:
        """Call ``progress`` about once a second."""
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress >= 1.0:
            self._last_progress = now
            self.progress()


def factory_reference(factory: object) -> tuple[str, str]:
    """How a reproducer names ``factory``: ``(expression, import line)``. A lambda or a
    local function cannot be imported: the expression is then ``make_driver`` and the
    import a comment asking for it."""
    module = getattr(factory, "__module__", None)
    qual = getattr(factory, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qual, str) or "<" in qual:
        return "make_driver", "# make_driver: the driver factory you fuzzed (not importable)"
    top = qual.split(".")[0]
    if module == "__main__":
        return qual, f"# {top}: from the script you fuzzed (it ran as __main__)"
    return qual, f"from {module} import {top}"


class ShrinkBudgetSpent(BaseException):
    """Ends hypothesis's shrinking when the session's ``shrink_time`` is spent (a
    ``BaseException``, so that hypothesis lets it through); the best failure so far is the
    session's ``last``: every failing run of a shrink is an improvement on the one before."""


class DriverMachine(RuleBasedStateMachine):
    """The fuzzer's state machine; :func:`driver_machine` makes a configured subclass.

    Invariant: ``world`` is the machine of this example; ``gc`` is off while it runs (so
    finalizers that report leaks run at the same point on every replay) and back on after
    ``teardown``.
    """

    session: Session

    def __init__(self) -> None:
        super().__init__()
        s = self.session
        if not s.found:
            s.generated += 1
        elif s.shrink_time is not None and time.monotonic() - s.found_at > s.shrink_time:
            raise ShrinkBudgetSpent
        s.tick()
        self._gc = gc.isenabled()
        gc.disable()
        self.world = World(
            s.factory,
            s.factory_expr,
            s.factory_import,
            s.coverage,
            nr_pages=s.nr_pages,
            concurrency=s.concurrency,
        )
        self.quiet = False
        try:
            self._guard(self._start)
        except BaseException:
            self._restore_gc()
            raise

    def _start(self) -> None:
        start(self.world)

    def _restore_gc(self) -> None:
        if self._gc:
            gc.enable()

    def _guard(self, fn: Callable[[], None]) -> None:
        """Run ``fn``; a failure already known to the session ends this example quietly."""
        if self.quiet:
            return
        try:
            fn()
        except FailureFound as e:
            s = self.session
            key = e.failure.key
            # A known failure, or (while hypothesis shrinks one failure) a different one,
            # ends the example quietly: the shrinker must not slip from one bug to another.
            if key in s.ignore or (s.target is not None and key != s.target):
                self.quiet = True
                return
            if not s.found:
                s.found_at = time.monotonic()
            s.found = True
            s.target = key
            s.last = e.failure
            raise
        except Exception:
            raise
        except BaseException:
            # Hypothesis stopped this example (out of choices while shrinking, say) — perhaps
            # in the middle of a race, whose unwound tasks leave locks and pages behind. That
            # is no verdict on the driver: the teardown must not report it.
            self.quiet = True
            raise

    def step(self, kind: str, data: st.DataObject) -> None:
        """Run one operation of ``kind``."""
        w = self.world
        ioctls = self.session.ioctls

        def run() -> None:
            if kind == "race":
                draw_race(w, data, ioctls)
            else:
                w.op(draw_operation(w, data, kind, ioctls))

        self._guard(run)

    @override
    def teardown(self) -> None:
        """Every process exits; nothing may be left (no report, leak, mm or open file)."""
        try:
            if not self.quiet and self.world.failed is None:
                self._guard(self.world.finish)
            else:
                self.world.account()
        finally:
            self._restore_gc()


def _always(m: DriverMachine) -> bool:
    return True


def _has_procs(m: DriverMachine) -> bool:
    return bool(m.world.procs)


def _can_spawn(m: DriverMachine) -> bool:
    return len(m.world.procs) < MAX_TASKS


def _can_race(m: DriverMachine) -> bool:
    return m.session.concurrency and len(m.world.procs) >= 1


def _make_rule(kind: str) -> Callable[[DriverMachine, st.DataObject], None]:
    def step(self: DriverMachine, data: st.DataObject) -> None:
        self.step(kind, data)

    step.__name__ = kind
    step.__qualname__ = f"DriverMachine.{kind}"
    step.__doc__ = (
        f"The ``{kind}`` rule: draw one ``{kind}`` operation from ``data`` and run it "
        "(:meth:`DriverMachine.step`)."
    )
    return step


for _kind in [*OPERATIONS, "race"]:
    _pre: Callable[[DriverMachine], bool] = _has_procs
    if _kind == "task":
        _pre = _can_spawn
    elif _kind == "kernel":
        _pre = _always
    elif _kind == "race":
        _pre = _can_race
    setattr(
        DriverMachine,
        _kind,
        precondition(_pre)(rule(data=st.data())(_make_rule(_kind))),
    )


def driver_machine(
    factory: Callable[[], object],
    *,
    ioctls: Ioctls | None = None,
    concurrency: bool = False,
) -> type[DriverMachine]:
    """A hypothesis state machine that fuzzes the driver ``factory()`` makes::

        TestMyDriver = driver_machine(MyDriver, ioctls={MY_IOCTL: st.integers()}).TestCase

    It runs under the usual hypothesis settings (profile, database, ``max_examples``,
    ``stateful_step_count``; set ``TestMyDriver.settings = settings(...)`` to change them;
    hypothesis's state-machine default has no deadline and no health checks). A failure
    shrinks and replays as any hypothesis failure does; its message has the report and a
    reproducer to paste as a regression test.

    Args:
        factory: returns a fresh driver (a ``FileOperations``); called once per example.
        ioctls: ioctl number → a strategy for its argument, or a function of the calling
            process's mappings (a tuple of :class:`UserMapping`) returning one. None: small
            and random command numbers with hostile arguments.
        concurrency: also run races (several tasks' calls and kswapd at once, the schedule
            drawn by hypothesis).
    """
    expr, imp = factory_reference(factory)
    return configured(Session(factory, expr, imp, ioctls, concurrency))


def configured(session: Session) -> type[DriverMachine]:
    """A :class:`DriverMachine` subclass bound to ``session``."""

    class Configured(DriverMachine):
        pass

    Configured.session = session
    if session.ioctls:
        # A driver with an ioctl ABI does most of its work there: call it twice as often.
        again = "ioctl_again"
        more = _make_rule("ioctl")
        more.__name__ = again
        setattr(Configured, again, precondition(_has_procs)(rule(data=st.data())(more)))
    name = f"Fuzz{getattr(session.factory, '__name__', 'Driver')}"
    Configured.__name__ = name
    Configured.__qualname__ = name
    return Configured

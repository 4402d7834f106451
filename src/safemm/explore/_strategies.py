"""How the explorer chooses at each decision: random, PCT, bounded DFS, hypothesis, replay.

Each chooser sees one *decision* at a time — a switch point where more than one task could run
— and picks a context. :class:`Recorder` is the :class:`~safemm.model.runqueue.SchedPolicy`
the kernel calls; it asks its chooser, and records every decision (for the schedule token,
the trace and the preemption count).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ._token import Deviation, Token, fingerprint

if TYPE_CHECKING:
    from safemm.model.runqueue import Context, Scheduler, SwitchKind

__all__ = [
    "DfsChooser",
    "HypothesisChooser",
    "NondeterministicScenario",
    "PctChooser",
    "RandomChooser",
    "Recorder",
    "ReplayChooser",
    "ScheduleDiverged",
]


class ScheduleDiverged(AssertionError):
    """Replay found the program making different choices than the recorded schedule (the
    code changed): the message says where, and no different schedule was run."""


class NondeterministicScenario(RuntimeError):
    """The scenario made different decisions on the same choices: it depends on something
    outside the schedule (an unseeded random, time, a global), so it cannot be explored."""


def default_choice(current: Context | None, candidates: Sequence[Context]) -> Context:
    """The choice that is no deviation: the running task goes on if it can, else the first
    runnable task in order."""
    if current is not None and current in candidates:
        return current
    return candidates[0]


@dataclass
class Decision:
    """One recorded decision."""

    step: int
    kind: SwitchKind
    label: str
    current: int
    candidates: tuple[int, ...]
    chosen: int

    @property
    def preemption(self) -> bool:
        """Whether the choice switched away from a task that could have gone on."""
        return self.current >= 0 and self.chosen != self.current


class Chooser(Protocol):
    """A strategy's choice at one decision."""

    def pick(
        self, kind: SwitchKind, label: str, current: Context | None, candidates: Sequence[Context]
    ) -> Context:
        """One of ``candidates``."""
        ...


@dataclass
class Recorder:
    """The scheduling policy of one explored schedule: asks ``chooser``, records decisions.

    Invariant: ``decisions`` holds every decision of the schedule so far, in order;
    ``schedulers`` every :meth:`Kernel.concurrently` run of it (their traces).
    """

    chooser: Chooser
    decisions: list[Decision] = field(default_factory=list)
    schedulers: list[Scheduler] = field(default_factory=list)

    def begin(self, sched: Scheduler) -> None:
        """A ``concurrently`` run starts."""
        self.schedulers.append(sched)

    def choose(
        self,
        sched: Scheduler,
        kind: SwitchKind,
        label: str,
        current: Context | None,
        candidates: Sequence[Context],
    ) -> Context:
        """Ask the chooser and record the decision."""
        chosen = self.chooser.pick(kind, label, current, candidates)
        self.decisions.append(
            Decision(
                sched.steps,
                kind,
                label,
                -1 if current is None else current.index,
                tuple(c.index for c in candidates),
                chosen.index,
            )
        )
        return chosen

    @property
    def preemptions(self) -> int:
        """Switches away from a task that could have gone on."""
        return sum(1 for d in self.decisions if d.preemption)

    def token(self, strategy: str, seed: int) -> str:
        """The schedule token of what was recorded."""
        devs = []
        check = 0
        gap = 0
        for d in self.decisions:
            check = fingerprint(check, d.kind.value, d.label, d.current, d.candidates)
            default = d.current if d.current in d.candidates else d.candidates[0]
            if d.chosen != default:
                devs.append(Deviation(gap, d.chosen, check))
                check = 0
                gap = 0
            else:
                gap += 1
        return Token(strategy, seed, len(self.decisions), check, tuple(devs)).encode()


class RandomChooser:
    """A uniformly random runnable task at every decision (shuttle's ``check_random``)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(
        self, kind: SwitchKind, label: str, current: Context | None, candidates: Sequence[Context]
    ) -> Context:
        """Uniform."""
        return candidates[self.rng.randrange(len(candidates))]


class PctChooser:
    """Probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
    ASPLOS 2010), with priority-change depth ``d = preemptions + 1``.

    Every task gets a random initial priority above ``d``; ``d - 1`` change points are drawn
    uniformly among the first ``k`` decisions (``k`` is the most decisions a schedule of this
    scenario has made so far); at the i-th change point the running task's priority drops to
    ``d - i``, below every initial one. At each decision the runnable task with the highest
    priority runs. Guarantee: for a program with ``n`` tasks and ``k`` decisions, a bug of
    depth ``d`` (one that needs ``d`` ordering constraints between tasks) is found by one
    schedule with probability at least ``1 / (n * k**(d-1))``; N schedules find it with
    probability at least ``1 - (1 - p)**N``.
    """

    def __init__(self, rng: random.Random, depth: int, k: int) -> None:
        self.rng = rng
        self.depth = depth
        self.priorities: dict[int, float] = {}
        n = max(1, k)
        points = rng.sample(range(1, n + 1), min(depth - 1, n)) if depth > 1 else []
        self.change_points = {p: depth - 1 - i for i, p in enumerate(sorted(points))}
        self.count = 0

    def _prio(self, ctx: Context) -> float:
        p = self.priorities.get(ctx.index)
        if p is None:
            p = self.depth + self.rng.random()
            self.priorities[ctx.index] = p
        return p

    def pick(
        self, kind: SwitchKind, label: str, current: Context | None, candidates: Sequence[Context]
    ) -> Context:
        """The highest-priority candidate, after this decision's priority change if any."""
        self.count += 1
        change = self.change_points.get(self.count)
        if change is not None and current is not None:
            self.priorities[current.index] = float(change)
        return max(candidates, key=self._prio)


@dataclass
class _Node:
    where: str
    candidates: tuple[int, ...]
    current: int
    chosen: int
    tried: set[int]
    pre: int


class DfsChooser:
    """Systematic search: every schedule with at most ``bound`` preemptions, depth first
    (iterative context bounding after CHESS, Musuvathi and Qadeer, PLDI 2007).

    A switch because the running task blocked, finished or yields is free; choosing another
    task where the running one could go on costs one preemption. Stateless: each schedule
    re-runs the scenario from a fresh kernel, following the path of choices to the deepest
    decision with an untried alternative within the bound.
    """

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.stack: list[_Node] = []
        self.pos = 0
        self.pre = 0

    def start(self) -> None:
        """A new schedule begins."""
        self.pos = 0
        self.pre = 0

    def pick(
        self, kind: SwitchKind, label: str, current: Context | None, candidates: Sequence[Context]
    ) -> Context:
        """Follow the current path; past its end, the default choice."""
        cands = tuple(c.index for c in candidates)
        cur = -1 if current is None else current.index
        where = f"{kind.value} {label}"
        if self.pos < len(self.stack):
            node = self.stack[self.pos]
            if node.candidates != cands or node.current != cur or node.where != where:
                raise NondeterministicScenario(
                    f"decision {self.pos + 1} ({where}) offered tasks {cands} with task "
                    f"{cur} running; an earlier run of the same choices was at "
                    f"{node.where} with tasks {node.candidates} and task {node.current}: the "
                    "scenario depends on something outside the schedule (seed every random "
                    "source)"
                )
        else:
            chosen = default_choice(current, candidates).index
            node = _Node(where, cands, cur, chosen, {chosen}, self.pre)
            self.stack.append(node)
        self.pos += 1
        if cur >= 0 and node.chosen != cur:
            self.pre += 1
        return next(c for c in candidates if c.index == node.chosen)

    def advance(self) -> bool:
        """Move to the next schedule; False when every one within the bound was run."""
        del self.stack[self.pos :]
        while self.stack:
            node = self.stack[-1]
            for c in node.candidates:
                if c in node.tried:
                    continue
                node.tried.add(c)
                cost = 1 if node.current >= 0 and c != node.current else 0
                if node.pre + cost <= self.bound:
                    node.chosen = c
                    return True
            self.stack.pop()
        return False


class HypothesisChooser:
    """Choices drawn from hypothesis: at each decision a boolean "preempt?" (shrinks to no)
    and an index among the others (shrinks to the first), so a failing schedule shrinks to
    the fewest preemptions and the earliest tasks."""

    def __init__(self, draw_bool: Callable[[], bool], draw_index: Callable[[int], int]) -> None:
        self.draw_bool = draw_bool
        self.draw_index = draw_index

    def pick(
        self, kind: SwitchKind, label: str, current: Context | None, candidates: Sequence[Context]
    ) -> Context:
        """Drawn."""
        if current is not None and current in candidates:
            if not self.draw_bool():
                return current
            others = [c for c in candidates if c is not current]
            return others[self.draw_index(len(others)) if len(others) > 1 else 0]
        return candidates[self.draw_index(len(candidates))]


class ReplayChooser:
    """Follows a schedule token, checking at each deviation that the program still reaches
    the same switch points (:class:`ScheduleDiverged` otherwise)."""

    def __init__(self, token: Token) -> None:
        self.token = token
        self.devs = list(token.deviations)
        self.next = 0
        self.gap = 0
        self.check = 0
        self.count = 0

    def pick(
        self, kind: SwitchKind, label: str, current: Context | None, candidates: Sequence[Context]
    ) -> Context:
        """The recorded choice."""
        cands = tuple(c.index for c in candidates)
        cur = -1 if current is None else current.index
        self.check = fingerprint(self.check, kind.value, label, cur, cands)
        self.count += 1
        if self.next < len(self.devs) and self.gap == self.devs[self.next].gap:
            dev = self.devs[self.next]
            chosen = next((c for c in candidates if c.index == dev.context), None)
            if self.check != dev.check or chosen is None:
                start = self.count - self.gap
                raise ScheduleDiverged(
                    f"the program no longer makes the same choices: between decision {start} "
                    f"and decision {self.count} (now at {kind.value} {label}, runnable tasks "
                    f"{cands}) it reached different switch points than the recorded schedule, "
                    "so the token cannot be replayed (the code changed); explore again"
                )
            self.next += 1
            self.gap = 0
            self.check = 0
            return chosen
        self.gap += 1
        return default_choice(current, candidates)

    def verify_end(self) -> None:
        """After the run: the rest of the schedule matched too."""
        tok = self.token
        if (
            self.next < len(self.devs)
            or self.count != tok.decisions
            or self.check != tok.end_check
        ):
            raise ScheduleDiverged(
                f"the program no longer makes the same choices: the recorded schedule made "
                f"{tok.decisions} decisions, this run {self.count}"
                + (
                    f", and {len(self.devs) - self.next} recorded switches were never reached"
                    if self.next < len(self.devs)
                    else f"; the stretch after decision {self.count - self.gap} differs"
                )
                + " (the code changed); explore again"
            )

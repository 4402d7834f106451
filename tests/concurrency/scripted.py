"""A scripted scheduler for the concurrency tests: the test decides who runs.

:class:`Priority` is a :class:`~safemm.model.runqueue.SchedPolicy` that, at every decision,
runs the candidate whose context index comes first in ``order``. A body changes ``order``
(:meth:`Priority.prefer`) and then reaches a switch point — :func:`yield_to` does both with a
real ``schedule()`` — so an interleaving is written down in the bodies, in program order, and
every run of the test takes exactly that schedule.
"""

from __future__ import annotations

from collections.abc import Sequence

from safemm.model.kernel import Kernel
from safemm.model.runqueue import Context, RandomPolicy, Scheduler, SwitchKind
from safemm.model.sched import schedule

__all__ = ["Priority", "Recording", "yield_to"]


class Priority:
    """Run the runnable context that comes first in ``order`` (context indices: the bodies
    in order, then the kworker); contexts not named come after, in index order. Remembers
    the scheduler of the last run (``sched``) for its trace."""

    def __init__(self, *order: int) -> None:
        self.order = list(order)
        self.sched: Scheduler | None = None
        self._triggers: list[tuple[str, list[int]]] = []

    def prefer(self, *order: int) -> None:
        """From the next decision on, prefer the contexts in this order."""
        self.order = list(order)

    def at(self, label: str, *order: int) -> None:
        """At the first decision whose switch point's label contains ``label`` (after the
        triggers queued before this one), switch to preferring ``order``."""
        self._triggers.append((label, list(order)))

    def begin(self, sched: Scheduler) -> None:
        """Remember the run's scheduler (also remembered at every decision)."""
        self.sched = sched

    def choose(
        self,
        sched: Scheduler,
        kind: SwitchKind,
        label: str,
        current: Context | None,
        candidates: Sequence[Context],
    ) -> Context:
        """The candidate earliest in ``order``."""
        self.sched = sched
        if self._triggers and self._triggers[0][0] in label:
            self.order = self._triggers.pop(0)[1]
        n = len(self.order)

        def rank(c: Context) -> int:
            return self.order.index(c.index) if c.index in self.order else n + c.index

        return min(candidates, key=rank)


class Recording:
    """The default seeded policy, also keeping the scheduler of the last run."""

    def __init__(self, seed: int) -> None:
        self.inner = RandomPolicy(seed)
        self.sched: Scheduler | None = None

    def begin(self, sched: Scheduler) -> None:
        """Remember the run's scheduler."""
        self.sched = sched

    def choose(
        self,
        sched: Scheduler,
        kind: SwitchKind,
        label: str,
        current: Context | None,
        candidates: Sequence[Context],
    ) -> Context:
        """What the default policy chooses."""
        self.sched = sched
        return self.inner.choose(sched, kind, label, current, candidates)


def yield_to(k: Kernel, policy: Priority, *order: int) -> None:
    """Prefer ``order`` and sleep (``schedule()``): the first runnable context of ``order``
    other than the caller runs now."""
    policy.prefer(*order)
    schedule(k, "tests/concurrency:yield_to")

"""The explorer: search the interleavings of a concurrent scenario for failures.

``explore(scenario, strategy=..., schedules=..., preemptions=..., seed=...)`` runs
``scenario(kernel)`` on a fresh kernel once per schedule, choosing at every switch point of
``kernel.concurrently`` which task runs; it reports each distinct failure once, with a short
token that :func:`replay` re-runs exactly and the interleaving that led to it. Strategies:
random, PCT (probabilistic, with a guarantee per schedule), bounded DFS (systematic, every
schedule up to a preemption bound) and hypothesis (shrinks a failing schedule). See
docs/concurrency.md.
"""

from ._explorer import STRATEGIES as STRATEGIES
from ._explorer import Exploration as Exploration
from ._explorer import Failure as Failure
from ._explorer import explore as explore
from ._explorer import race_test as race_test
from ._explorer import replay as replay
from ._strategies import NondeterministicScenario as NondeterministicScenario
from ._strategies import ScheduleDiverged as ScheduleDiverged
from ._token import TokenError as TokenError

__all__ = [
    "STRATEGIES",
    "Exploration",
    "Failure",
    "NondeterministicScenario",
    "ScheduleDiverged",
    "TokenError",
    "explore",
    "race_test",
    "replay",
]

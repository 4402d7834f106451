"""The fuzzer: find the bugs in a driver without writing a scenario.

``fuzz_driver(factory)`` registers ``factory()`` as ``/dev/fuzz`` on a fresh machine per
program and drives it the way hostile and careless user space would — several opens per
process, mmap with every protection and offset, ``MAP_FIXED`` over its mappings, partial
munmap, mprotect upgrades, mremap, fork, threads, exit with everything still open, reads and
writes of every page, userfaultfd, the driver's ioctls, memory pressure, failing allocations
and trylocks, and (``concurrency=True``) races with kswapd — checking after every step that
dmesg is clean and every invariant holds, and at the end that nothing leaked. Hypothesis
searches and shrinks; each distinct failure comes back with a pytest function that
reproduces it. :func:`driver_machine` is the same search as a hypothesis state machine for a
pytest suite; ``safemm fuzz MODULE:FACTORY`` runs it from the command line. See
docs/fuzzing.md.

Needs hypothesis (``pip install safemm[fuzz]``).
"""

from . import _requires  # noqa: F401  (first: a clear message when hypothesis is missing)
from ._bystander import BystanderDriver as BystanderDriver
from ._fuzz import FuzzReport as FuzzReport
from ._fuzz import fuzz_driver as fuzz_driver
from ._machine import DriverMachine as DriverMachine
from ._machine import driver_machine as driver_machine
from ._rules import IoctlArg as IoctlArg
from ._rules import Ioctls as Ioctls
from ._world import Coverage as Coverage
from ._world import FailureFound as FailureFound
from ._world import FuzzFailure as FuzzFailure
from ._world import UserMapping as UserMapping

__all__ = [
    "BystanderDriver",
    "Coverage",
    "DriverMachine",
    "FailureFound",
    "FuzzFailure",
    "FuzzReport",
    "IoctlArg",
    "Ioctls",
    "UserMapping",
    "driver_machine",
    "fuzz_driver",
]

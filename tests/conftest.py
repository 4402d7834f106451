"""The ``sweep`` marker: the long searches of the suite.

A sweep runs the same code paths many times over — the benchmark table, the hypothesis state
machines over syscall sequences and the VMA and interval trees, the fuzzer's searches for the
broken drivers, the demo drivers' interleaving sweeps — and takes well over half of the
suite's time. What could differ between Python versions (the interpreter, greenlet, typing,
hypothesis, the C helper) every other test exercises too, so CI runs the whole suite on the
first supported Python and the suite without the sweeps (``-m "not sweep"``) on the others.
"""

from __future__ import annotations

import pytest

# Node-id prefixes of the sweeps, each longer than ten seconds on the 2-core CI machine.
SWEEPS = (
    "tests/test_bench.py::test_table_and_json",
    "tests/model/test_stateful.py::TestSyscalls",
    "tests/model/test_maple_tree.py::TestMapleMachine",
    "tests/model/test_interval_tree.py::TestIntervalMachine",
    "tests/fuzz/test_broken.py::test_fuzz_finds",
    "tests/fuzz/test_demo.py::",
    "tests/fuzz/test_fuzz.py::test_distinct_failures_each_once",
    "tests/fuzz/test_fuzz.py::test_driver_machine_finds_and_reports_the_reproducer",
    "tests/fuzz/test_fuzz.py::test_cli_reports_failures_and_exits_1",
    "tests/fuzz/test_fuzz.py::test_exception_escaping_a_syscall_is_a_failure",
    "tests/fuzz/test_fuzz.py::test_sequential_fuzzing_misses_the_race",
    "tests/fuzz/test_fuzz.py::test_race_reproducer_replays_the_schedule",
    "tests/fuzz/test_fuzz.py::test_lambda_factory_reproducer_says_so",
    "tests/demo/test_interleavings.py::test_interleavings_",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose node id starts with one of ``SWEEPS`` as a sweep."""
    for item in items:
        if item.nodeid.startswith(SWEEPS):
            item.add_marker(pytest.mark.sweep)

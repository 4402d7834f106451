"""The demo's four binder-style drivers under the fuzzer, with their ioctl ABI: no failure.

The budgets here are small so that CI stays fast; docs/fuzzing.md records the long runs
(2,000 programs sequential, 500 with races, per driver).
"""

from __future__ import annotations

import pytest

from safemm.demo.drivers import STRATEGIES, BinderDriver
from safemm.fuzz import fuzz_driver

from .demo_ioctls import DEMO_IOCTLS

pytestmark = pytest.mark.xdist_group("fuzz-demo")


@pytest.mark.parametrize("driver", list(STRATEGIES.values()), ids=list(STRATEGIES))
def test_demo_driver_is_clean(driver: type[BinderDriver]) -> None:
    r = fuzz_driver(driver, ioctls=DEMO_IOCTLS, examples=30, seed=0)
    assert r.ok, r.report()
    assert r.coverage.hooks["safebinder->unlocked_ioctl"] > 30
    assert r.coverage.counters["insert_page"] + r.coverage.counters["pgfault"] > 0


@pytest.mark.parametrize("driver", list(STRATEGIES.values()), ids=list(STRATEGIES))
def test_demo_driver_is_clean_with_races(driver: type[BinderDriver]) -> None:
    r = fuzz_driver(driver, ioctls=DEMO_IOCTLS, examples=10, seed=0, concurrency=True)
    assert r.ok, r.report()
    assert r.coverage.operations["race"] > 0

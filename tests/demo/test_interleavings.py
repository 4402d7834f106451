# mypy: disallow-any-decorated=False
"""Hypothesis-driven interleavings of sends, receives, frees, shrinker passes, injected
failures and the receiver's own mm operations (split, mremap, munmap, moving pages on top of
others, replacing the mapping with anonymous memory, fork), for each
strategy, on a machine short of memory. The model's invariants are checked after every step;
every byte a receiver reads is compared with what was sent (the Harness raises otherwise); the
run ends with no splat and no leak."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safemm import PAGE_SIZE, KernelError
from safemm.demo.drivers import STRATEGIES
from safemm.demo.userspace import Harness

NPAGES = 16
KINDS = (
    "send",
    "send",
    "send",
    "recv",
    "recv",
    "free",
    "shrink",
    "split",
    "move",
    "munmap",
    "fork",
    "overlay",
    "replace",
    "inject",
    "recheck",
)
SITES = ("trylock", "lock_vma_under_rcu", "alloc_page")

Step = tuple[str, int, int]
steps = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, NPAGES - 1), st.integers(1, NPAGES)),
    min_size=1,
    max_size=30,
)


def run(strategy: str, program: list[Step]) -> Harness:
    """Run ``program`` against a fresh machine; check invariants after every step."""
    h = Harness(STRATEGIES[strategy], nr_pages=40)
    senders = [h.endpoint("s0", npages=2), h.endpoint("s1", npages=2)]
    r = h.endpoint("r", npages=NPAGES)
    k = h.kernel
    for n, (kind, a, b) in enumerate(program):
        held = sorted(r.channel.held)
        if kind == "send":
            size = min(b, 4) * PAGE_SIZE - a * 97
            h.send(senders[a % 2], r.channel, bytes([n % 251 + 1]) * max(size, 1))
        elif kind == "recv":
            h.recv(r)
        elif kind == "free" and held:
            h.free(r, held[a % len(held)])
        elif kind == "shrink":
            h.shrink(b)
        elif kind == "split":
            h.split(r, a, min(b, NPAGES - a))
        elif kind == "move":
            h.move(r, a, min(b, NPAGES - a))
        elif kind == "munmap":
            h.unmap_pages(r, a, min(b % 4 + 1, NPAGES - a))
        elif kind == "overlay" and a in r.layout and r.layout:
            # Move some pages on top of others: the driver's VMA, at the wrong offset.
            try:
                h.move(r, a, min(b, NPAGES - a), dest=min(r.layout.values()))
            except KernelError as e:  # the ranges overlap: mremap refuses, nothing moved
                if e.errno != errno.EINVAL:
                    raise
        elif kind == "replace" and a == 0:
            h.map_anon(r, h.unmap(r))
        elif kind == "fork":
            child = h.fork(r)
            h.recv(child)
            h.recheck_held(child)
            h.shrink()
            h.exit(child)
        elif kind == "inject":
            k.fault_inject.fail_next(SITES[a % 3], b % 3 + 1)
        elif kind == "recheck":
            h.recheck_held(r)
        k.check_invariants()
    h.recheck_held(r)
    h.drain(r)
    h.free_all(r)
    h.shrink()
    h.finish()
    return h


@settings(max_examples=60, deadline=None)
@given(program=steps)
def test_interleavings_eager_insert(program: list[Step]) -> None:
    """Any interleaving ends clean, with every read intact: eager-insert."""
    run("eager-insert", program)


@settings(max_examples=60, deadline=None)
@given(program=steps)
def test_interleavings_insert_on_receive(program: list[Step]) -> None:
    """Any interleaving ends clean, with every read intact: insert-on-receive."""
    run("insert-on-receive", program)


@settings(max_examples=60, deadline=None)
@given(program=steps)
def test_interleavings_fault_and_unmap(program: list[Step]) -> None:
    """Any interleaving ends clean, with every read intact: fault-and-unmap."""
    run("fault-and-unmap", program)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_a_busy_program(strategy: str) -> None:
    """One fixed program that takes most paths (a regression anchor for the generator)."""
    program: list[Step] = [
        ("send", 0, 3),
        ("send", 1, 2),
        ("recv", 0, 1),
        ("split", 4, 4),
        ("recv", 0, 1),
        ("free", 0, 1),
        ("move", 0, 16),
        ("send", 2, 4),
        ("recv", 0, 1),
        ("fork", 0, 1),
        ("move", 8, 8),
        ("send", 0, 4),
        ("recv", 0, 1),
        ("inject", 0, 2),
        ("shrink", 0, 8),
        ("munmap", 2, 2),
        ("send", 0, 1),
        ("recv", 0, 1),
        ("free", 0, 1),
        ("shrink", 0, 16),
    ]
    h = run(strategy, program)
    assert h.tally.transactions > 0

"""Fault injection: make chosen operations fail, deterministically.

Mirrors lib/fault-inject.c (``should_fail``), as used by ``fail_page_alloc``
(mm/fail_page_alloc.c) and the kernel's own trylock failures under contention. Three sites:

- ``"trylock"``: every trylock (mmap_read_trylock, mutex_trylock, spin_trylock, ...);
- ``"lock_vma_under_rcu"``: the per-VMA lock fast path returns NULL (caller falls back);
- ``"alloc_page"``: the page allocator fails (ENOMEM).

A site fails its next ``n`` calls (:meth:`FaultInjection.fail_next`), or each call with a
probability drawn from a private seeded generator (:meth:`FaultInjection.fail_fraction`), so a
run is reproducible from its seed.
"""

from __future__ import annotations

import random

__all__ = ["SITES", "FaultInjection"]

SITES = ("trylock", "lock_vma_under_rcu", "alloc_page")


class FaultInjection:
    """Per-site failure configuration for one kernel.

    Invariant: ``_next[site] >= 0``; ``0 <= _fraction[site] <= 1``; ``injected[site]`` counts
    the failures injected so far.
    """

    __slots__ = ("_fraction", "_next", "_rng", "injected")

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._next = dict.fromkeys(SITES, 0)
        self._fraction = dict.fromkeys(SITES, 0.0)
        self.injected = dict.fromkeys(SITES, 0)

    def _check_site(self, site: str) -> None:
        if site not in self._next:
            raise ValueError(f"unknown fault-injection site {site!r}; known: {', '.join(SITES)}")

    def fail_next(self, site: str, n: int = 1) -> None:
        """Make the next ``n`` calls at ``site`` fail."""
        self._check_site(site)
        if n < 0:
            raise ValueError(f"fail_next: n must be >= 0, got {n}")
        self._next[site] = n

    def fail_fraction(self, site: str, fraction: float, seed: int | None = None) -> None:
        """Make each call at ``site`` fail with probability ``fraction`` (0 turns it off)."""
        self._check_site(site)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fail_fraction: fraction must be in [0, 1], got {fraction}")
        self._fraction[site] = fraction
        if seed is not None:
            self._rng.seed(seed)

    def clear(self) -> None:
        """Turn all injection off."""
        for site in SITES:
            self._next[site] = 0
            self._fraction[site] = 0.0

    def should_fail(self, site: str) -> bool:
        """Whether this call at ``site`` fails (``should_fail()``); consumes one injection."""
        n = self._next[site]
        if n:
            self._next[site] = n - 1
            self.injected[site] += 1
            return True
        f = self._fraction[site]
        if f and self._rng.random() < f:
            self.injected[site] += 1
            return True
        return False

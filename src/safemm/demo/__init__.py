"""The binder demo: four drivers written only against the safe layer, deterministic
workloads that drive them from user space, and the comparison report (``safemm demo``)."""

from __future__ import annotations

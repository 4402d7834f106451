"""Tests of the binder demo: the four drivers, their workloads and the report."""

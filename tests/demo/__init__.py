"""Tests of the binder demo: the three drivers, their workloads and the report."""

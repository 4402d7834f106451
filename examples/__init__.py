"""Example drivers written only against the safe layer, and their workloads."""

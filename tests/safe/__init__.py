"""Tests of the safe layer."""

"""Tests of the mm model."""

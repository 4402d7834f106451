"""Tests of the differential conformance suite (safemm.conformance)."""

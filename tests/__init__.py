"""The test suite (see the README, Quick start step 2)."""

"""Binder-style drivers side by side: runnable entry points over :mod:`safemm.demo`.

The drivers themselves live in the installed package (``safemm.demo.drivers``), written only
against the safe layer, so that ``safemm demo`` works from an install; these scripts show
how to use them:

- ``python -m examples.binder.session [STRATEGY]`` — one narrated session with one driver;
- ``python -m examples.binder.compare [--seed N] ...`` — the full comparison (= ``safemm
  demo``).
"""

"""Run the three strategies over every workload and print the comparison (the same as
``safemm demo``; the same options: ``--seed N``, ``--json``, ``--plot FILE``,
``--workload NAME ...``)."""

from __future__ import annotations

import sys

from safemm.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))

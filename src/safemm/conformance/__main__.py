"""``python -m safemm.conformance``: the same as ``safemm conformance``."""

import sys

from safemm.cli import main

sys.exit(main(["conformance", *sys.argv[1:]]))

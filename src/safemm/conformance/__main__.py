"""``python -m safemm.conformance``: the same as ``safemm conformance``."""

import sys

from .compare import main

sys.exit(main())

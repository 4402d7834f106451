"""safemm.fuzz drives hypothesis at run time: say how to get it when it is missing."""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError:  # pragma: no cover - depends on the installation
    raise ImportError("safemm.fuzz needs hypothesis: pip install 'safemm[fuzz]'") from None

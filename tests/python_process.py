"""Running a snippet in a fresh interpreter, for what only a new process shows: what an
import pulls in, what happens at interpreter exit."""

from __future__ import annotations

import subprocess
import sys


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this interpreter (``python -c``); its exit status must be 0.

    Returns:
        The finished process, its stdout and stderr as text.
    """
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

"""Check the sortedcontainers stubs against the installed package with mypy's stubtest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Paths are relative to this file, so the test works from any working directory.
ROOT = Path(__file__).resolve().parent.parent
STUBS = ROOT / "stubs"
ALLOWLIST = STUBS / "stubtest-allowlist.txt"
MYPY_CONFIG = ROOT / "mypy.ini"


def test_sortedcontainers_stubs_match_runtime() -> None:
    # MYPYPATH makes stubtest find our stubs; the config file gives it the project's mypy
    # options (strict, python_version), so the stubs must also type-check cleanly.
    env = {**os.environ, "MYPYPATH": str(STUBS)}
    command = [
        sys.executable,
        "-m",
        "mypy.stubtest",
        "sortedcontainers",
        "--mypy-config-file",
        str(MYPY_CONFIG),
        "--allowlist",
        str(ALLOWLIST),
    ]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    # On failure, show everything stubtest said.
    output = f"stubtest exited {result.returncode}\n{result.stdout}{result.stderr}"
    assert result.returncode == 0, output

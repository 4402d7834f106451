# Sourced by .ci/docs and .ci/release-check: the Python of the current virtual environment, and
# the pinned extras of pyproject.toml installed into it when a pin is missing.

# current_python: the active virtual environment's python ($VIRTUAL_ENV, as nox sets it), else
# the README's .venv; never a Python outside a virtual environment.
current_python() {
    if [ -n "${VIRTUAL_ENV:-}" ]; then
        echo "$VIRTUAL_ENV/bin/python"
    elif [ -x .venv/bin/python ]; then
        echo .venv/bin/python
    else
        echo "no virtual environment (activate one, run it through nox, or create .venv:" >&2
        echo "python3 -m venv .venv)" >&2
        return 2
    fi
}

# ensure_extra PYTHON EXTRA: pip install -e ".[EXTRA]" unless every pin of the extra is
# installed at its pinned version and safemm is installed.
ensure_extra() {
    if ! "$1" - "$2" <<'CHECK'
import sys, tomllib
from importlib.metadata import PackageNotFoundError, version

extra = sys.argv[1]
pins = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"][extra]
wanted = [p.split("==") for p in pins if "==" in p] + [["safemm", None]]
for name, pinned in wanted:
    try:
        found = version(name)
    except PackageNotFoundError:
        sys.exit(f"{name} is not installed")
    if pinned is not None and found != pinned:
        sys.exit(f"{name} {found} is installed, the {extra} extra pins {pinned}")
CHECK
    then
        echo "+ $1 -m pip install -q -e '.[$2]'"
        "$1" -m pip install -q -e ".[$2]"
    fi
}

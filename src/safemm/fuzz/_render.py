"""A failing program as a pytest function that uses only the public API.

The function rebuilds the machine (``Kernel``), registers the driver from its factory, and
repeats every call of the shrunk program: a call that returned binds its result to the
variable later calls use (``m2 = p1.mmap(...)``); a refused call is wrapped in
``pytest.raises(KernelError, match="EINVAL:")`` and a signal in ``pytest.raises(BusError)``,
so the test also pins down what user space saw. It ends with the checks the fuzzer makes:
no leak once collected, every invariant, an empty dmesg. So it fails, with the fuzzer's
report, while the bug is there — and passes once it is fixed, which makes it a regression
test as it stands. A program with races runs inside ``safemm.explore.replay`` with the
schedule token the fuzzer recorded, which replays the same interleaving.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._world import FuzzFailure

__all__ = ["Program", "render"]


@dataclass(frozen=True)
class Program:
    """What a reproducer is made of: the statements run, and how to set the machine up.

    Attributes:
        lines: the statements, in order (one entry per statement).
        nr_pages: the machine's RAM.
        factory_import: the import line of the driver factory (or a comment).
        token: the schedule token of the races, or None for a sequential program.
    """

    lines: tuple[str, ...]
    nr_pages: int
    factory_import: str
    token: str | None


_SAFEMM_NAMES = [
    "BusError",
    "Kernel",
    "KernelError",
    "MAP_ANONYMOUS",
    "MAP_FIXED",
    "MAP_FIXED_NOREPLACE",
    "MAP_PRIVATE",
    "MAP_SHARED",
    "MREMAP_DONTUNMAP",
    "MREMAP_FIXED",
    "MREMAP_MAYMOVE",
    "O_RDONLY",
    "PROT_EXEC",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "SegmentationFault",
]

_USER_HELPER = '''\
def user(call: Callable[[], object]) -> Callable[[], object]:
    """A race body: a refused call or a signal is its result, not a failure."""

    def body() -> object:
        try:
            return call()
        except (KernelError, SegmentationFault, BusError) as e:
            return e

    return body
'''


def _indent(block: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + ln if ln else ln for ln in block.splitlines())


def _slug(f: FuzzFailure) -> str:
    base = f.contract or type(f.error).__name__
    return re.sub(r"[^0-9a-zA-Z]+", "_", base).strip("_").lower() or "failure"


def render(prog: Program, f: FuzzFailure) -> str:
    """The reproducer of failure ``f``: program ``prog`` as a pytest function."""
    racy = prog.token is not None
    kargs = "" if prog.nr_pages == 16384 else f"nr_pages={prog.nr_pages}"
    kernel_new = f"Kernel({kargs})"
    epilogue = [
        "gc.collect()  # run the finalizers that report dropped pages and mm references",
        'assert kernel.dmesg == [], "\\n".join(kernel.dmesg)',
        "kernel.check_invariants()",
    ]
    if f.kind == "leak":
        epilogue.append(
            'assert kernel.mms == {} and kernel.open_files == {}, "outlived every process"'
        )
    program = [*prog.lines, *epilogue]
    body = "\n".join(program)
    what = f.what.replace('"""', "'''").replace("\\", "\\\\")
    if len(what) > 70:  # the docstring line stays within 99 columns
        what = what[:67] + "..."
    doc = f'"""safemm.fuzz: {what}"""'
    if racy:
        func_body = "\n\n".join(
            [
                doc,
                _USER_HELPER,
                "def scenario(kernel: Kernel) -> None:\n" + _indent(body, 4),
                f'replay(scenario, "{prog.token}", kernel_factory=lambda: {kernel_new})',
            ]
        )
    else:
        func_body = "\n".join([doc, f"kernel = {kernel_new}", body])
    text = f"def test_fuzz_{_slug(f)}() -> None:\n" + _indent(func_body, 4) + "\n"
    imports = ["import gc"]
    if racy:
        imports.insert(0, "from collections.abc import Callable")
    third = []
    if "pytest.raises" in text:
        third.append("import pytest")
    used = [n for n in _SAFEMM_NAMES if re.search(rf"\b{n}\b", text)]
    used.sort(key=lambda n: (not n.isupper(), n))  # isort's order: constants, then classes
    first = [f"from safemm import {', '.join(used)}"]
    if "BystanderDriver" in text:
        first.append("from safemm.fuzz import BystanderDriver")
    if racy:
        first.append("from safemm.explore import replay")
    if prog.factory_import:
        first.append(prog.factory_import)
    blocks = ["\n".join(sorted(imports)), "\n".join(third), "\n".join(first)]
    head = "\n\n".join(b for b in blocks if b)
    return f"{head}\n\n\n{text}"

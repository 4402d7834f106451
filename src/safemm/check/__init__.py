"""``safemm check``: sleeping in atomic context, found statically (a klint for safemm drivers).

The analysis runs on mypy's semantic model of the program — mypy's own build, with the
project's mypy configuration and cache — so a call resolves to what mypy says it calls
(types, inheritance, overloads), not to a bare name. It reads the same marks as the run-time
``might_sleep`` check (:mod:`safemm.model.atomic`): the safe layer's from the registry they
fill, the user's from the decorators in the source.

Errors come out in mypy's format, ``path:line:col: error: message  [atomic-sleep]``;
``--strict`` also reports calls in atomic context that cannot be resolved
(``[atomic-unknown]``: an ``Any`` receiver, a callable value), which are otherwise assumed
not to sleep. Needs mypy: ``pip install 'safemm[check]'``.

Speed: each module's summary is cached beside mypy's cache (``.mypy_cache/safemm-check``),
keyed by its source and the interfaces of its imports, so a warm run does little more than
mypy's own freshness check.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from safemm.model import atomic as _marks

from ._analysis import Error, analyze
from ._summary import Call, Func, ModuleSummary, summarize

__all__ = ["CheckResult", "Error", "check"]

#: Bump when summaries change shape or meaning.
_VERSION = "3"

#: Modules of the safe layer and the model: opaque (their marks speak for them).
_OPAQUE = ("safemm", "safemm.")
_ANALYZED_INSIDE = ("safemm.demo",)


@dataclass
class CheckResult:
    """What a check found.

    Attributes:
        errors: the findings, sorted by place.
        blocking: mypy's blocking errors (syntax errors, missing files), if any: the
            analysis did not run.
        modules: how many modules were analyzed.
        summarized: how many of them had to be summarized afresh (not from the cache).
    """

    errors: list[Error]
    blocking: list[str]
    modules: int
    summarized: int

    @property
    def status(self) -> int:
        """The exit status: 1 on any error, 2 when the check could not run."""
        return 2 if self.blocking else 1 if self.errors else 0


def _load_marks() -> str:
    """Import the safe layer (filling the mark registries); a fingerprint of the marks."""
    from safemm import fs, mm, page, rcu, shrinker, sync, task, virt  # noqa: F401

    data = json.dumps(
        [
            sorted((k, asdict(v)) for k, v in _marks.SLEEPS.items()),
            sorted(_marks.GUARDS.items()),
            sorted(_marks.UNLOCKS),
            sorted(_marks.RELOCKS),
            sorted((k, asdict(v)) for k, v in _marks.CALLBACKS.items()),
        ],
        sort_keys=True,
    )
    return hashlib.sha1((_VERSION + data).encode()).hexdigest()


def _finals() -> dict[str, int]:
    """The gfp constants the analysis reads, by full name."""
    from safemm.model import page_alloc

    out = {
        f"safemm.model.page_alloc.{n}": int(v)
        for n, v in vars(page_alloc).items()
        if n.startswith("GFP_") and isinstance(v, int)
    }
    for flag in page_alloc.Gfp:
        out[f"safemm.model.page_alloc.Gfp.{flag.name}"] = int(flag)
    return out


def _shown(path: str) -> str:
    """A path as mypy shows it: relative to the working directory when under it."""
    p = os.path.abspath(path)
    cwd = os.getcwd()
    return os.path.relpath(p, cwd) if p.startswith(cwd + os.sep) else path


def _analyzed(module: str) -> bool:
    if module.startswith(_ANALYZED_INSIDE):
        return True
    return not (module == _OPAQUE[0] or module.startswith(_OPAQUE[1]))


def _to_json(s: ModuleSummary) -> str:
    return json.dumps({"funcs": [asdict(f) for f in s.funcs], "classes": s.classes})


def _from_json(text: str) -> ModuleSummary:
    data = json.loads(text)
    funcs = []
    for f in data["funcs"]:
        calls = [
            Call(
                c["line"],
                c["col"],
                c["text"],
                c["callees"],
                c["unknown"],
                c["ctx"],
                c["entry"],
                c["consts"],
                [(slot, fns) for slot, fns in c["callbacks"]],
            )
            for c in f["calls"]
        ]
        sleeps = tuple(f["sleeps"]) if f["sleeps"] is not None else None
        callback = tuple(f["callback"]) if f["callback"] is not None else None
        funcs.append(
            Func(
                f["key"],
                f["name"],
                f["path"],
                f["line"],
                calls,
                (sleeps[0], sleeps[1], sleeps[2], sleeps[3]) if sleeps else None,
                f["context"],
                (callback[0], callback[1], callback[2]) if callback else None,
            )
        )
    classes = {k: (v[0], v[1]) for k, v in data["classes"].items()}
    return ModuleSummary(funcs, classes)


def check(
    paths: list[str], *, strict: bool = False, mypy_args: list[str] | None = None
) -> CheckResult:
    """Run the atomic-context analysis over ``paths`` (files, directories or packages, as
    mypy takes them), with the mypy configuration found the way mypy finds it."""
    from mypy import build
    from mypy.main import process_options
    from mypy.modulefinder import BuildSource

    fingerprint = _load_marks()
    finals = _finals()
    sources, options = process_options([*(mypy_args or []), *paths])
    options.preserve_asts = True
    options.export_types = True
    cache = Path(options.cache_dir) / "safemm-check"

    def build_(srcs: list[BuildSource]) -> build.BuildResult | list[str]:
        try:
            return build.build(srcs, options)
        except Exception as e:  # mypy's CompileError: syntax errors, missing modules
            return list(getattr(e, "messages", [str(e)]))

    first = build_(sources)
    if isinstance(first, list):
        return CheckResult([], first, 0, 0)
    result = first

    def key_of(module: str) -> str:
        st = result.graph[module]
        h = hashlib.sha1(fingerprint.encode())
        h.update(Path(st.path or "").read_bytes() if st.path else b"")
        for dep in sorted(st.dependencies):
            d = result.graph.get(dep)
            h.update(dep.encode() + (d.interface_hash if d is not None else b""))
        return h.hexdigest()

    wanted = {s.module for s in sources}
    modules = [
        m
        for m, st in result.graph.items()
        if _analyzed(m)
        and st.path is not None
        and st.path.endswith(".py")
        and (m in wanted or not st.ignore_all)
    ]
    summaries: dict[str, ModuleSummary] = {}
    need: list[str] = []
    fresh_count = 0
    for m in modules:
        st = result.graph[m]
        tree = st.tree
        if tree is not None and tree.defs and st.path is not None:
            summaries[m] = summarize(tree, st.path, result.types, finals)
            fresh_count += 1
            continue
        entry = cache / f"{m}.json"
        try:
            stored = json.loads(entry.read_text())
            if stored["key"] == key_of(m):
                summaries[m] = _from_json(stored["summary"])
                continue
        except (OSError, ValueError, KeyError, TypeError):
            pass
        need.append(m)
    if need:
        # Fresh in mypy's cache but never summarized: have mypy check them again.
        by_module = {s.module: s for s in sources}
        srcs = [s for s in sources if s.module not in need]
        for m in need:
            path = result.graph[m].path
            assert path is not None
            base = by_module[m].base_dir if m in by_module else None
            srcs.append(BuildSource(path, m, Path(path).read_text(encoding="utf-8"), base))
        again = build_(srcs)
        if isinstance(again, list):
            return CheckResult([], again, 0, 0)
        result = again
        for m in need:
            st = result.graph[m]
            if st.tree is not None and st.path is not None:
                summaries[m] = summarize(st.tree, st.path, result.types, finals)
                fresh_count += 1
    cache.mkdir(parents=True, exist_ok=True)
    for m, s in summaries.items():
        st = result.graph[m]
        if st.tree is not None and st.tree.defs:
            tmp = cache / f"{m}.json.{os.getpid()}"
            tmp.write_text(json.dumps({"key": key_of(m), "summary": _to_json(s)}))
            tmp.replace(cache / f"{m}.json")
    for s in summaries.values():
        for f in s.funcs:
            f.path = _shown(f.path)
    errors = analyze([summaries[m] for m in sorted(summaries)], strict=strict)
    return CheckResult(errors, [], len(summaries), fresh_count)

"""Per-module summaries: every call of every function, resolved on mypy's semantic model, with
the atomic context it is made in.

A summary depends only on its module's source and the interfaces of the modules it imports
(mypy's own freshness rule), so it is cached next to mypy's cache and rebuilt only for the
modules mypy re-checks. What the calls *do* (which sleep) is decided later, over all modules
at once (:mod:`safemm.check._analysis`).

Intraprocedural context tracking, statement by statement:

- a ``with`` block over a guard of a marked guard class (``SpinLockGuard``, ``RcuReadGuard``)
  is atomic context;
- ``g = lock.lock()`` / ``g = lock.try_lock()`` makes ``g`` a live guard until ``g.unlock()``,
  a ``with g:`` block ends, or ``g`` is rebound; in a branch where ``g is None`` (the failed
  trylock) it is not held;
- a call of an ``@atomic_unlock`` method on anything else (``walk.unlock()``) leaves the
  atomic context the function was *entered* in, until an ``@atomic_relock`` call
  (``walk.relock()``);
- after ``if``/``try``/loops, a context is held if it is held on any path that falls through.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mypy.nodes import (
    ARG_NAMED,
    ARG_POS,
    AssertStmt,
    AssignmentExpr,
    AssignmentStmt,
    AwaitExpr,
    Block,
    BreakStmt,
    CallExpr,
    ClassDef,
    ComparisonExpr,
    ConditionalExpr,
    ContinueStmt,
    Decorator,
    DictExpr,
    DictionaryComprehension,
    Expression,
    ExpressionStmt,
    ForStmt,
    FuncDef,
    GeneratorExpr,
    IfStmt,
    IndexExpr,
    IntExpr,
    LambdaExpr,
    ListComprehension,
    ListExpr,
    MatchStmt,
    MemberExpr,
    MypyFile,
    NameExpr,
    OperatorAssignmentStmt,
    OpExpr,
    OverloadedFuncDef,
    RaiseStmt,
    RefExpr,
    ReturnStmt,
    SetComprehension,
    SetExpr,
    SliceExpr,
    StarExpr,
    Statement,
    StrExpr,
    SuperExpr,
    TryStmt,
    TupleExpr,
    TypeInfo,
    UnaryExpr,
    Var,
    WhileStmt,
    WithStmt,
    YieldExpr,
    YieldFromExpr,
)
from mypy.types import (
    AnyType,
    CallableType,
    Instance,
    LiteralType,
    NoneType,
    Overloaded,
    TupleType,
    Type,
    TypeType,
    TypeVarType,
    UnionType,
    get_proper_type,
)

from safemm.model import atomic as _marks

__all__ = ["Call", "Func", "ModuleSummary", "summarize"]

#: Full names of the mark decorators, as mypy resolves them.
_MARK_MODULES = ("safemm.atomic.", "safemm.model.atomic.")


@dataclass
class Call:
    """One call site.

    Attributes:
        line: the line of the call.
        col: its column (0-based, as mypy stores it).
        text: the call as written, shortened (``Page.alloc_page(GFP_KERNEL)``).
        callees: the functions it may call (full names), as mypy resolves the callee.
        unknown: why the callee could not be resolved, or None.
        ctx: the innermost atomic context the function itself holds here, or None.
        entry: whether the atomic context the function was entered in (if any) is still held
            (not left with ``LruWalk.unlock()``).
        consts: constant int arguments by position (``"0"``) or keyword; None when the
            argument is there but not a constant.
        callbacks: functions passed as arguments: (position or keyword, full names).
    """

    line: int
    col: int
    text: str
    callees: list[str]
    unknown: str | None
    ctx: str | None
    entry: bool
    consts: dict[str, int | None] = field(default_factory=dict)
    callbacks: list[tuple[str, list[str]]] = field(default_factory=list)


@dataclass
class Func:
    """A function (or method, lambda, nested function) and its marks and calls."""

    key: str
    name: str
    path: str
    line: int
    calls: list[Call] = field(default_factory=list)
    #: ``@may_sleep(fix, gfp=...)`` in the source: (fix, gfp parameter, its position, its
    #: default value).
    sleeps: tuple[str, str | None, int | None, int | None] | None = None
    #: ``@atomic_context(what)`` in the source.
    context: str | None = None
    #: ``@atomic_callback(param, what)`` in the source: (param, position, what).
    callback: tuple[str, int, str] | None = None


@dataclass
class ModuleSummary:
    """The functions of one module, and its classes (MRO and own methods) for overrides."""

    funcs: list[Func]
    classes: dict[str, tuple[list[str], list[str]]]


@dataclass
class _Ctx:
    var: str | None
    desc: str


@dataclass
class _State:
    ctxs: list[_Ctx]
    entry: bool = True
    dead: bool = False

    def copy(self) -> _State:
        return _State(list(self.ctxs), self.entry, self.dead)

    def drop(self, var: str) -> _State:
        self.ctxs = [c for c in self.ctxs if c.var != var]
        return self


def _merge(states: list[_State]) -> _State:
    live = [s for s in states if not s.dead]
    if not live:
        out = states[0].copy()
        out.dead = True
        return out
    ctxs: list[_Ctx] = []
    for s in live:
        for c in s.ctxs:
            if all(c.var != d.var or c.desc != d.desc for d in ctxs):
                ctxs.append(c)
    return _State(ctxs, any(s.entry for s in live), False)


def text_of(e: Expression, depth: int = 0) -> str:
    """Source-like text of an expression, shortened."""
    if depth > 5:
        return "…"
    if isinstance(e, NameExpr):
        return e.name
    if isinstance(e, MemberExpr):
        return f"{text_of(e.expr, depth + 1)}.{e.name}"
    if isinstance(e, CallExpr):
        args = ", ".join(text_of(a, depth + 2) for a in e.args[:3])
        if len(e.args) > 3:
            args += ", …"
        return f"{text_of(e.callee, depth + 1)}({args})"
    if isinstance(e, IntExpr):
        return str(e.value)
    if isinstance(e, StrExpr):
        return repr(e.value) if len(e.value) < 20 else "'…'"
    if isinstance(e, OpExpr):
        return f"{text_of(e.left, depth + 1)} {e.op} {text_of(e.right, depth + 1)}"
    if isinstance(e, SuperExpr):
        return f"super().{e.name}"
    if isinstance(e, IndexExpr):
        return f"{text_of(e.base, depth + 1)}[…]"
    if isinstance(e, LambdaExpr):
        return "lambda"
    return "…"


def _const(e: Expression, finals: dict[str, int]) -> int | None:
    """The int value of a gfp-like constant expression, or None."""
    if isinstance(e, IntExpr):
        return e.value
    if (
        isinstance(e, MemberExpr)
        and isinstance(e.expr, RefExpr)
        and isinstance(e.expr.node, TypeInfo)
        and f"{e.expr.node.fullname}.{e.name}" in finals
    ):
        return finals[f"{e.expr.node.fullname}.{e.name}"]
    if isinstance(e, RefExpr):
        if e.fullname in finals:
            return finals[e.fullname]
        node = e.node
        if isinstance(node, Var) and isinstance(node.final_value, int):
            return node.final_value
        return None
    if isinstance(e, OpExpr) and e.op in ("|", "&", "^"):
        a, b = _const(e.left, finals), _const(e.right, finals)
        if a is None or b is None:
            return None
        return a | b if e.op == "|" else a & b if e.op == "&" else a ^ b
    if isinstance(e, UnaryExpr) and e.op == "~":
        v = _const(e.expr, finals)
        return None if v is None else ~v
    if (
        isinstance(e, CallExpr)
        and isinstance(e.callee, RefExpr)
        and len(e.args) == 1
        and e.callee.fullname in ("builtins.int", "safemm.model.page_alloc.Gfp")
    ):
        return _const(e.args[0], finals)
    return None


def _mark_name(d: Expression) -> tuple[str, list[Expression]] | None:
    """``(mark, args)`` when ``d`` is one of the mark decorators."""
    args: list[Expression] = []
    if isinstance(d, CallExpr):
        args = list(d.args)
        d = d.callee
    if isinstance(d, RefExpr) and d.fullname.startswith(_MARK_MODULES):
        return d.fullname.rsplit(".", 1)[1], args
    return None


def _str(args: list[Expression], i: int) -> str:
    a = args[i] if i < len(args) else None
    return a.value if isinstance(a, StrExpr) else ""


class _Summarizer:
    """Walks one module's tree (hand-written: compiled mypy's visitors cannot be subclassed
    from interpreted code)."""

    def __init__(self, tree: MypyFile, path: str, types: dict[Expression, Type]) -> None:
        self.tree = tree
        self.path = path
        self.types = types
        self.funcs: list[Func] = []
        self.classes: dict[str, tuple[list[str], list[str]]] = {}
        self.local: dict[int, str] = {}  # id(nested FuncDef) -> key
        self.finals: dict[str, int] = {}
        self.func: Func | None = None
        self.callback_params: set[tuple[str, str]] = set()
        self.guard_types = dict(_marks.GUARDS)

    # --------------------------------------------------------------- module structure

    def module(self) -> ModuleSummary:
        top = Func(
            f"{self.tree.fullname}.<module>", f"{self.tree.fullname} (module)", self.path, 1
        )
        self.funcs.append(top)
        self.func = top
        self.block(self.tree.defs, _State([]), top_key=self.tree.fullname)
        return ModuleSummary(self.funcs, self.classes)

    def define(self, node: Statement, prefix: str, display: str) -> bool:
        """Summarize a definition statement; True if it was one."""
        if isinstance(node, ClassDef):
            info = node.info
            own = [
                n
                for n, sym in info.names.items()
                if isinstance(sym.node, FuncDef | Decorator | OverloadedFuncDef)
            ]
            self.classes[info.fullname] = ([c.fullname for c in info.mro], own)
            saved = self.func
            self.block(node.defs.body, _State([]), top_key=info.fullname, display=node.name)
            self.func = saved
            return True
        if isinstance(node, Decorator):
            self.function(node.func, prefix, display, node.original_decorators)
            return True
        if isinstance(node, FuncDef):
            self.function(node, prefix, display, [])
            return True
        if isinstance(node, OverloadedFuncDef):
            impl = node.impl
            if isinstance(impl, Decorator):
                self.function(impl.func, prefix, display, impl.original_decorators)
            elif isinstance(impl, FuncDef):
                self.function(impl, prefix, display, [])
            return True
        return False

    def function(
        self, node: FuncDef, prefix: str, display: str, decorators: list[Expression]
    ) -> None:
        key = f"{prefix}.{node.name}"
        self.local[id(node)] = key
        name = f"{display}.{node.name}" if display else node.name
        f = Func(key, name, self.path, node.line)
        params = [a.variable.name for a in node.arguments]
        if params and params[0] in ("self", "cls") and display:
            params = params[1:]
        for d in decorators:
            m = _mark_name(d)
            if m is None:
                continue
            mark, args = m
            if mark == "may_sleep":
                gfp = None
                for i, kw in enumerate(d.arg_names if isinstance(d, CallExpr) else []):
                    if kw == "gfp":
                        a = args[i]
                        gfp = a.value if isinstance(a, StrExpr) else None
                fix = (
                    _str(args, 0) if isinstance(d, CallExpr) and d.arg_names[:1] == [None] else ""
                )
                index = params.index(gfp) if gfp in params else None
                default = None
                if index is not None:
                    init = node.arguments[len(node.arguments) - len(params) + index].initializer
                    default = None if init is None else _const(init, self.finals)
                f.sleeps = (fix, gfp, index, default)
            elif mark == "atomic_context":
                f.context = _str(args, 0) or "atomic context"
            elif mark == "atomic_callback":
                param = _str(args, 0)
                if param in params:
                    f.callback = (param, params.index(param), _str(args, 1) or "atomic callback")
                    self.callback_params.add((key, param))
        self.funcs.append(f)
        saved = self.func
        self.func = f
        self.block(node.body.body, _State([]), top_key=key, display=name)
        self.func = saved

    # --------------------------------------------------------------- statements

    def block(
        self, body: list[Statement], st: _State, *, top_key: str, display: str = ""
    ) -> _State:
        for s in body:
            if st.dead:
                break
            if self.define(s, top_key, display):
                continue
            st = self.stmt(s, st, top_key, display)
        return st

    def sub(self, b: Block | None, st: _State, key: str, display: str) -> _State:
        if b is None:
            return st
        if b.is_unreachable:
            out = st.copy()
            out.dead = True
            return out
        return self.block(b.body, st, top_key=key, display=display)

    def stmt(self, s: Statement, st: _State, key: str, display: str) -> _State:
        if isinstance(s, ExpressionStmt):
            self.expr(s.expr, st)
        elif isinstance(s, AssignmentStmt):
            self.expr(s.rvalue, st)
            if len(s.lvalues) == 1 and isinstance(s.lvalues[0], NameExpr):
                var = s.lvalues[0].name
                st.drop(var)
                desc = self.guard(s.rvalue)
                if desc is not None:
                    st.ctxs.append(_Ctx(var, desc))
            else:
                for lv in s.lvalues:
                    self.expr(lv, st)
        elif isinstance(s, OperatorAssignmentStmt):
            self.expr(s.rvalue, st)
        elif isinstance(s, ReturnStmt | RaiseStmt):
            if isinstance(s, ReturnStmt) and s.expr is not None:
                self.expr(s.expr, st)
            if isinstance(s, RaiseStmt) and s.expr is not None:
                self.expr(s.expr, st)
            st = st.copy()
            st.dead = True
        elif isinstance(s, BreakStmt | ContinueStmt):
            st = st.copy()
            st.dead = True
        elif isinstance(s, AssertStmt):
            self.expr(s.expr, st)
        elif isinstance(s, IfStmt):
            outs = []
            cur = st
            for cond, body in zip(s.expr, s.body, strict=True):
                self.expr(cond, cur)
                outs.append(self.sub(body, _narrow(cond, cur.copy(), True), key, display))
                cur = _narrow(cond, cur.copy(), False)
            outs.append(self.sub(s.else_body, cur, key, display))
            st = _merge(outs)
        elif isinstance(s, WhileStmt):
            self.expr(s.expr, st)
            body_st = self.sub(s.body, _narrow(s.expr, st.copy(), True), key, display)
            after = _merge([_narrow(s.expr, st.copy(), False), body_st])
            st = self.sub(s.else_body, after, key, display) if s.else_body else after
        elif isinstance(s, ForStmt):
            self.expr(s.expr, st)
            body_st = self.sub(s.body, st.copy(), key, display)
            after = _merge([st, body_st])
            st = self.sub(s.else_body, after, key, display) if s.else_body else after
        elif isinstance(s, WithStmt):
            st = self.with_stmt(s, st, key, display)
        elif isinstance(s, TryStmt):
            body_st = self.sub(s.body, st.copy(), key, display)
            start = _merge([st, body_st])
            start.dead = False
            outs = [self.sub(h, start.copy(), key, display) for h in s.handlers]
            outs.append(self.sub(s.else_body, body_st, key, display) if s.else_body else body_st)
            merged = _merge(outs)
            if s.finally_body is not None:
                fin_start = _merge([merged, start])
                fin_start.dead = False
                fin = self.sub(s.finally_body, fin_start, key, display)
                st = fin if not merged.dead else _dead(fin)
            else:
                st = merged
        elif isinstance(s, MatchStmt):
            self.expr(s.subject, st)
            outs = [self.sub(b, st.copy(), key, display) for b in s.bodies]
            outs.append(st)
            st = _merge(outs)
        elif isinstance(s, Block):
            st = self.sub(s, st, key, display)
        return st

    def with_stmt(self, s: WithStmt, st: _State, key: str, display: str) -> _State:
        pushed: list[str] = []
        entered: list[str] = []
        for i, (e, target) in enumerate(zip(s.expr, s.target, strict=True)):
            self.expr(e, st)
            if isinstance(e, NameExpr) and any(c.var == e.name for c in st.ctxs):
                entered.append(e.name)
                continue
            desc = self.guard(e)
            if desc is not None:
                var = target.name if isinstance(target, NameExpr) else f"<with {s.line}:{i}>"
                st.drop(var)
                st.ctxs.append(_Ctx(var, desc))
                pushed.append(var)
        out = self.sub(s.body, st, key, display)
        for var in pushed + entered:
            out.drop(var)
        return out

    def guard(self, e: Expression) -> str | None:
        """The atomic context a guard-typed expression stands for, or None."""
        t = get_proper_type(self.types.get(e))
        items = t.items if isinstance(t, UnionType) else [t]
        for item in items:
            p = get_proper_type(item)
            if isinstance(p, Instance) and p.type.fullname in self.guard_types:
                lock = "?"
                if isinstance(e, CallExpr) and isinstance(e.callee, MemberExpr):
                    lock = text_of(e.callee.expr)
                    how = e.callee.name
                else:
                    how = "taken"
                desc = self.guard_types[p.type.fullname].replace("{lock}", lock)
                verb = "entered" if "{lock}" not in self.guard_types[p.type.fullname] else "taken"
                if how == "try_lock":
                    verb += " by try_lock()"
                return f"{desc} {verb} at line {e.line}"
        return None

    # --------------------------------------------------------------- expressions

    def expr(self, e: Expression | None, st: _State) -> None:
        if e is None:
            return
        if isinstance(e, CallExpr):
            if isinstance(e.callee, MemberExpr):
                self.expr(e.callee.expr, st)
            elif not isinstance(e.callee, RefExpr | SuperExpr):
                self.expr(e.callee, st)
            for a in e.args:
                self.expr(a, st)
            self.call(e, st)
        elif isinstance(e, LambdaExpr):
            self.lambda_(e)
        else:
            for c in _children(e):
                self.expr(c, st)

    def lambda_(self, e: LambdaExpr) -> str:
        assert self.func is not None
        key = f"{self.func.key}.<lambda:{e.line}>"
        if id(e) in self.local:
            return key
        self.local[id(e)] = key
        f = Func(key, f"{self.func.name}.<lambda>", self.path, e.line)
        self.funcs.append(f)
        saved = self.func
        self.func = f
        self.block(e.body.body, _State([]), top_key=key, display=f.name)
        self.func = saved
        return key

    def call(self, e: CallExpr, st: _State) -> None:
        assert self.func is not None
        callees, unknown = self.resolve(e.callee)
        if (
            unknown is not None
            and isinstance(e.callee, NameExpr)
            and (self.func.key, e.callee.name) in self.callback_params
        ):
            unknown = None  # the marked callback itself: checked where it is defined
        consts: dict[str, int | None] = {}
        callbacks: list[tuple[str, list[str]]] = []
        pos = 0
        for a, kind, name in zip(e.args, e.arg_kinds, e.arg_names, strict=True):
            if kind == ARG_POS:
                slot = str(pos)
                pos += 1
            elif kind == ARG_NAMED and name is not None:
                slot = name
            else:
                continue
            consts[slot] = _const(a, self.finals)
            fns = self.function_ref(a)
            if fns:
                callbacks.append((slot, fns))
        self.func.calls.append(
            Call(
                e.line,
                e.column,
                text_of(e),
                callees,
                unknown,
                st.ctxs[-1].desc if st.ctxs else None,
                st.entry,
                consts,
                callbacks,
            )
        )
        if any(c in _marks.UNLOCKS for c in callees) and isinstance(e.callee, MemberExpr):
            recv = e.callee.expr
            if isinstance(recv, NameExpr) and any(c.var == recv.name for c in st.ctxs):
                st.drop(recv.name)
            elif self.guard(recv) is None:
                st.entry = False
        if any(c in _marks.RELOCKS for c in callees):
            st.entry = True

    def function_ref(self, a: Expression) -> list[str]:
        """The functions an argument refers to (a function, a bound method, a lambda)."""
        if isinstance(a, LambdaExpr):
            return [self.lambda_(a)]
        if isinstance(a, RefExpr):
            node = a.node
            if isinstance(node, Decorator):
                node = node.func
            if isinstance(node, FuncDef | OverloadedFuncDef):
                return [self.local.get(id(node), node.fullname)]
            if isinstance(a, MemberExpr):
                found, _ = self.resolve(a)
                t = get_proper_type(self.types.get(a))
                if found and isinstance(t, CallableType | Overloaded):
                    return found
        return []

    def resolve(self, callee: Expression) -> tuple[list[str], str | None]:
        """The full names a callee expression may call, or why it cannot be resolved."""
        if isinstance(callee, SuperExpr):
            info = callee.info
            if info is not None:
                for base in info.mro[1:]:
                    if callee.name in base.names:
                        return [f"{base.fullname}.{callee.name}"], None
            return [], None
        if isinstance(callee, RefExpr) and callee.node is not None:
            node = callee.node
            if isinstance(node, Decorator):
                return [self.local.get(id(node.func), node.func.fullname)], None
            if isinstance(node, FuncDef | OverloadedFuncDef):
                return [self.local.get(id(node), node.fullname)], None
            if isinstance(node, TypeInfo):
                return _constructor(node), None
        if isinstance(callee, MemberExpr):
            recv = get_proper_type(self.types.get(callee.expr))
            if isinstance(callee.expr, RefExpr) and isinstance(callee.expr.node, TypeInfo):
                recv = TypeType(Instance(callee.expr.node, []))
            found = _methods(recv, callee.name)
            if found is not None:
                return found
        t = get_proper_type(self.types.get(callee))
        if isinstance(t, CallableType) and isinstance(t.definition, FuncDef):
            return [t.definition.fullname], None
        if isinstance(t, Overloaded):
            defs = [i.definition.fullname for i in t.items if isinstance(i.definition, FuncDef)]
            if defs:
                return defs[:1], None
        if isinstance(t, CallableType) and t.is_type_obj():
            return _constructor(t.type_object()), None
        what = "a value of type Any" if isinstance(t, AnyType) or t is None else "a callable value"
        return [], f"`{text_of(callee)}` is {what}"


def _constructor(info: TypeInfo) -> list[str]:
    for base in info.mro:
        if "__init__" in base.names and base.fullname != "builtins.object":
            return [f"{base.fullname}.__init__"]
    return []


def _methods(recv: Type | None, name: str) -> tuple[list[str], str | None] | None:
    """Resolve ``recv.name(...)`` by the receiver's type; None when the type says nothing."""
    if isinstance(recv, AnyType):
        return [], f"the receiver of `.{name}()` is Any"
    if isinstance(recv, TypeVarType):
        recv = get_proper_type(recv.upper_bound)
    if isinstance(recv, LiteralType):
        recv = recv.fallback
    if isinstance(recv, TupleType):
        recv = recv.partial_fallback
    if isinstance(recv, TypeType):
        item = recv.item
        if isinstance(item, Instance):
            recv = item
    if isinstance(recv, Instance):
        for base in recv.type.mro:
            sym = base.names.get(name)
            if sym is None:
                continue
            if isinstance(sym.node, FuncDef | Decorator | OverloadedFuncDef):
                return [f"{base.fullname}.{name}"], None
            return None  # an attribute (a callable value): resolved by its type
        return None
    if isinstance(recv, UnionType):
        out: list[str] = []
        for member in recv.items:
            p = get_proper_type(member)
            if isinstance(p, NoneType):
                continue
            r = _methods(p, name)
            if r is None or r[1] is not None:
                return r
            out += [c for c in r[0] if c not in out]
        return out, None
    return None


def _narrow(cond: Expression, st: _State, truth: bool) -> _State:
    """The state in the branch where ``cond`` is ``truth``: a guard known to be None there
    (a failed trylock) is not held."""
    var: str | None = None
    none_when: bool | None = None
    if isinstance(cond, ComparisonExpr) and len(cond.operands) == 2:
        a, b = cond.operands
        if isinstance(a, NameExpr) and isinstance(b, NameExpr) and b.fullname == "builtins.None":
            var = a.name
            if cond.operators == ["is"]:
                none_when = True
            elif cond.operators == ["is not"]:
                none_when = False
    elif isinstance(cond, NameExpr):
        var, none_when = cond.name, False
    elif isinstance(cond, UnaryExpr) and cond.op == "not" and isinstance(cond.expr, NameExpr):
        var, none_when = cond.expr.name, True
    if var is not None and none_when is not None and none_when == truth:
        st.drop(var)
    return st


def _dead(st: _State) -> _State:
    out = st.copy()
    out.dead = True
    return out


def _children(e: Expression) -> list[Expression]:
    if isinstance(e, MemberExpr):
        return [e.expr]
    if isinstance(e, OpExpr):
        return [e.left, e.right]
    if isinstance(e, ComparisonExpr):
        return list(e.operands)
    if isinstance(e, UnaryExpr | StarExpr | AwaitExpr):
        return [e.expr]
    if isinstance(e, YieldExpr | YieldFromExpr):
        return [e.expr] if e.expr is not None else []
    if isinstance(e, AssignmentExpr):
        return [e.value]
    if isinstance(e, IndexExpr):
        return [e.base, e.index]
    if isinstance(e, SliceExpr):
        return [x for x in (e.begin_index, e.end_index, e.stride) if x is not None]
    if isinstance(e, ListExpr | TupleExpr | SetExpr):
        return list(e.items)
    if isinstance(e, DictExpr):
        return [x for kv in e.items for x in kv if x is not None]
    if isinstance(e, ConditionalExpr):
        return [e.cond, e.if_expr, e.else_expr]
    if isinstance(e, ListComprehension | SetComprehension):
        e = e.generator
    if isinstance(e, GeneratorExpr):
        return [*e.sequences, *(c for cs in e.condlists for c in cs), e.left_expr]
    if isinstance(e, DictionaryComprehension):
        parts = [*e.sequences, *(c for cs in e.condlists for c in cs), e.key, e.value]
        return [x for x in parts if x is not None]
    return []


def summarize(
    tree: MypyFile, path: str, types: dict[Expression, Type], finals: dict[str, int]
) -> ModuleSummary:
    """The summary of one type-checked module."""
    s = _Summarizer(tree, path, types)
    s.finals = finals
    return s.module()

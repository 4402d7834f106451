"""What hostile and careless user space does to a driver: the operations and their arguments.

Each ``draw_*`` function draws one operation's arguments from hypothesis (through the
``data`` object of the running rule) and returns the :class:`~safemm.fuzz._world.Op` that
performs it. Arguments are small and aimed: lengths of 1-8 pages; addresses relative to
what earlier calls returned (the driver's own mappings, their insides, their neighbours);
every protection; shared and private; file offsets inside and past the driver's range;
``MAP_FIXED`` over existing mappings; mremap in place, moving, to a fixed address, and with
``MREMAP_DONTUNMAP``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from safemm.model.mman import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from safemm.model.process import O_RDONLY, O_RDWR

from ._bystander import BystanderDriver
from ._world import DEVICE, OTHER_DEVICE, Op, Proc, Region, UserMapping, World

__all__ = [
    "OPERATIONS",
    "RACE_OPERATIONS",
    "IoctlArg",
    "Ioctls",
    "draw_operation",
    "draw_race",
    "start",
]

#: An ioctl's argument: a strategy, or a function of the caller's mappings that returns one.
IoctlArg: TypeAlias = (
    SearchStrategy[object] | Callable[[tuple[UserMapping, ...]], SearchStrategy[object]]
)
#: ioctl number → its argument.
Ioctls: TypeAlias = Mapping[int, IoctlArg]

#: The most tasks (processes and threads) a program keeps alive.
MAX_TASKS = 5
#: Regions later calls aim at (the most recent ones).
RECENT = 12

_PROTS = [
    PROT_NONE,
    PROT_READ,
    PROT_READ | PROT_WRITE,
    PROT_READ | PROT_EXEC,
    PROT_READ | PROT_WRITE | PROT_EXEC,
    PROT_WRITE,
]
_PROT_NAMES = {PROT_READ: "PROT_READ", PROT_WRITE: "PROT_WRITE", PROT_EXEC: "PROT_EXEC"}


def prot_text(prot: int) -> str:
    """``PROT_READ | PROT_WRITE`` for 3."""
    if prot == PROT_NONE:
        return "PROT_NONE"
    return " | ".join(n for bit, n in _PROT_NAMES.items() if prot & bit)


def _flags_text(flags: int, names: Mapping[int, str]) -> str:
    parts = [n for bit, n in names.items() if flags & bit]
    return " | ".join(parts) if parts else "0"


_MAP_NAMES = {
    MAP_SHARED: "MAP_SHARED",
    MAP_PRIVATE: "MAP_PRIVATE",
    MAP_ANONYMOUS: "MAP_ANONYMOUS",
    MAP_FIXED: "MAP_FIXED",
    MAP_FIXED_NOREPLACE: "MAP_FIXED_NOREPLACE",
}
_MREMAP_NAMES = {
    MREMAP_MAYMOVE: "MREMAP_MAYMOVE",
    MREMAP_FIXED: "MREMAP_FIXED",
    MREMAP_DONTUNMAP: "MREMAP_DONTUNMAP",
}


def _hex(n: int) -> str:
    return f"{n:#x}" if n >= 10 or n < 0 else str(n)


def value_text(v: object, world: World | None = None) -> str:
    """Python source for an ioctl argument (an address as its region, ``m2 + 0x1000``;
    other ints as hex; long runs of one byte compressed)."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, int):
        named = None if world is None else world.addr_name(v)
        if named is not None:
            return named
        return _hex(v) if abs(v) >= 4096 else repr(v)
    if isinstance(v, bytes | bytearray):
        b = bytes(v)
        if len(b) > 16 and b == b[:1] * len(b):
            return f"{b[:1]!r} * {len(b)}"
        if len(b) > 48:
            return repr(b)
        return repr(b)
    if isinstance(v, tuple):
        inner = ", ".join(value_text(x, world) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, list):
        return "[" + ", ".join(value_text(x, world) for x in v) + "]"
    return repr(v)


# ------------------------------------------------------------------------------------ draws


def _proc(world: World, data: st.DataObject) -> Proc:
    return data.draw(st.sampled_from(world.procs), label="task")


def _pages(data: st.DataObject, lo: int = 1, hi: int = 8) -> int:
    """A length in pages: mostly one or two (drivers often map exactly one), up to ``hi``."""
    if lo == 1 and hi >= 2:
        return data.draw(st.sampled_from([1, 1, 2, 2, 3, 4, hi]), label="pages")
    return data.draw(st.integers(lo, hi), label="pages")


def _region(world: World, data: st.DataObject) -> Region | None:
    if not world.regions:
        return None
    return data.draw(st.sampled_from(world.regions[-RECENT:]), label="region")


def _addr(world: World, data: st.DataObject, sub_page: bool = False) -> tuple[int, str]:
    """An address: a page of (or next to) a region earlier calls returned; if there is none,
    a fixed low address."""
    region = _region(world, data)
    if region is None:
        return world.addr_text(None, 0x1000_0000)
    page = data.draw(st.integers(-1, region.pages), label="page")
    off = page * PAGE_SIZE
    if sub_page:
        off += data.draw(st.sampled_from([0, 0, 8, PAGE_SIZE - 8]), label="offset")
    return world.addr_text(region, off)


def _fd(proc: Proc, data: st.DataObject, path: str | None = None) -> tuple[int, str] | None:
    fds = sorted((fd, v) for fd, (v, p) in proc.fds.items() if path is None or p == path)
    if not fds:
        return None
    return data.draw(st.sampled_from(fds), label="fd")


def draw_spawn(world: World, data: st.DataObject) -> Op:
    var = world.name("p")
    return Op(
        world.kernel.spawn,
        "kernel.spawn()",
        assign=var,
        after=lambda r: world.new_proc(r, var, {}),
        kind="spawn",
    )


def draw_fork(world: World, data: st.DataObject, proc: Proc) -> Op:
    var = world.name("p")
    return Op(
        proc.process.fork,
        f"{proc.var}.fork()",
        proc,
        var,
        lambda r: world.new_proc(r, var, dict(proc.fds)),
        "fork",
    )


def draw_thread(world: World, proc: Proc, data: st.DataObject | None = None) -> Op:
    var = world.name("p")
    return Op(
        proc.process.spawn_thread,
        f"{proc.var}.spawn_thread()",
        proc,
        var,
        lambda r: world.new_proc(r, var, proc.fds),
        "thread",
    )


def open_op(world: World, proc: Proc, path: str, flags: int = O_RDWR) -> Op:
    """``proc`` opens ``path`` (the bystander is registered the first time)."""
    if path == OTHER_DEVICE and not world.other_registered:
        world.other_registered = True
        world.op(
            Op(
                lambda: world.kernel.register_device(OTHER_DEVICE, BystanderDriver()),
                f'kernel.register_device("{OTHER_DEVICE}", BystanderDriver())',
                kind="register",
            )
        )
    var = world.name("f")
    text = f'{proc.var}.open("{path}"' + (", O_RDONLY)" if flags == O_RDONLY else ")")

    def after(fd: object) -> None:
        if isinstance(fd, int):
            proc.fds[fd] = (var, path)

    return Op(lambda: proc.process.open(path, flags), text, proc, var, after, "open")


def draw_open(world: World, data: st.DataObject, proc: Proc) -> Op:
    path = data.draw(st.sampled_from([DEVICE, DEVICE, OTHER_DEVICE]), label="path")
    flags = data.draw(st.sampled_from([O_RDWR, O_RDWR, O_RDONLY]), label="flags")
    return open_op(world, proc, path, flags)


def draw_close(world: World, data: st.DataObject, proc: Proc) -> Op:
    pick = _fd(proc, data)
    if pick is None:
        return draw_open(world, data, proc)
    fd, var = pick

    def after(_: object) -> None:
        proc.fds.pop(fd, None)

    return Op(
        lambda: proc.process.close(fd), f"{proc.var}.close({var})", proc, None, after, "close"
    )


def mmap_op(
    world: World,
    proc: Proc,
    fd: tuple[int, str] | None,
    pages: int,
    prot: int,
    flags: int,
    pgoff: int = 0,
    at: tuple[int, str] | None = None,
) -> Op:
    """``proc`` maps ``pages`` pages of ``fd`` (None: anonymous memory) at ``at`` (an
    address and how the program says it; None: anywhere)."""
    if fd is None:
        flags |= MAP_ANONYMOUS
        fdn, fd_text = -1, ""
    else:
        fdn, fd_var = fd
        fd_text = f", {fd_var}" + (f", {_hex(pgoff * PAGE_SIZE)}" if pgoff else "")
    addr, addr_text = (None, "None") if at is None else at
    length = pages * PAGE_SIZE
    text = (
        f"{proc.var}.mmap({addr_text}, {_hex(length)}, {prot_text(prot)}, "
        f"{_flags_text(flags, _MAP_NAMES)}{fd_text})"
    )
    var = world.name("m")
    return Op(
        lambda: proc.process.mmap(addr, length, prot, flags, fdn, pgoff * PAGE_SIZE),
        text,
        proc,
        var,
        lambda r: world.new_region(r, pages, var),
        "mmap",
    )


def draw_mmap(world: World, data: st.DataObject, proc: Proc) -> Op:
    anon = data.draw(st.integers(0, 3), label="anonymous?") == 0
    pick = None if anon else _fd(proc, data)
    pages = _pages(data)
    prot = data.draw(st.sampled_from(_PROTS), label="prot")
    flags = MAP_SHARED if data.draw(st.booleans(), label="shared") else MAP_PRIVATE
    pgoff = 0
    if pick is not None:
        pgoff = data.draw(
            st.one_of(st.integers(0, 8), st.sampled_from([15, 16, 63, 64, 1 << 20])), label="pgoff"
        )
    place = data.draw(st.sampled_from(["any", "any", "fixed", "hint", "noreplace"]), label="at")
    at = None
    if place != "any" and world.regions:
        at = _addr(world, data)
        if place == "fixed":
            flags |= MAP_FIXED
        elif place == "noreplace":
            flags |= MAP_FIXED_NOREPLACE
    return mmap_op(world, proc, pick, pages, prot, flags, pgoff, at)


def start(world: World) -> None:
    """Every program starts from a typical process: it has the driver open and mapped (one
    page, read-only, shared), and another device's pages mapped next to it; with
    concurrency, it has a second thread. (The reproducer keeps only what its failure
    needs.)"""
    var = world.name("p")
    world.op(
        Op(
            world.kernel.spawn,
            "kernel.spawn()",
            None,
            var,
            lambda r: world.new_proc(r, var, {}),
            "spawn",
        )
    )
    p = world.procs[0]
    world.op(open_op(world, p, DEVICE))
    world.op(open_op(world, p, OTHER_DEVICE))
    fds = sorted(p.fds.items())
    other = next(((fd, v) for fd, (v, path) in fds if path == OTHER_DEVICE), None)
    mine = next(((fd, v) for fd, (v, path) in fds if path == DEVICE), None)
    if other is not None:
        world.op(mmap_op(world, p, other, 2, PROT_READ, MAP_SHARED))
    if mine is not None:
        world.op(mmap_op(world, p, mine, 1, PROT_READ, MAP_SHARED))
    if world.concurrency:
        world.op(draw_thread(world, p))


def draw_munmap(world: World, data: st.DataObject, proc: Proc) -> Op:
    addr, at = _addr(world, data)
    length = _pages(data) * PAGE_SIZE
    return Op(
        lambda: proc.process.munmap(addr, length),
        f"{proc.var}.munmap({at}, {_hex(length)})",
        proc,
        kind="munmap",
    )


def draw_mprotect(world: World, data: st.DataObject, proc: Proc) -> Op:
    addr, at = _addr(world, data)
    length = _pages(data) * PAGE_SIZE
    prot = data.draw(st.sampled_from(_PROTS), label="prot")
    return Op(
        lambda: proc.process.mprotect(addr, length, prot),
        f"{proc.var}.mprotect({at}, {_hex(length)}, {prot_text(prot)})",
        proc,
        kind="mprotect",
    )


def draw_mremap(world: World, data: st.DataObject, proc: Proc) -> Op:
    region = _region(world, data)
    if region is None:
        return draw_mmap(world, data, proc)
    page = data.draw(st.sampled_from([0, 0, 0, 1]), label="page")
    addr, at = world.addr_text(region, page * PAGE_SIZE)
    old = _pages(data, 1, max(1, region.pages))
    mode = data.draw(
        st.sampled_from(["inplace", "maymove", "fixed", "fixed", "dontunmap"]), label="mode"
    )
    new = old if mode == "dontunmap" else _pages(data, 1, 12)
    flags = 0
    new_addr: int | None = None
    extra = ""
    if mode != "inplace":
        flags = MREMAP_MAYMOVE
    if mode == "dontunmap":
        flags |= MREMAP_DONTUNMAP
    if mode == "fixed":
        flags |= MREMAP_FIXED
        target = _region(world, data)
        if target is None or target is region:
            new_addr, nt = 0x3000_0000, "0x30000000"
        else:
            new_addr, nt = world.addr_text(target, 0)
        extra = f", {nt}"
    text = (
        f"{proc.var}.mremap({at}, {_hex(old * PAGE_SIZE)}, {_hex(new * PAGE_SIZE)}, "
        f"{_flags_text(flags, _MREMAP_NAMES)}{extra})"
    )
    var = world.name("m")
    return Op(
        lambda: proc.process.mremap(addr, old * PAGE_SIZE, new * PAGE_SIZE, flags, new_addr),
        text,
        proc,
        var,
        lambda r: world.new_region(r, new, var),
        "mremap",
    )


def draw_read(world: World, data: st.DataObject, proc: Proc) -> Op:
    addr, at = _addr(world, data, sub_page=True)
    n = data.draw(st.sampled_from([1, 16, PAGE_SIZE]), label="bytes")
    return Op(lambda: proc.process.read(addr, n), f"{proc.var}.read({at}, {n})", proc, kind="read")


def draw_write(world: World, data: st.DataObject, proc: Proc) -> Op:
    addr, at = _addr(world, data, sub_page=True)
    payload = data.draw(st.sampled_from([b"x", b"fuzz", b"\xff" * 16]), label="data")
    return Op(
        lambda: proc.process.write(addr, payload),
        f"{proc.var}.write({at}, {value_text(payload)})",
        proc,
        kind="write",
    )


def draw_uffd(world: World, data: st.DataObject, proc: Proc) -> Op:
    addr, at = _addr(world, data)
    length = _pages(data) * PAGE_SIZE
    return Op(
        lambda: proc.process.userfaultfd_register(addr, length),
        f"{proc.var}.userfaultfd_register({at}, {_hex(length)})",
        proc,
        kind="userfaultfd",
    )


def _default_arg(maps: tuple[UserMapping, ...]) -> SearchStrategy[object]:
    """A hostile ioctl argument for a driver whose ABI the fuzzer was not told: nothing,
    small numbers, addresses inside (and at the edges of) the caller's mappings, bytes, and
    (id, bytes) pairs."""
    addrs = [a for m in maps for a in (m.start, m.start + PAGE_SIZE, m.end - PAGE_SIZE, m.end)]
    choices: list[SearchStrategy[object]] = [
        st.none(),
        st.integers(-1, 64),
        st.binary(max_size=16),
        st.tuples(st.integers(0, 8), st.binary(min_size=1, max_size=16)),
    ]
    if addrs:
        choices.append(st.sampled_from(addrs))
    return st.one_of(choices)


def draw_ioctl(world: World, data: st.DataObject, proc: Proc, ioctls: Ioctls | None) -> Op:
    pick = _fd(proc, data, DEVICE) or _fd(proc, data)
    if pick is None:
        return draw_open(world, data, proc)
    fd, fd_var = pick
    maps = world.user_mappings(proc)
    spec: IoctlArg | None = None
    if ioctls:
        if data.draw(st.integers(0, 15), label="unknown cmd?") == 0:
            cmd = data.draw(st.integers(0, 2**32 - 1), label="cmd")
        else:
            cmd = data.draw(st.sampled_from(sorted(ioctls)), label="cmd")
            spec = ioctls[cmd]
    else:
        cmd = data.draw(st.one_of(st.integers(0, 15), st.integers(0, 2**32 - 1)), label="cmd")
    if spec is None:
        strategy = _default_arg(maps)
    elif isinstance(spec, SearchStrategy):
        strategy = spec
    else:
        strategy = spec(maps)
    arg = data.draw(strategy, label="arg")
    text = f"{proc.var}.ioctl({fd_var}, {_hex(cmd)}" + (
        ")" if arg is None else f", {value_text(arg, world)})"
    )
    return Op(lambda: proc.process.ioctl(fd, cmd, arg), text, proc, kind="ioctl")


def draw_exit(world: World, data: st.DataObject, proc: Proc) -> Op:
    def after(_: object) -> None:
        if proc in world.procs:
            world.procs.remove(proc)

    return Op(proc.process.exit, f"{proc.var}.exit()", proc, None, after, "exit")


def draw_maps(world: World, data: st.DataObject, proc: Proc) -> Op:
    return Op(proc.process.maps, f"{proc.var}.maps()", proc, kind="maps")


def draw_shrink(world: World, data: st.DataObject) -> Op:
    nr = data.draw(st.sampled_from([None, None, 1, 32]), label="nr_to_scan")
    k = world.kernel
    return Op(
        lambda: k.shrink(nr),
        "kernel.shrink()" if nr is None else f"kernel.shrink({nr})",
        kind="shrink",
    )


_SITES = ["alloc_page", "alloc_page", "trylock", "lock_vma_under_rcu"]


def draw_inject(world: World, data: st.DataObject) -> Op:
    site = data.draw(st.sampled_from(_SITES), label="site")
    n = data.draw(st.integers(1, 3), label="n")
    fi = world.kernel.fault_inject
    return Op(
        lambda: fi.fail_next(site, n),
        f'kernel.fault_inject.fail_next("{site}", {n})',
        kind="inject",
    )


def draw_kernel(world: World, data: st.DataObject) -> Op:
    """Memory pressure (kswapd runs the shrinkers) or fault injection."""
    what = data.draw(st.sampled_from(["shrink", "shrink", "inject", "pressure"]), label="kernel")
    if what == "shrink":
        return draw_shrink(world, data)
    if what == "inject":
        return draw_inject(world, data)
    return draw_pressure(world, data)


def draw_pressure(world: World, data: st.DataObject) -> Op:
    site = data.draw(st.sampled_from(_SITES), label="site")
    frac = data.draw(st.sampled_from([0.0, 0.1, 0.3]), label="fraction")
    seed = data.draw(st.integers(0, 255), label="seed")
    fi = world.kernel.fault_inject
    return Op(
        lambda: fi.fail_fraction(site, frac, seed),
        f'kernel.fault_inject.fail_fraction("{site}", {frac}, seed={seed})',
        kind="inject",
    )


_ProcDraw = Callable[[World, st.DataObject, Proc], Op]

#: Operations one task performs, by name.
PROC_OPERATIONS: dict[str, _ProcDraw] = {
    "open": draw_open,
    "close": draw_close,
    "mmap": draw_mmap,
    "munmap": draw_munmap,
    "mprotect": draw_mprotect,
    "mremap": draw_mremap,
    "read": draw_read,
    "write": draw_write,
    "userfaultfd": draw_uffd,
    "fork": draw_fork,
    "thread": lambda w, d, p: draw_thread(w, p, d),
    "exit": draw_exit,
    "maps": draw_maps,
}
#: The rules of the machine (fewer rules, each drawing among related operations, make
#: each one more likely): ``access`` is a read or a write, ``task`` a fork, a thread or a new
#: process, ``kernel`` memory pressure or fault injection.
OPERATIONS = [
    "open",
    "close",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "access",
    "userfaultfd",
    "task",
    "exit",
    "ioctl",
    "kernel",
]
#: What a task may do in a race (the driver's own calls weighted up: they are what races
#: with the rest).
RACE_OPERATIONS = [
    *("ioctl", "ioctl", "ioctl", "mmap", "mmap", "munmap", "munmap"),
    *("mprotect", "mremap", "read", "write", "close", "open", "fork", "exit", "userfaultfd"),
]


def draw_operation(world: World, data: st.DataObject, kind: str, ioctls: Ioctls | None) -> Op:
    """The operation ``kind`` with drawn arguments (by a drawn task, for task operations)."""
    if kind == "kernel":
        return draw_kernel(world, data)
    if kind == "task":
        kind = data.draw(st.sampled_from(["fork", "thread", "spawn"]), label="task")
        if kind == "spawn" or not world.procs:
            return draw_spawn(world, data)
    proc = _proc(world, data)
    if kind == "access":
        kind = data.draw(st.sampled_from(["read", "write", "maps"]), label="access")
    if kind == "ioctl":
        return draw_ioctl(world, data, proc, ioctls)
    return PROC_OPERATIONS[kind](world, data, proc)


def draw_race(world: World, data: st.DataObject, ioctls: Ioctls | None) -> None:
    """2-3 tasks (and maybe kswapd) each issue one call, at once; run it."""
    n = min(len(world.procs), data.draw(st.integers(2, 3), label="tasks"))
    procs = data.draw(
        st.lists(st.sampled_from(world.procs), min_size=n, max_size=n, unique_by=id),
        label="racers",
    )
    ops: list[Op] = []
    # Half the races are of one call against itself (two ALLOCs, two munmaps): the classic
    # check-then-act window.
    same = data.draw(st.booleans(), label="same call?")
    first = data.draw(st.sampled_from(RACE_OPERATIONS), label="call")
    for i, proc in enumerate(procs):
        kind = first if i == 0 or same else data.draw(st.sampled_from(RACE_OPERATIONS))
        ops.append(
            draw_ioctl(world, data, proc, ioctls)
            if kind == "ioctl"
            else PROC_OPERATIONS[kind](world, data, proc)
        )
    shrink = len(ops) < 2 or data.draw(st.integers(0, 3), label="kswapd?") == 0
    world.schedule.data = data
    try:
        world.race(ops, shrink)
    finally:
        world.schedule.data = None

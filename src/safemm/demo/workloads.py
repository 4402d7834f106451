"""The demo's workloads: the same user-space programs for every strategy, deterministic from
the seed (every random choice comes from :attr:`Harness.rng`, and fault injection from the
kernel's own seeded generator).

- ``ping-pong`` — two processes send to each other and answer each message.
- ``server-clients`` — one server, six clients: requests in bursts, a reply to each.
- ``bursty-pressure`` — three senders flood a lagging receiver on a machine with little RAM:
  allocations find memory short and reclaim directly; kswapd passes run in between.
- ``receiver-churn`` — while the stream runs, the receiver splits its mapping, moves it
  (whole, then half) with mremap, forks, replaces the mapping with anonymous memory and opens
  the device again, and finally exits while a child keeps the file open.
- ``fault-injection`` — a shorter mix of all of the above with the model's fault injection
  failing trylocks, ``lock_vma_under_rcu`` and page allocations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .userspace import Harness, View

__all__ = ["WORKLOADS", "Workload"]


@dataclass(frozen=True)
class Workload:
    """A named user-space program and the machine it needs."""

    name: str
    run: Callable[[Harness], None]
    description: str
    nr_pages: int = 16384
    faults: dict[str, float] = field(default_factory=dict)


def stream(h: Harness, src: View, dst: View, n: int, keep: float = 0.3) -> None:
    """``n`` messages from ``src`` to ``dst``; ``dst`` receives most at once, keeps some
    buffers for a while and frees the oldest ones it keeps."""
    for _ in range(n):
        h.send(src, dst.channel, h.payload(2))
        if h.rng.random() < 0.8:
            off = h.recv(dst)
            if off is not None and h.rng.random() >= keep:
                h.free(dst, off)
        held = dst.channel.held
        while len(held) > 4:
            h.free(dst, next(iter(held)))


def fill(h: Harness, src: View, dst: View, n: int = 30, pages: int = 2) -> None:
    """``n`` messages of ``pages`` pages each, all received and held, then all freed: the
    area's first ``n * pages`` pages now have pages (on the list_lru) behind them."""
    for _ in range(n):
        h.send(src, dst.channel, h.rng.randbytes(pages * 4096))
    h.drain(dst, free=False)
    h.free_all(dst)


def ping_pong(h: Harness) -> None:
    """Two processes; each message is received, read, freed and answered."""
    a = h.endpoint("ping")
    b = h.endpoint("pong")
    for r in range(60):
        h.send(a, b.channel, h.payload())
        h.drain(b)
        h.send(b, a.channel, h.payload())
        h.drain(a)
        if r % 20 == 19:
            h.shrink()


def server_clients(h: Harness) -> None:
    """One server answers requests from six clients that arrive in bursts."""
    server = h.endpoint("server", npages=128)
    clients = [h.endpoint(f"client{i}") for i in range(6)]
    by_id = {c.channel.id: c for c in clients}
    for r in range(40):
        senders = h.rng.sample(clients, h.rng.randint(1, 4))
        for c in senders:
            h.send(c, server.channel, c.channel.id.to_bytes(4, "little") + h.payload(2))
        for _ in range(len(server.channel.expected)):
            off = h.recv(server)
            if off is None:
                continue
            client = by_id[int.from_bytes(server.channel.held[off][:4], "little")]
            h.free(server, off)
            h.send(server, client.channel, h.payload(2))
        for c in senders:
            h.drain(c)
        if r % 10 == 9:
            h.shrink()


def bursty(h: Harness, bursts: int = 30) -> None:
    """Three senders send bursts to one receiver that lags behind and keeps buffers; kswapd
    runs every fifth burst, and allocations reclaim directly when RAM runs out."""
    r = h.endpoint("receiver", npages=256)
    senders = [h.endpoint(f"sender{i}", npages=16) for i in range(3)]
    # One message larger than the whole area: ENOSPC.
    h.send(senders[0], r.channel, bytes(257 * 4096))
    for b in range(bursts):
        s = h.rng.choice(senders)
        for _ in range(h.rng.randint(8, 24)):
            h.send(s, r.channel, h.payload(4))
        for _ in range(h.rng.randint(0, len(r.channel.expected))):
            h.recv(r)
        for off in list(r.channel.held):
            if h.rng.random() < 0.5:
                h.free(r, off)
        if b % 5 == 4:
            h.shrink(h.rng.randint(16, 64))
    h.drain(r)
    h.free_all(r)
    h.shrink()


def churn(h: Harness) -> None:
    """The receiver changes its address space in the middle of the stream."""
    s = h.endpoint("sender", npages=16)
    r = h.endpoint("receiver", npages=64)
    stream(h, s, r, 10)
    h.free_bogus(r)
    # Split: the pieces stay where they were.
    h.split(r, 8, 8)
    h.recheck_held(r)
    stream(h, s, r, 10)
    # Move the whole mapping: its start moves, and the addresses RECV returns with it.
    h.move(r, 0, 64)
    h.recheck_held(r)
    stream(h, s, r, 10)
    # Fork: the child inherits the file (and, if not VM_DONTCOPY, the mapping).
    h.send(s, r.channel, h.payload(2))
    child = h.fork(r)
    h.recv(child)
    h.recheck_held(child)
    h.shrink()
    h.recheck_held(r)
    h.recheck_held(child)
    h.exit(child)
    stream(h, s, r, 5)
    # Move the upper half away, and back: the area's pages there are not where the driver
    # puts them, then they are again (with the PTEs the first move carried away).
    fill(h, s, r)
    upper = r.layout[32]
    h.move(r, 32, 32)
    h.recheck_held(r)
    stream(h, s, r, 8)
    h.move(r, 32, 32, dest=upper)
    h.recheck_held(r)
    fill(h, s, r)
    # Move the lower half alone: the start moves, the upper half stays behind.
    h.move(r, 0, 32)
    h.recheck_held(r)
    stream(h, s, r, 8)
    h.shrink()
    # Put the upper half where the lower half is: the driver's VMA, at the wrong offset.
    h.move(r, 32, 32, dest=r.layout[0])
    h.recheck_held(r)
    stream(h, s, r, 8)
    fill(h, s, r)
    # Replace the mapping with anonymous memory at the same place, with a buffer in flight.
    h.send(s, r.channel, h.payload(2))
    h.free_all(r)
    base = h.unmap(r)
    h.send(s, r.channel, h.payload(2))
    h.map_anon(r, base)
    h.send(s, r.channel, h.payload(2))
    h.drain(r)
    old = r.channel
    h.close(r)
    h.send(s, old, h.payload(2))
    h.shrink()
    # Open and map again, in the same process; then move the start and exit, while a child
    # keeps the file open.
    r2 = h.endpoint(proc=r.proc, npages=64)
    stream(h, s, r2, 10)
    fill(h, s, r2)
    h.move(r2, 0, 32)
    stream(h, s, r2, 5)
    h.free_all(r2)
    child2 = h.fork(r2)
    h.exit(r2)
    for _ in range(2):
        h.send(s, r2.channel, h.payload(2))
    h.drain(child2)
    h.shrink()
    h.exit(child2)
    r3 = h.endpoint("receiver3", npages=64)
    stream(h, s, r3, 10)
    h.drain(r3)
    h.free_all(r3)
    h.shrink()


def fault_injection(h: Harness) -> None:
    """A shorter mix of every workload, with fault injection on."""
    a = h.endpoint("ping")
    b = h.endpoint("pong")
    for r in range(20):
        h.send(a, b.channel, h.payload())
        h.drain(b)
        h.send(b, a.channel, h.payload())
        h.drain(a)
        if r % 4 == 3:
            h.shrink()
    bursty(h, bursts=10)
    churn(h)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("ping-pong", ping_pong, "two processes, each message answered"),
        Workload("server-clients", server_clients, "one server, six clients, bursts"),
        Workload(
            "bursty-pressure",
            bursty,
            "three senders flood a lagging receiver; 128 pages of RAM",
            nr_pages=128,
        ),
        Workload(
            "receiver-churn",
            churn,
            "the receiver splits, mremaps, forks, replaces its mapping, exits",
        ),
        Workload(
            "fault-injection",
            fault_injection,
            "all of the above, shorter, with trylocks, per-VMA locks and allocations failing",
            faults={"trylock": 0.25, "lock_vma_under_rcu": 0.3, "alloc_page": 0.08},
        ),
    )
}

"""One narrated session with one binder-style driver, from user space.

``python -m examples.binder.session [eager-insert|insert-on-receive|fault-and-unmap|lru-reclaim]``

Two processes open ``/dev/safebinder`` and map it read-only; one sends the other a
message of two and a half pages; the receiver picks it up and reads it, frees it, and memory
pressure reclaims the pages. Then the receiver moves its mapping with mremap and forks, and
the session shows who can still receive. Every step prints what the kernel did — the model's
counters — so the strategies can be compared by eye; at the end the machine is checked (no
splat in dmesg, no leak, every invariant).
"""

from __future__ import annotations

import sys

from safemm import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_NONE,
    PROT_READ,
    BusError,
    Kernel,
    KernelError,
)
from safemm.demo.drivers import STRATEGIES
from safemm.demo.drivers.abi import (
    DEVICE_PATH,
    SAFEBINDER_FREE,
    SAFEBINDER_GET_ID,
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
    parse_recv,
)

#: The counters worth watching, with short names.
WATCH = {
    "insert_page": "vm_insert_page",
    "pgfault": "handle_mm_fault",
    "vma_lock_retry": "retried under mmap_lock",
    "mmap_read_lock": "mmap_read_lock",
    "mmap_read_trylock": "mmap_read_trylock",
    "vma_lock_success": "per-VMA lock",
    "mmget": "mmget",
    "ptes_zapped": "PTEs zapped",
    "unmap_mapping_range": "unmap_mapping_range",
}


class Narrator:
    """Prints each step with the counters that changed during it."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.last = kernel.counters.snapshot()

    def step(self, what: str) -> None:
        """Print ``what`` and the counters it moved."""
        now = self.kernel.counters.snapshot()
        moved = [
            f"{label} +{now[key] - self.last[key]}"
            for key, label in WATCH.items()
            if now[key] != self.last[key]
        ]
        self.last = now
        print(f"  {what:<60} {', '.join(moved) or '-'}")


def session(strategy: str) -> None:
    """Run the session with the driver of ``strategy``."""
    kernel = Kernel()
    driver = STRATEGIES[strategy]()
    kernel.register_device(DEVICE_PATH, driver)
    say = Narrator(kernel)
    print(f"{strategy}:")

    sender, receiver = kernel.spawn("sender"), kernel.spawn("receiver")
    sfd, rfd = sender.open(DEVICE_PATH), receiver.open(DEVICE_PATH)
    sender.mmap(None, 4 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, sfd)
    base = receiver.mmap(None, 16 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, rfd)
    target = receiver.ioctl(rfd, SAFEBINDER_GET_ID)
    say.step("open + mmap (read-only) in both processes")

    message = b"hello from the sender! " * 450  # 10350 bytes: three pages
    sender.ioctl(sfd, SAFEBINDER_SEND, (target, message))
    say.step("SEND 3 pages")
    addr, length = parse_recv(receiver.ioctl(rfd, SAFEBINDER_RECV))
    say.step(f"RECV -> ({addr:#x}, {length})")
    assert receiver.read(addr, length) == message
    say.step("the receiver reads the message: intact")
    receiver.ioctl(rfd, SAFEBINDER_FREE, addr)
    say.step("FREE: the pages become reclaimable")
    freed = kernel.shrink()
    say.step(f"memory pressure: kswapd reclaims {freed} pages")
    if not freed:
        # lru-reclaim: core reclaim saw the receiver's young PTEs and gave the pages a second
        # trip around the inactive list; unused since, they go on the next pass.
        freed = kernel.shrink()
        say.step(f"memory pressure again: kswapd reclaims {freed} pages")
    try:
        receiver.read(addr, 1)
    except BusError:
        say.step("reading the freed buffer now: SIGBUS")

    # Move the mapping: reserve a free range, then mremap onto it (MREMAP_FIXED).
    spot = receiver.mmap(None, 16 * PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
    flags = MREMAP_MAYMOVE | MREMAP_FIXED
    new = receiver.mremap(base, 16 * PAGE_SIZE, 16 * PAGE_SIZE, flags, spot)
    say.step(f"the receiver moves its mapping ({base:#x} -> {new:#x})")
    sender.ioctl(sfd, SAFEBINDER_SEND, (target, b"after the move"))
    addr, length = parse_recv(receiver.ioctl(rfd, SAFEBINDER_RECV))
    assert receiver.read(addr, length) == b"after the move"
    say.step(f"SEND + RECV + read at {addr:#x}: intact")
    receiver.ioctl(rfd, SAFEBINDER_FREE, addr)

    child = receiver.fork()
    sender.ioctl(sfd, SAFEBINDER_SEND, (target, b"for the child?"))
    try:
        addr, length = parse_recv(child.ioctl(rfd, SAFEBINDER_RECV))
        data = child.read(addr, length)
        say.step(f"fork; the child receives and reads {data!r}")
    except KernelError as e:
        say.step(f"fork; the child may not receive ({e.strerror})")
    child.exit()

    receiver.exit()
    sender.exit()
    kernel.flush_work()
    kernel.check_invariants()
    print(f"  dmesg: {'clean' if not kernel.dmesg else kernel.dmesg}")


def main(argv: list[str]) -> None:
    """Run the session for the named strategies (all of them by default)."""
    for name in argv or list(STRATEGIES):
        session(name)
        print()


if __name__ == "__main__":
    main(sys.argv[1:])

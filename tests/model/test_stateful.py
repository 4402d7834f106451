# mypy: disallow-any-decorated=False
# (mypy.ini's [mypy-tests.*] setting does not reach this module's name; hypothesis's rule
# decorators return Callable[..., None].)
"""A hypothesis state machine over random syscall sequences in several processes, checked
against a page-level reference model of Linux.

The machine drives anonymous (private and shared) mappings, a memfd (shared and private
mappings of it, ``ftruncate``, ``pread``, ``pwrite``) and two test devices — ``A``,
whose ``->mmap`` inserts pool pages (VM_MIXEDMAP) and refuses some offsets *after* inserting,
and ``B``, whose vm_ops have ``open``/``close``/``fault``/``may_split``/``mremap`` and which
sets VM_DONTEXPAND — through mmap, munmap, mprotect, mremap, madvise (DONTNEED, DONTFORK,
DOFORK, WIPEONFORK, KEEPONFORK), mlock, munlock, fork, exit, loads and stores, failing calls
included. madvise, mlock and munlock are made on ranges without device pages (the devices'
VM_SPECIAL rules for them are unit-tested in ``test_madvise.py`` and ``test_mlock.py``).
Arguments are small: page slots in a 64-page window (each mm's
``mmap_base`` is set to the window's end, so top-down placement lands in it).

The reference (:class:`Sim`) predicts, for every call, the errno Linux returns and the state it
leaves — page by page: which pages are mapped, with which protection, backing (anonymous
memory, which shmem or memfd page, which device page), ``VM_MAYWRITE``, VM_LOCKED,
VM_DONTCOPY, VM_WIPEONFORK and contents, and the memfd's size and contents — following the
kernel's order of checks (mm/mmap.c ``do_mmap``, mm/vma.c ``do_vmi_munmap``, mm/mprotect.c
``do_mprotect_pkey``, mm/mremap.c ``do_mremap``/``remap_move``/``mremap_to``/``mremap_at``,
mm/madvise.c ``madvise_walk_vmas``, mm/mlock.c ``do_mlock``/``apply_vma_lock_flags`` and
mm/gup.c ``__mm_populate``, mm/shmem.c ``shmem_setattr``/``shmem_file_read_iter``/
``shmem_file_write_iter``, kernel/fork.c ``dup_mmap``)
including Linux's partial application (mprotect up to the hole; MREMAP_FIXED's destination
already unmapped; a multi-VMA move stopped half-way). VMA boundaries are the model's business
(checked by ``Kernel.check_invariants`` and the unit tests), except those of device B's VMAs,
whose splits ``->may_split`` can veto: the reference tracks them and compares.

After every step: ``Kernel.check_invariants()``; the model's VMAs match the reference page by
page; device B's VMA extents match; every device-B mmap has 1 + opens - closes live pieces;
no lock is held; and a refused call that Linux refuses before changing anything left the whole
model unchanged (snapshot comparison). At the end every page is read back and compared, all
processes exit, and the machine must be quiescent with every device page unmapped.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from typing_extensions import override

from safemm.model import BusError, Kernel, KernelError, Process, SegmentationFault, Vma
from safemm.model.errors import SEGV_MAPERR
from safemm.model.mman import (
    MADV_DOFORK,
    MADV_DONTFORK,
    MADV_DONTNEED,
    MADV_KEEPONFORK,
    MADV_WIPEONFORK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SHIFT,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
)
from safemm.model.process import O_RDONLY
from safemm.model.vm_flags import VM_DONTEXPAND, VM_MAYSHARE, VM_MAYWRITE, VM_SPECIAL

from .strategies import (
    P,
    Snapshot,
    TestDevice,
    assert_unchanged,
    lengths,
    new_lengths,
    prots,
    slots,
    snapshot,
)

BASE = 0x4000_0000
BASE_VPN = BASE >> PAGE_SHIFT
WINDOW = 64
#: Device pool size (pages); device A refuses mappings past it (ENXIO).
POOL = 64


def refused(pgoff: int) -> bool:
    """Device A refuses (EPERM, after inserting its pages) mappings starting at these file
    pages."""
    return pgoff % 8 == 5


#: Bytes of each page the reference tracks (loads and stores stay inside them).
CW = 16
#: What the machine maps: private anonymous memory, shared anonymous memory (shmem), the
#: memfd, test device "A" (inserts its pages in ->mmap) or "B" (hooks, ->fault).
KINDS = st.sampled_from(["anon", "shm", "memfd", "A", "B"])
ADVICE = st.sampled_from(
    [MADV_DONTNEED, MADV_DONTFORK, MADV_DOFORK, MADV_WIPEONFORK, MADV_KEEPONFORK]
)
MMAP_MIN_VPN = 0x10000 >> PAGE_SHIFT


def veto(vpn: int) -> bool:
    """Device B's ``->may_split`` refuses splits at these pages."""
    return (vpn - BASE_VPN) % 5 == 3


# --------------------------------------------------------------------------------------------
# the reference


class Shm:
    """A shmem file: behind one MAP_SHARED|MAP_ANONYMOUS mmap, or the machine's memfd.
    ``size`` bytes long, ``npages`` pages (faults at or past it are SIGBUS); contents by page
    offset (the first ``CW`` bytes of each page)."""

    def __init__(self, npages: int) -> None:
        self.npages = npages
        self.size = npages * P
        self.data: dict[int, bytearray] = {}
        #: The model's shmem inode number, once seen.
        self.ino: int | None = None


class DevRef:
    """A test device's pool contents as the reference sees them."""

    def __init__(self, name: str, dev: TestDevice) -> None:
        self.name = name
        self.dev = dev
        self.data = [bytearray(dev.pool[i].read(0, CW)) for i in range(POOL)]


@dataclasses.dataclass
class RPage:
    """One mapped page of one process, as Linux would have it.

    ``kind``: "anon", "shm", "memfd", "A" or "B". ``cell`` is the page's private contents
    (anonymous memory once written, or a copy-on-write copy of a file page); None reads as the
    backing (zeros for anonymous memory). ``present``: device A's pages have a PTE (they have
    no ``->fault``: without one, SIGBUS). ``locked``, ``dontcopy``, ``wipe``: the VMA's
    VM_LOCKED, VM_DONTCOPY and VM_WIPEONFORK.
    """

    prot: int
    kind: str
    shared: bool
    mayw: bool
    src: Shm | DevRef | None
    pgoff: int
    cell: bytearray | None = None
    present: bool = True
    locked: bool = False
    dontcopy: bool = False
    wipe: bool = False

    def clone(self) -> RPage:
        return dataclasses.replace(self, cell=None if self.cell is None else bytearray(self.cell))

    def fresh(self, pgoff: int) -> RPage:
        """A page of the same VMA at another file offset, not faulted in yet."""
        return dataclasses.replace(self, pgoff=pgoff, cell=None, present=self.kind != "A")


def expect_access(rp: RPage | None, write: bool) -> str | None:
    """The signal a load/store gets (x86 ``access_error``, ``do_fault``, ``shmem_fault``)."""
    if rp is None:
        return "MAPERR"
    if write and not rp.prot & PROT_WRITE:
        return "ACCERR"
    if not rp.prot & (PROT_READ | PROT_WRITE | PROT_EXEC):
        return "ACCERR"
    if rp.kind == "A" and not rp.present:
        return "BUS"
    if isinstance(rp.src, Shm) and rp.pgoff >= rp.src.npages:
        return "BUS"
    return None


def content(rp: RPage) -> bytes:
    if rp.cell is not None:
        return bytes(rp.cell)
    if isinstance(rp.src, Shm):
        return bytes(rp.src.data.get(rp.pgoff, bytes(CW)))
    if isinstance(rp.src, DevRef):
        return bytes(rp.src.data[rp.pgoff % POOL])
    return bytes(CW)


def store(rp: RPage, off: int, data: bytes) -> None:
    end = off + len(data)
    if rp.kind == "anon" or (not rp.shared and rp.cell is not None):
        if rp.cell is None:
            rp.cell = bytearray(CW)
        rp.cell[off:end] = data
    elif not rp.shared:  # copy on write
        rp.cell = bytearray(content(rp))
        rp.cell[off:end] = data
    elif isinstance(rp.src, Shm):
        rp.src.data.setdefault(rp.pgoff, bytearray(CW))[off:end] = data
    else:
        assert isinstance(rp.src, DevRef)
        rp.src.data[rp.pgoff % POOL][off:end] = data


class Expected(Exception):
    """The reference's prediction that the call fails with ``err``; ``unchanged`` when Linux
    fails it before changing anything."""

    def __init__(self, err: int, unchanged: bool) -> None:
        super().__init__(errno.errorcode[err])
        self.err = err
        self.unchanged = unchanged


@dataclasses.dataclass
class LV:
    """A VMA of the model's state before the call (boundaries in pages)."""

    start: int
    end: int
    prot: int
    mayw: bool
    shared: bool
    devb: bool
    special: bool
    pgoff: int


class Sim:
    """One call's simulation on a copy of one process's reference."""

    def __init__(self, m: Machine, p: Process) -> None:
        self.m = m
        self.pages: dict[int, RPage] = dict(m.ref[p.pid])
        self.devb: list[tuple[int, int]] = list(m.devb[p.pid])
        self.layout = [
            LV(
                v.vm_start >> PAGE_SHIFT,
                v.vm_end >> PAGE_SHIFT,
                v.vm_flags & 7,
                bool(v.vm_flags & VM_MAYWRITE),
                bool(v.vm_flags & VM_MAYSHARE),
                v.vm_ops is m.B.dev.vm_ops,
                bool(v.vm_flags & VM_SPECIAL),
                v.vm_pgoff,
            )
            for v in p.mm.vmas()
        ]
        #: Something (even a split) may have changed.
        self.changed = False
        self.mmap_base = p.mm.mmap_base >> PAGE_SHIFT

    # -- helpers

    def fail(self, err: int) -> Expected:
        return Expected(err, not self.changed)

    def lv_at(self, vpn: int) -> LV | None:
        for lv in self.layout:
            if lv.start <= vpn < lv.end:
                return lv
        return None

    def devb_strictly_containing(self, vpn: int) -> tuple[int, int] | None:
        for a, b in self.devb:
            if a < vpn < b:
                return a, b
        return None

    def free(self, s: int, e: int) -> bool:
        return all(v not in self.pages for v in range(s, e))

    def cut_devb(self, s: int, e: int) -> None:
        out: list[tuple[int, int]] = []
        for a, b in self.devb:
            if b <= s or a >= e:
                out.append((a, b))
                continue
            if a < s:
                out.append((a, s))
            if b > e:
                out.append((e, b))
        self.devb = sorted(out)

    def split_devb(self, at: int) -> None:
        ext = self.devb_strictly_containing(at)
        if ext is not None:
            self.devb.remove(ext)
            self.devb = sorted([*self.devb, (ext[0], at), (at, ext[1])])

    # -- munmap: do_vmi_munmap → vms_gather_munmap_vmas

    def unmap(self, s: int, e: int) -> None:
        if self.free(s, e):
            return
        if self.devb_strictly_containing(s) is not None and veto(s):
            raise self.fail(errno.EINVAL)
        start_split = s in self.pages and s - 1 in self.pages
        if self.devb_strictly_containing(e) is not None and veto(e):
            # the start split (with its ->open) stays made
            self.changed = self.changed or start_split
            self.split_devb(s)
            raise self.fail(errno.EINVAL)
        for v in range(s, e):
            self.pages.pop(v, None)
        self.cut_devb(s, e)
        self.changed = True

    def munmap(self, s: int, n: int) -> None:
        if n == 0:
            raise self.fail(errno.EINVAL)
        self.unmap(s, s + n)

    # -- mprotect: do_mprotect_pkey

    def mprotect(self, s: int, n: int, prot: int) -> None:
        if n == 0:
            return
        e = s + n
        vmas = [lv for lv in self.layout if lv.end > s and lv.start < e]
        if not vmas or vmas[0].start > s:
            raise self.fail(errno.ENOMEM)
        tmp = vmas[0].start
        err = None
        x = e
        for lv in vmas:
            if lv.start != tmp:
                err, x = errno.ENOMEM, tmp
                break
            if prot & PROT_WRITE and not lv.mayw:
                err, x = errno.EACCES, max(lv.start, s)
                break
            if lv.prot != prot and lv.devb:
                if lv.start < s and veto(s):
                    err, x = errno.EINVAL, s
                    break
                if lv.end > e and veto(e):
                    if lv.start < s:
                        self.split_devb(s)
                        self.changed = True
                    err, x = errno.EINVAL, max(lv.start, s)
                    break
                if lv.start < s:
                    self.split_devb(s)
                if lv.end > e:
                    self.split_devb(e)
            tmp = min(lv.end, e)
        else:
            if tmp < e:
                err, x = errno.ENOMEM, tmp
        for v in range(s, x):
            rp = self.pages[v]
            if rp.prot != prot:
                self.pages[v] = dataclasses.replace(rp, prot=prot)
                self.changed = True
                # mprotect_fixup: a locked private VMA made writable is populated
                if rp.locked and not rp.shared and not rp.prot & PROT_WRITE and prot & PROT_WRITE:
                    self.populate(v, v + 1, True)
        if err is not None:
            raise self.fail(err)

    # -- population: mm/gup.c __mm_populate / populate_vma_page_range

    def populate(self, s: int, e: int, ignore_errors: bool) -> bool:
        """Fault ``[s, e)`` in page by page, as GUP does: a private writable page is faulted
        for write (``FOLL_WRITE``), which copies a file page (COW); a PROT_NONE page (no
        ``FOLL_FORCE``) or a shmem page at or past the end of its file (SIGBUS) is -EFAULT:
        the walk stops there (``ignore_errors``: it goes on at the next VMA, i.e. the next
        page of another protection). Holes are skipped. Returns False on a stop."""
        for v in range(s, e):
            rp = self.pages.get(v)
            if rp is None:
                continue
            self.changed = True
            beyond = isinstance(rp.src, Shm) and rp.pgoff >= rp.src.npages
            if not rp.prot or beyond:
                if not ignore_errors:
                    return False
                continue
            if rp.prot & PROT_WRITE and not rp.shared and rp.cell is None and rp.kind != "anon":
                rp.cell = bytearray(content(rp))
        return True

    def locked_populate(self, s: int, e: int) -> None:
        """``mm_populate`` of a grown part of a locked mapping (errors ignored)."""
        if any(self.pages[v].locked for v in range(s, e) if v in self.pages):
            self.populate(s, e, True)

    # -- madvise: do_madvise → madvise_walk_vmas

    def madvise(self, s: int, n: int, advice: int) -> None:
        """Apply ``advice`` VMA by VMA (here: page by page, in order), stopping at the first
        VMA that refuses it (EINVAL: MADV_DONTNEED on VM_LOCKED, MADV_WIPEONFORK on a shared
        or file VMA); holes are skipped and make the call ENOMEM at the end."""
        hole = False
        for v in range(s, s + n):
            rp = self.pages.get(v)
            if rp is None:
                hole = True
                continue
            if advice == MADV_DONTNEED:
                if rp.locked:
                    raise self.fail(errno.EINVAL)
                self.changed = True
                if not rp.shared:
                    self.pages[v] = dataclasses.replace(rp, cell=None)
                continue
            if advice == MADV_WIPEONFORK and rp.kind != "anon":
                raise self.fail(errno.EINVAL)
            if advice in (MADV_DONTFORK, MADV_DOFORK):
                new = dataclasses.replace(rp, dontcopy=advice == MADV_DONTFORK)
            else:
                new = dataclasses.replace(rp, wipe=advice == MADV_WIPEONFORK)
            if new != rp:
                self.pages[v] = new
                self.changed = True
        if hole:
            raise self.fail(errno.ENOMEM)

    # -- mlock, munlock: do_mlock → apply_vma_lock_flags, then __mm_populate

    def lock(self, s: int, n: int, on: bool) -> None:
        """Set or clear VM_LOCKED from ``s`` to the first hole (ENOMEM at the hole; ENOMEM
        before anything if ``s`` is not mapped); mlock then populates the whole range and is
        ENOMEM if population stops."""
        if s not in self.pages:
            raise self.fail(errno.ENOMEM)
        e = s + n
        for v in range(s, e):
            rp = self.pages.get(v)
            if rp is None:
                raise self.fail(errno.ENOMEM)
            if rp.locked != on:
                self.pages[v] = dataclasses.replace(rp, locked=on)
                self.changed = True
        if on and not self.populate(s, e, False):
            raise self.fail(errno.ENOMEM)

    # -- mmap: do_mmap → __mmap_region

    def mmap(
        self,
        s: int,
        n: int,
        prot: int,
        kind: str,
        shared: bool,
        mode: str,
        pgoff: int,
        ro: bool,
        got: int | None,
    ) -> int:
        if n == 0:
            raise self.fail(errno.EINVAL)
        if mode == "noreplace" and not self.free(s, s + n):
            raise self.fail(errno.EEXIST)
        dev = kind in ("A", "B")
        if dev and shared and ro and prot & PROT_WRITE:
            raise self.fail(errno.EACCES)
        fixed = mode in ("fixed", "noreplace")
        if fixed:
            # __mmap_region: the old mappings are gone before ->mmap runs
            self.unmap(s, s + n)
        if kind == "A" and pgoff + n > POOL:
            raise self.fail(errno.ENXIO)
        if kind == "A" and refused(pgoff):
            raise self.fail(errno.EPERM)
        hint_ok = self.free(s, s + n) and s >= MMAP_MIN_VPN
        r = s if fixed or hint_ok else self.placed(got, n)
        src: Shm | DevRef | None = None
        if kind == "shm":
            src = Shm(n)
            pgoff = 0
        elif kind == "memfd":
            src = self.m.mfd
        elif kind == "A":
            src = self.m.A
        elif kind == "B":
            src = self.m.B
        mayw = not (dev and shared and ro)
        for i in range(n):
            self.pages[r + i] = RPage(prot, kind, shared, mayw, src, pgoff + i)
        if kind == "B":
            self.devb = sorted([*self.devb, (r, r + n)])
        self.changed = True
        return r

    def placed(self, got: int | None, n: int) -> int:
        """A top-down placement: the model's choice must be a free, page-aligned range below
        mmap_base (there is always room below the window)."""
        assert got is not None, "the model failed where the reference expects success"
        assert got % P == 0, f"unaligned placement {got:#x}"
        r = got >> PAGE_SHIFT
        assert self.free(r, r + n), f"placed over a mapping at {got:#x}"
        assert r + n <= self.mmap_base, f"top-down placement {got:#x} above mmap_base"
        return r

    # -- mremap: do_mremap

    def mremap(self, a: int, o: int, n: int, mode: str, d: int, got: int | None) -> int:
        fixed = mode == "fixed"
        dontunmap = mode == "dontunmap"
        implies_new = fixed or dontunmap
        # check_mremap_params
        if n == 0:
            raise self.fail(errno.EINVAL)
        if implies_new:
            if dontunmap and o != n:
                raise self.fail(errno.EINVAL)
            if a + o > d and d + n > a:
                raise self.fail(errno.EINVAL)
        if fixed and o == n:
            return self.remap_move(a, o, d)
        lv = self.lv_at(a)
        if lv is None:
            raise self.fail(errno.EFAULT)
        # check_prep_vma
        if n > o or implies_new:
            if o == 0 and not lv.shared:
                raise self.fail(errno.EINVAL)
            if dontunmap and lv.devb:
                raise self.fail(errno.EINVAL)
            eff = min(o, n)
            if eff > lv.end - a:
                raise self.fail(errno.EFAULT)
            if n > eff and lv.devb:
                raise self.fail(errno.EFAULT)
        if implies_new:
            return self.mremap_to(a, o, n, mode, d, got)
        # mremap_at
        if o == n:
            return a
        if o > n:
            self.unmap(a + n, a + o)
            return a
        # expand_vma
        if lv.end - a == o and self.free(lv.end, lv.end + n - o):
            if lv.special:
                raise self.fail(errno.ENOMEM)
            base = self.pages[a]
            for i in range(n - o):
                self.pages[a + o + i] = base.fresh(base.pgoff + o + i)
            self.changed = True
            self.locked_populate(a + o, a + n)
            return a
        if mode != "maymove":
            raise self.fail(errno.ENOMEM)
        return self.move(a, o, n, self.placed(got, n), False)

    def mremap_to(self, a: int, o: int, n: int, mode: str, d: int, got: int | None) -> int:
        if mode == "fixed":
            self.unmap(d, d + n)
            # the destination may have covered the old VMA (old_len 0): vma_lookup again
            if a not in self.pages:
                raise self.fail(errno.EFAULT)
        if o > n:
            self.unmap(a + n, a + o)
            o = n
        r = d if mode == "fixed" or self.free(d, d + n) else self.placed(got, n)
        return self.move(a, o, n, r, mode == "dontunmap")

    def move(self, a: int, o: int, n: int, r: int, dontunmap: bool) -> int:
        """``move_vma``: ``prep_move_vma`` (``->may_split`` at both ends for device B), copy,
        move the pages, then ``dontunmap_complete`` or ``unmap_source_vma`` (best effort)."""
        ext = next(((x, y) for x, y in self.devb if x <= a < y), None)
        if ext is not None:
            if ext[0] != a and veto(a):
                raise self.fail(errno.EINVAL)
            if ext[1] != a + o and veto(a + o):
                raise self.fail(errno.EINVAL)
        base = self.pages[a]
        moved = {a + i: self.pages[a + i] for i in range(o)}
        for i in range(n):
            if i < o:
                self.pages[r + i] = moved[a + i]
            else:
                self.pages[r + i] = base.fresh(base.pgoff + i)
        if ext is not None:
            self.devb = sorted([*self.devb, (r, r + n)])
        self.changed = True
        if n > o:
            self.locked_populate(r + o, r + n)
        if dontunmap:
            # dontunmap_complete: the old VMA loses VM_LOCKED; its page tables moved away
            for v, rp in moved.items():
                if rp.kind == "A":
                    self.pages[v] = dataclasses.replace(rp, cell=None, present=False)
                elif not rp.shared:  # anonymous memory reads zero, a private file its file
                    self.pages[v] = dataclasses.replace(rp, cell=None, locked=False)
                else:
                    self.pages[v] = dataclasses.replace(rp.clone(), locked=False)
        elif o:
            for i in range(o):
                if self.pages.get(a + i) is moved[a + i]:
                    del self.pages[a + i]
            self.cut_devb(a, a + o)
        return r

    def remap_move(self, a: int, o: int, d: int) -> int:
        """``remap_move`` (6.17+): each VMA of ``[a, a + o)`` moves on its own, gaps kept."""
        end = a + o
        pieces = [(max(lv.start, a), min(lv.end, end)) for lv in self.layout]
        pieces = [(s, e) for s, e in pieces if s < e]
        if not pieces or pieces[0][0] > a:
            raise self.fail(errno.EFAULT)
        for s, e in pieces:
            t = d + (s - a)
            self.unmap(t, t + (e - s))
            self.move(s, e - s, e - s, t, False)
        return d


# --------------------------------------------------------------------------------------------
# the machine


class Machine(RuleBasedStateMachine):
    """Random syscalls in up to three processes, checked against :class:`Sim`."""

    def __init__(self) -> None:
        super().__init__()
        self.k = Kernel(strict=False, nr_pages=1536)
        self.A = DevRef(
            "A",
            TestDevice(
                self.k,
                "/dev/ins",
                npages=POOL,
                refuse_if=lambda v: errno.EPERM if refused(v.vm_pgoff) else None,
            ),
        )
        self.B = DevRef(
            "B",
            TestDevice(
                self.k,
                "/dev/hooks",
                npages=POOL,
                insert=False,
                hooks=True,
                fault="page",
                may_split=lambda addr: veto(addr >> PAGE_SHIFT),
                set_flags=VM_DONTEXPAND,
            ),
        )
        self.procs: list[Process] = []
        self.ref: dict[int, dict[int, RPage]] = {}
        self.devb: dict[int, list[tuple[int, int]]] = {}
        #: fd numbers, the same in every process (fork copies the table).
        self.fds: dict[tuple[str, bool], int] = {}
        #: The memfd (empty at first) and its descriptor.
        self.mfd = Shm(0)
        self.memfd = -1

    @initialize()
    def first_process(self) -> None:
        p = self.k.spawn("init")
        p.mm.mmap_base = BASE + WINDOW * P
        for dev in ("A", "B"):
            path = "/dev/ins" if dev == "A" else "/dev/hooks"
            self.fds[(dev, False)] = p.open(path)
            self.fds[(dev, True)] = p.open(path, O_RDONLY)
        self.memfd = p.memfd_create("stateful")
        self.procs.append(p)
        self.ref[p.pid] = {}
        self.devb[p.pid] = []

    def proc(self, i: int) -> Process:
        return self.procs[i % len(self.procs)]

    def target(self, p: Process, slot: int, near: int) -> int:
        """A page: usually one the process maps (``near`` picks it, so calls hit mappings
        rather than holes), otherwise a window slot."""
        ref = self.ref[p.pid]
        if near % 4 and ref:
            return sorted(ref)[(near + slot) % len(ref)]
        return BASE_VPN + slot

    def run_length(self, p: Process, s: int, n: int, near: int) -> int:
        """Usually clamp ``n`` to the mapped run starting at ``s`` (fewer calls refused at
        the first hole, more that do something)."""
        if near % 3 == 0:
            return n
        ref = self.ref[p.pid]
        k = 0
        while k < n and s + k in ref:
            k += 1
        return k or n

    def vma_length(self, p: Process, s: int, n: int, near: int) -> int:
        """Usually clamp ``n`` to what remains of the VMA at ``s``."""
        v = p.mm.mm_mt.load(s << PAGE_SHIFT)
        if near % 3 == 0 or v is None:
            return n
        return min(n, (v.vm_end >> PAGE_SHIFT) - s)

    def run(
        self,
        p: Process,
        call: Callable[[], int | None],
        predict: Callable[[Sim, int | None], int | None],
    ) -> None:
        """Make the call, predict it, compare errno and address, commit the prediction and,
        for a refusal Linux makes before changing anything, compare whole-model snapshots."""
        before: Snapshot = snapshot(self.k)
        sim = Sim(self, p)  # reads the model's VMA layout before the call
        got: int | None = None
        err: int | None = None
        try:
            got = call()
        except KernelError as e:
            err = e.errno
        exp: int | None = None
        exp_err: int | None = None
        unchanged = False
        try:
            exp = predict(sim, got)
        except Expected as x:
            exp_err, unchanged = x.err, x.unchanged
        assert err == exp_err, (
            f"model: {errno.errorcode.get(err or 0, 'success')}, reference: "
            f"{errno.errorcode.get(exp_err or 0, 'success')}"
        )
        if err is None and exp is not None and got is not None:
            assert got == exp << PAGE_SHIFT, f"model returned {got:#x}, expected {exp:#x} pages"
        self.ref[p.pid] = sim.pages
        self.devb[p.pid] = sim.devb
        if err is not None and unchanged:
            assert_unchanged(before, snapshot(self.k))

    # -- syscalls

    @rule(
        pi=st.integers(0, 2),
        slot=slots,
        n=lengths,
        prot=prots,
        kind=KINDS,
        shared=st.booleans(),
        mode=st.sampled_from(["fixed", "hint", "noreplace"]),
        pgoff=st.integers(0, POOL - 1),
        ro=st.booleans(),
        near=st.integers(0, 1000),
    )
    def mmap(
        self,
        pi: int,
        slot: int,
        n: int,
        prot: int,
        kind: str,
        shared: bool,
        mode: str,
        pgoff: int,
        ro: bool,
        near: int,
    ) -> None:
        p = self.proc(pi)
        s = self.target(p, slot, near) if mode == "fixed" else BASE_VPN + slot
        if kind in ("anon", "shm"):
            shared = kind == "shm"
        fd = -1
        if kind in ("A", "B"):
            fd = self.fds[(kind, ro)]
            flags = MAP_SHARED if shared else MAP_PRIVATE
        elif kind == "memfd":
            fd, ro, pgoff = self.memfd, False, pgoff % 8
            flags = MAP_SHARED if shared else MAP_PRIVATE
        else:
            ro = False
            flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_ANONYMOUS
            pgoff = 0
        flags |= {"fixed": MAP_FIXED, "hint": 0, "noreplace": MAP_FIXED_NOREPLACE}[mode]
        self.run(
            p,
            lambda: p.mmap(s << PAGE_SHIFT, n * P, prot, flags, fd, pgoff * P),
            lambda sim, got: sim.mmap(s, n, prot, kind, shared, mode, pgoff, ro, got),
        )

    @rule(pi=st.integers(0, 2), slot=slots, n=lengths, near=st.integers(0, 1000))
    def munmap(self, pi: int, slot: int, n: int, near: int) -> None:
        p = self.proc(pi)
        s = self.target(p, slot, near)

        def predict(sim: Sim, got: int | None) -> None:
            sim.munmap(s, n)

        self.run(p, lambda: p.munmap(s << PAGE_SHIFT, n * P), predict)

    @rule(pi=st.integers(0, 2), slot=slots, n=lengths, prot=prots, near=st.integers(0, 1000))
    def mprotect(self, pi: int, slot: int, n: int, prot: int, near: int) -> None:
        p = self.proc(pi)
        s = self.target(p, slot, near)
        n = self.run_length(p, s, n, near)

        def predict(sim: Sim, got: int | None) -> None:
            sim.mprotect(s, n, prot)

        self.run(p, lambda: p.mprotect(s << PAGE_SHIFT, n * P, prot), predict)

    @rule(
        pi=st.integers(0, 2),
        slot=slots,
        old=lengths,
        new=new_lengths,
        mode=st.sampled_from(["resize", "maymove", "fixed", "dontunmap"]),
        dslot=slots,
        near=st.integers(0, 1000),
    )
    def mremap(
        self, pi: int, slot: int, old: int, new: int, mode: str, dslot: int, near: int
    ) -> None:
        p = self.proc(pi)
        a, d = self.target(p, slot, near), BASE_VPN + dslot
        old = self.vma_length(p, a, old, near)
        if mode in ("fixed", "dontunmap") and new % 3:
            new = old  # mostly same-size moves: the common case (and remap_move)
        flags = {
            "resize": 0,
            "maymove": MREMAP_MAYMOVE,
            "fixed": MREMAP_MAYMOVE | MREMAP_FIXED,
            "dontunmap": MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
        }[mode]
        self.run(
            p,
            lambda: p.mremap(a << PAGE_SHIFT, old * P, new * P, flags, d << PAGE_SHIFT),
            lambda sim, got: sim.mremap(a, old, new, mode, d, got),
        )

    def advised_range(
        self, pi: int, slot: int, n: int, near: int, kind: str
    ) -> tuple[int, int] | None:
        """A range for madvise or mlock: seven times in eight a run of mapped pages (holes
        the rest of the time), after mapping ``kind`` read/write at ``slot`` if the process
        maps nothing; None if it has a device page (madvise and mlock stay off them)."""
        p = self.proc(pi)
        if not self.ref[p.pid]:
            self.mmap(
                pi, slot, max(n, 1), PROT_READ | PROT_WRITE, kind, False, "fixed", 0, False, 1
            )
        s = self.target(p, slot, near if near % 8 == 0 else near | 1)
        n = self.run_length(p, s, n, near if near % 8 == 0 else 1)
        ref = self.ref[p.pid]
        if any(ref[v].kind in ("A", "B") for v in range(s, s + n) if v in ref):
            return None
        return s, n

    def fill(self, p: Process, s: int, n: int, byte: int) -> None:
        """Store ``byte`` into each writable page of ``[s, s + n)`` (so that what a call does
        to contents shows in later loads)."""
        for v in range(s, s + n):
            rp = self.ref[p.pid].get(v)
            if rp is not None and expect_access(rp, True) is None:
                self.check_access(p, v, True, 0, bytes([byte]))

    @rule(
        pi=st.integers(0, 2),
        slot=slots,
        n=lengths,
        advice=ADVICE,
        near=st.integers(0, 1000),
        fill=st.integers(0, 255),
        kind=st.sampled_from(["anon", "memfd", "shm"]),
    )
    def madvise(
        self, pi: int, slot: int, n: int, advice: int, near: int, fill: int, kind: str
    ) -> None:
        p = self.proc(pi)
        picked = self.advised_range(pi, slot, n, near, kind)
        if picked is None:
            return
        s, n = picked
        if fill:
            self.fill(p, s, n, fill)

        def predict(sim: Sim, got: int | None) -> None:
            sim.madvise(s, n, advice)

        self.run(p, lambda: p.madvise(s << PAGE_SHIFT, n * P, advice), predict)

    @rule(
        pi=st.integers(0, 2),
        slot=slots,
        n=st.integers(1, 8),
        on=st.booleans(),
        near=st.integers(0, 1000),
        kind=st.sampled_from(["anon", "memfd", "shm"]),
        poke=st.integers(0, 255),
    )
    def mlock(self, pi: int, slot: int, n: int, on: bool, near: int, kind: str, poke: int) -> None:
        """mlock or munlock; with ``poke``, then a ``pwrite`` to the file page behind the
        range's first memfd page (a private copy made by population must not see it)."""
        p = self.proc(pi)
        picked = self.advised_range(pi, slot, n, near, kind)
        if picked is None:
            return
        s, n = picked

        def predict(sim: Sim, got: int | None) -> None:
            sim.lock(s, n, on)

        call = p.mlock if on else p.munlock
        self.run(p, lambda: call(s << PAGE_SHIFT, n * P), predict)
        ref = self.ref[p.pid]
        memfd_pages = [
            ref[v].pgoff for v in range(s, s + n) if v in ref and ref[v].kind == "memfd"
        ]
        if poke and memfd_pages:
            self.file_io(pi, memfd_pages[0], 0, True, bytes([poke]))

    @rule(pages=st.integers(0, 8), tail=st.sampled_from([0, 0, 5]))
    def ftruncate(self, pages: int, tail: int) -> None:
        """``shmem_setattr``: a shrink zaps the pages past the new end from every mapping in
        every process, private copies included (``unmap_mapping_range`` with even_cows), and
        zeroes the rest of a partial last page."""
        size = pages * P + tail
        self.procs[0].ftruncate(self.memfd, size)
        mfd = self.mfd
        npages = -(-size // P)
        if size < mfd.size:
            for pgoff in list(mfd.data):
                if pgoff >= npages:
                    del mfd.data[pgoff]
            if tail and pages in mfd.data:
                mfd.data[pages][tail:] = bytes(CW - tail)
            for ref in self.ref.values():
                for v, rp in ref.items():
                    if rp.src is mfd and rp.pgoff >= npages:
                        ref[v] = dataclasses.replace(rp, cell=None)
        mfd.size, mfd.npages = size, npages

    def file_bytes(self, offset: int, length: int) -> bytes:
        """What ``pread`` returns: the file's bytes up to its end."""
        pgoff, off = divmod(offset, P)
        end = min(offset + length, self.mfd.size)
        if end <= offset:
            return b""
        page = self.mfd.data.get(pgoff, bytes(CW))
        return bytes(page[off : off + end - offset])

    @rule(
        pi=st.integers(0, 2),
        pgoff=st.integers(0, 9),
        off=st.integers(0, CW - 4),
        write=st.booleans(),
        data=st.binary(min_size=1, max_size=4),
    )
    def file_io(self, pi: int, pgoff: int, off: int, write: bool, data: bytes) -> None:
        """``pread``/``pwrite`` of the memfd: the bytes the mappings see (``pwrite`` past the
        end grows the file)."""
        p = self.proc(pi)
        offset = pgoff * P + off
        if not write:
            assert p.pread(self.memfd, len(data), offset) == self.file_bytes(offset, len(data))
            return
        assert p.pwrite(self.memfd, data, offset) == len(data)
        self.mfd.data.setdefault(pgoff, bytearray(CW))[off : off + len(data)] = data
        if offset + len(data) > self.mfd.size:
            self.mfd.size = offset + len(data)
            self.mfd.npages = pgoff + 1

    @rule(site=st.sampled_from(["lock_vma_under_rcu", "trylock"]), on=st.booleans())
    def inject(self, site: str, on: bool) -> None:
        """Fault injection: per-VMA locking and trylocks fail half the time (the fault path
        falls back to the mmap lock; nothing a process can see changes)."""
        self.k.fault_inject.fail_fraction(site, 0.5 if on else 0.0)

    @rule(pi=st.integers(0, 2))
    def fork(self, pi: int) -> None:
        if len(self.procs) >= 3:
            return
        p = self.proc(pi)
        c = p.fork()
        c.mm.mmap_base = BASE + WINDOW * P
        self.procs.append(c)
        # dup_mmap: VM_DONTCOPY VMAs are skipped, VM_WIPEONFORK ones start empty, no copy
        # is locked; the rest is a copy-on-write copy
        self.ref[c.pid] = {
            v: dataclasses.replace(
                rp.clone(), locked=False, cell=None if rp.wipe else rp.clone().cell
            )
            for v, rp in self.ref[p.pid].items()
            if not rp.dontcopy
        }
        self.devb[c.pid] = list(self.devb[p.pid])

    @rule(pi=st.integers(0, 2))
    def exit(self, pi: int) -> None:
        if len(self.procs) < 2:
            return
        p = self.proc(pi)
        p.exit()
        self.procs.remove(p)
        del self.ref[p.pid]
        del self.devb[p.pid]

    @rule(
        pi=st.integers(0, 2),
        pick=st.integers(0, 1000),
        mapped=st.booleans(),
        write=st.booleans(),
        off=st.integers(0, CW - 4),
        data=st.binary(min_size=1, max_size=4),
    )
    def access(self, pi: int, pick: int, mapped: bool, write: bool, off: int, data: bytes) -> None:
        p = self.proc(pi)
        ref = self.ref[p.pid]
        vpn = sorted(ref)[pick % len(ref)] if mapped and ref else BASE_VPN + pick % WINDOW
        self.check_access(p, vpn, write, off, data)

    def check_access(self, p: Process, vpn: int, write: bool, off: int, data: bytes) -> None:
        rp = self.ref[p.pid].get(vpn)
        want = expect_access(rp, write)
        addr = (vpn << PAGE_SHIFT) + off
        got: bytes | None = None
        outcome: str | None = None
        try:
            if write:
                p.write(addr, data)
            else:
                got = p.read(addr, len(data))
        except SegmentationFault as e:
            outcome = "MAPERR" if e.code == SEGV_MAPERR else "ACCERR"
        except BusError:
            outcome = "BUS"
        assert outcome == want, f"{'store' if write else 'load'} at {addr:#x}: {outcome} != {want}"
        if want is None:
            assert rp is not None
            if write:
                store(rp, off, data)
            else:
                assert got == content(rp)[off : off + len(data)], f"load at {addr:#x}"

    # -- checks after every step

    @invariant()
    def model_invariants(self) -> None:
        self.k.check_invariants()

    @invariant()
    def layout_matches(self) -> None:
        for p in self.procs:
            ref = self.ref[p.pid]
            seen = 0
            devb: list[tuple[int, int]] = []
            for v in p.mm.vmas():
                s = v.vm_start >> PAGE_SHIFT
                if v.vm_ops is self.B.dev.vm_ops:
                    devb.append((s, v.vm_end >> PAGE_SHIFT))
                for i in range(v.pages):
                    rp = ref.get(s + i)
                    assert rp is not None, f"pid {p.pid}: {v!r} maps page {s + i:#x}"
                    self.check_page(v, i, rp)
                    seen += 1
            assert seen == len(ref), f"pid {p.pid}: reference maps pages the model does not"
            assert devb == self.devb[p.pid], f"device B VMAs {devb} != {self.devb[p.pid]}"

    def check_page(self, v: Vma, i: int, rp: RPage) -> None:
        flags = v.vm_flags
        assert flags & 7 == rp.prot, f"{v!r} page {i}: prot {flags & 7} != {rp.prot}"
        assert bool(flags & VM_MAYSHARE) == rp.shared, f"{v!r}: shared"
        assert bool(flags & VM_MAYWRITE) == rp.mayw, f"{v!r}: VM_MAYWRITE"
        f = v.vm_file
        if rp.kind == "anon":
            assert f is None, f"{v!r} should be anonymous"
            return
        assert f is not None, f"{v!r} should map a file"
        assert v.vm_pgoff + i == rp.pgoff, f"{v!r} page {i}: pgoff {v.vm_pgoff + i} != {rp.pgoff}"
        if rp.kind == "memfd":
            assert f.f_inode is self.procs[0].fds[self.memfd].f_inode, f"{v!r}: not the memfd"
        elif rp.kind == "shm":
            assert f.f_inode.kind == "shmem"
            assert isinstance(rp.src, Shm)
            if rp.src.ino is None:
                rp.src.ino = f.f_inode.ino
            assert rp.src.ino == f.f_inode.ino, f"{v!r} maps another shmem file"
        else:
            assert f.path == ("/dev/ins" if rp.kind == "A" else "/dev/hooks")

    @invariant()
    def hooks_accounting(self) -> None:
        self.B.dev.check_pieces()
        for p in self.procs:
            assert not p.task.held_locks

    @override
    def teardown(self) -> None:
        for p in list(self.procs):
            for vpn in sorted(self.ref[p.pid]):
                self.check_access(p, vpn, False, 0, bytes(CW - 4))
        for p in list(self.procs):
            p.exit()
        self.procs.clear()
        self.k.check_invariants()
        assert not self.k.mms
        for dr in (self.A, self.B):
            assert all(pg.mapcount == 0 and pg.refcount == 1 for pg in dr.dev.pool)
        self.B.dev.check_pieces()


TestSyscalls = Machine.TestCase
TestSyscalls.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)

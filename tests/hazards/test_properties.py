# mypy: disallow-any-decorated=False
# (mypy.ini's [mypy-tests.*] setting does not reach this module's name; hypothesis's @given
# returns Callable[..., None].)
"""H3 and H4 as properties: whatever user space does to the driver's mapping — munmap of
pieces, mremap of pieces, other mappings in the holes, fork — the ownership-checked driver
never touches a VMA that is not its own, and ``unmap_mapping_range`` on the file's own address
space leaves no PTE of it in any process."""

from __future__ import annotations

import errno

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    BusError,
    KernelError,
    Process,
    SegmentationFault,
)
from safemm.fs import File

from .support import BASE, ELSEWHERE, NPAGES, Buf, HazardDriver, P, Rig, insert_checked

#: One user-space operation on the driver's mapping: (kind, page, argument).
Op = tuple[str, int, int]

OPS = st.lists(
    st.tuples(
        st.sampled_from(["munmap", "mremap", "anon", "shared", "fork"]),
        st.integers(0, NPAGES - 1),
        st.integers(0, NPAGES - 1),
    ),
    max_size=8,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _apply(rig: Rig, ops: list[Op]) -> list[Process]:
    """Run ``ops`` in the rig's process; returns every process (the forks too)."""
    procs = [rig.proc]
    proc = rig.proc
    for kind, page, arg in ops:
        addr = BASE + page * P
        try:
            if kind == "munmap":
                proc.munmap(addr, P)
            elif kind == "mremap":
                proc.mremap(addr, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, ELSEWHERE + arg * P)
            elif kind == "anon":
                proc.mmap(addr, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
            elif kind == "shared":
                proc.mmap(addr, P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
            else:
                procs.append(proc.fork())
        except KernelError as e:
            if e.errno not in (errno.EFAULT, errno.EINVAL):  # mremap of an unmapped page
                raise
    return procs


@SETTINGS
@given(OPS)
def test_checked_driver_never_touches_a_foreign_vma(ops: list[Op]) -> None:
    """H3 (property): after any sequence of munmap, mremap, anonymous and shared mmaps in
    the holes and forks, the check_vma driver inserts each page only into its own VMA at that
    page's offset (else ESRCH) and the model never has anything to report."""
    rig = Rig(driver=HazardDriver(insert=0))
    procs = _apply(rig, ops)

    def insert_all(file: File[Buf]) -> object:
        done = []
        for i in range(NPAGES):
            try:
                insert_checked(rig.driver, file, i)
                done.append(i)
            except KernelError as e:
                if e.errno not in (errno.ESRCH, errno.EBUSY):
                    raise
        return done

    done = rig.run(insert_all)
    assert isinstance(done, list)
    for i in done:
        vma = rig.vma_at(BASE + i * P)
        assert vma.vm_ops is not None and vma.vm_ops.owner is rig.driver.vm_ops
        assert vma.linear_page_index(BASE + i * P) == i
    assert rig.kernel.dmesg == []
    for p in reversed(procs):
        p.exit()
    rig.kernel.check_invariants()


@SETTINGS
@given(OPS)
def test_unmap_mapping_range_reaches_every_copy(ops: list[Op]) -> None:
    """H4 (property): whatever split, moved or copied the mapping, every process faults its
    pieces in, and unmap_mapping_range on the file's own address space then leaves no PTE
    mapping any of the driver's pages, anywhere."""
    rig = Rig(driver=HazardDriver(insert=0, own_mapping=True))
    procs = _apply(rig, ops)
    state = rig.proc.fds[rig.fd].private_data
    assert isinstance(state, Buf)
    pfns = {page.pfn for page in state.pages}
    for p in procs:
        for vma in p.mm.vmas():
            if vma.vm_ops is not None and vma.vm_ops.owner is rig.driver.vm_ops:
                for a in range(vma.vm_start, vma.vm_end, P):
                    try:
                        p.read(a, 1)
                    except (BusError, SegmentationFault):
                        pass

    def mapped() -> int:
        return sum(
            1 for p in procs for _, pte in p.mm.pgtables.range(0, 1 << 40) if pte.pfn in pfns
        )

    def revoke(file: File[Buf]) -> object:
        file.mapping.unmap_mapping_range(0, 0)
        return None

    before = mapped()
    if not ops:
        assert before == NPAGES
    rig.run(revoke)
    assert mapped() == 0
    assert rig.kernel.dmesg == []
    for p in reversed(procs):
        p.exit()
    rig.kernel.check_invariants()

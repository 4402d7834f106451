"""H3: a different VMA at the same address (review, Jann Horn; mm/memory.c ``vm_insert_page``,
``zap_page_range_single`` check nothing about ownership).

A driver that caches its mapping's address and later looks the VMA up there (binder's
``vma_lookup`` at ``vma_addr``) finds whatever user space put there since: after munmap +
mmap, an mremap away (or of another VMA onto it), or a split. The victims: a writable VMA
(H3a: the user writes into the driver's read-only page), a VM_PFNMAP VMA (H3b), a hugetlb VMA
(H3c: a 4K PTE in a hugetlb range), an anonymous VMA and another driver's VMA (H3d).

The kernel checks none of it. Strict mode knows which driver's code is running (the hook or
ioctl the model entered) and reports ``foreign-vma`` for any insert or zap into a VMA whose
file and vm_ops are not that driver's. The safe layer's answer is the typed ownership check
``VmOperations.check_vma(vma, owner) -> VmAreaOwnedRef[T] | None`` (Rust binder's
``check_vma``), with typed private data (tests/typing/reject/r10_ownership.py); the correct
driver below and the demo drivers use it and get ESRCH instead of touching the victim.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from safemm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    KernelBug,
    KernelError,
)
from safemm.demo.drivers import EagerInsertDriver
from safemm.demo.drivers.abi import DEVICE_PATH, SAFEBINDER_GET_ID, SAFEBINDER_SEND
from safemm.fs import File
from safemm.testing import SplatKind, expect_splat
from safemm.virt import VmAreaMixedMapRef

from .support import (
    BASE,
    ELSEWHERE,
    NPAGES,
    VICTIMS,
    Buf,
    P,
    Rig,
    contracts,
    doc_splat,
    insert_checked,
    insert_unchecked_read,
    insert_unchecked_write,
    install_victim,
    splat,
    state_of,
    user_of,
    zap_checked,
    zap_unchecked,
)

#: How user space puts another VMA where the driver's was.
MECHANISMS = ("munmap+mmap", "mremap-away", "mremap-onto", "split")


def replace_mapping(rig: Rig, mechanism: str, victim: str) -> None:
    """Make ``victim`` sit at :data:`BASE`, where the driver's page 0 was, by ``mechanism``."""
    proc = rig.proc
    if mechanism == "munmap+mmap":
        proc.munmap(BASE, NPAGES * P)
        install_victim(rig, victim, BASE, NPAGES * P)
    elif mechanism == "mremap-away":
        proc.mremap(BASE, NPAGES * P, NPAGES * P, MREMAP_MAYMOVE | MREMAP_FIXED, ELSEWHERE)
        install_victim(rig, victim, BASE, NPAGES * P)
    elif mechanism == "mremap-onto":
        install_victim(rig, victim, ELSEWHERE, NPAGES * P)
        proc.mremap(ELSEWHERE, NPAGES * P, NPAGES * P, MREMAP_MAYMOVE | MREMAP_FIXED, BASE)
    elif mechanism == "split":
        proc.munmap(BASE, P)  # the driver's VMA is split; its first page is gone
        install_victim(rig, victim, BASE, P)
    else:
        raise ValueError(mechanism)


def _combos() -> list[tuple[str, str]]:
    out = []
    for mechanism in MECHANISMS:
        for victim in VICTIMS:
            if victim == "hugetlb" and mechanism in ("split", "mremap-onto"):
                continue  # a hugetlb VMA is 2 MiB: it cannot fill a one-page hole
            out.append((mechanism, victim))
    return out


def _broken_insert(victim: str) -> Callable[[File[Buf]], object]:
    """The broken driver's insert for a victim: the read-lock flow where the victim is
    VM_MIXEDMAP already (another driver's VMA), else the write-lock flow, which sets it."""
    if victim == "other-driver":
        return lambda f: insert_unchecked_read(f, 0)
    return lambda f: insert_unchecked_write(f, 0)


def _insert_around_types(file: File[Buf]) -> object:
    """The write-lock flow with the insert forced onto a VmAreaMut (an unbound call): what
    it takes to reach a VM_PFNMAP victim, which set_mixedmap() refuses."""
    state = state_of(file)
    with user_of(file) as user, user.mmap_write_lock() as guard:
        vma = guard.vma_lookup(state.base)
        assert vma is not None
        VmAreaMixedMapRef.vm_insert_page(vma, state.base, state.pages[0])  # type: ignore[arg-type]
    return None


@pytest.mark.parametrize(("mechanism", "victim"), _combos())
def test_h3_strict_reports_every_foreign_insert(mechanism: str, victim: str) -> None:
    """H3 (vm_insert_page): after ``mechanism`` a ``victim`` VMA sits at the driver's cached
    address; the broken driver's insert is reported: foreign-vma (strict), or for a VM_PFNMAP
    victim the kernel's own BUG (H2) — the safe layer's set_mixedmap() refuses that one."""
    rig = Rig()
    replace_mapping(rig, mechanism, victim)
    if victim == "pfnmap":
        with pytest.raises(KernelError) as err:
            rig.run(_broken_insert(victim))
        assert err.value.errno == errno.EINVAL
        with expect_splat("insert-pfnmap", SplatKind.BUG):
            rig.run(_insert_around_types)
    else:
        with expect_splat("foreign-vma", SplatKind.STRICT) as exc:
            rig.run(_broken_insert(victim))
        assert "a different VMA now sits at that address" in str(exc.error)
    assert rig.pte_pfn(BASE) != state_page_pfn(rig, 0)
    rig.finish()


@pytest.mark.parametrize(("mechanism", "victim"), _combos())
def test_h3_check_vma_refuses_every_victim(mechanism: str, victim: str) -> None:
    """H3, safe layer: the correct driver proves ownership with check_vma first and gets
    ESRCH for every victim; the model has nothing to report and the victim is untouched."""
    rig = Rig()
    replace_mapping(rig, mechanism, victim)
    before = rig.pte_pfn(BASE)
    with pytest.raises(KernelError) as err:
        rig.run(lambda f: insert_checked(rig.driver, f, 0))
    assert err.value.errno == errno.ESRCH
    with pytest.raises(KernelError) as err:
        rig.run(lambda f: zap_checked(rig.driver, f, 0))
    assert err.value.errno == errno.ESRCH
    assert rig.pte_pfn(BASE) == before
    assert rig.kernel.dmesg == []
    rig.finish()


def state_page_pfn(rig: Rig, index: int) -> int:
    """The pfn of the driver's page ``index`` (of the rig's open file)."""
    f = rig.proc.fds[rig.fd]
    state = f.private_data
    assert isinstance(state, Buf)
    return state.pages[index].pfn


# ---------------------------------------------------------------------------- H3a writable


@doc_splat("h3a")
def demo_h3a() -> str:
    """H3a in strict mode (panic_on_warn off, so the scenario runs to the end)."""
    rig = Rig(panic_on_warn=False)
    replace_mapping(rig, "munmap+mmap", "writable")
    rig.run(lambda f: insert_unchecked_write(f, 0))
    return splat(rig.kernel, "foreign-vma").render()


@pytest.mark.parametrize("strict", [False, True], ids=["linux", "strict"])
def test_h3a_user_writes_into_the_drivers_read_only_page(strict: bool) -> None:
    """H3a (vm_insert_page builds the PTE from the victim's vm_page_prot): the driver's page
    lands in a shared writable VMA and the user's write lands in the driver's page — silently
    in Linux (strict off), reported as foreign-vma in strict mode."""
    rig = Rig(strict=strict, panic_on_warn=False)
    replace_mapping(rig, "munmap+mmap", "writable")
    rig.run(lambda f: insert_unchecked_write(f, 0))
    assert rig.pte_pfn(BASE) == state_page_pfn(rig, 0)
    rig.proc.write(BASE, b"user bytes")

    def driver_reads(file: File[Buf]) -> object:
        return state_of(file).pages[0].read(0, 10)

    assert rig.run(driver_reads) == b"user bytes"  # the driver's page, written by the user
    assert contracts(rig.kernel) == (["foreign-vma"] if strict else [])
    rig.finish()


# ---------------------------------------------------------------------------- H3b PFNMAP


@pytest.mark.parametrize("strict", [False, True], ids=["linux", "strict"])
def test_h3b_pfnmap_victim_is_the_kernels_bug(strict: bool) -> None:
    """H3b (vm_insert_page BUG_ON(VM_PFNMAP)): a refcounted page into another driver's
    VM_PFNMAP VMA is caught by the kernel itself, in both modes."""
    rig = Rig(strict=strict)
    replace_mapping(rig, "munmap+mmap", "pfnmap")
    with expect_splat("insert-pfnmap", SplatKind.BUG):
        rig.run(_insert_around_types)
    rig.finish()


# ---------------------------------------------------------------------------- H3c hugetlb


def _hugetlb_rig(strict: bool, touch: bool) -> Rig:
    rig = Rig(strict=strict, panic_on_warn=False)
    replace_mapping(rig, "munmap+mmap", "hugetlb")
    if touch:
        rig.proc.write(BASE + 8 * P, b"huge")  # faults in the 2 MiB page: a huge PMD
    return rig


@doc_splat("h3c-linux")
def demo_h3c_linux() -> str:
    """H3c with strict off: the DEBUG_VM BUG over a huge PMD."""
    rig = _hugetlb_rig(strict=False, touch=True)
    try:
        rig.run(lambda f: insert_unchecked_write(f, 0))
    except KernelBug:
        pass
    return splat(rig.kernel, "insert-hugetlb").render()


@doc_splat("h3c-strict")
def demo_h3c_strict() -> str:
    """H3c in strict mode, over an empty PMD (no kernel check would fire)."""
    rig = _hugetlb_rig(strict=True, touch=False)
    rig.run(lambda f: insert_unchecked_write(f, 0))
    return splat(rig.kernel, "insert-hugetlb").render()


def test_h3c_over_a_huge_pmd_the_kernel_bugs() -> None:
    """H3c, strict off: walk_to_pmd's VM_BUG_ON(pmd_trans_huge) (DEBUG_VM) fires when the
    hugetlb range is populated."""
    rig = _hugetlb_rig(strict=False, touch=True)
    with expect_splat("insert-hugetlb", SplatKind.BUG) as bug:
        rig.run(lambda f: insert_unchecked_write(f, 0))
    assert "pmd_trans_huge" in str(bug.error)
    rig.finish()


def test_h3c_over_an_empty_pmd_linux_installs_a_4k_pte() -> None:
    """H3c, strict off: over an empty PMD the kernel silently installs a 4K page table inside
    the hugetlb VMA; strict mode reports foreign-vma and insert-hugetlb."""
    rig = _hugetlb_rig(strict=False, touch=False)
    rig.run(lambda f: insert_unchecked_write(f, 0))
    assert rig.pte_pfn(BASE) == state_page_pfn(rig, 0)
    assert rig.vma_at(BASE).vm_flags & 0x400000  # VM_HUGETLB, now with a 4K PTE inside
    assert rig.kernel.dmesg == []
    strict = _hugetlb_rig(strict=True, touch=False)
    strict.run(lambda f: insert_unchecked_write(f, 0))
    assert contracts(strict.kernel) == ["foreign-vma", "insert-hugetlb"]


# ---------------------------------------------------------------------------- H3d anon, other


@doc_splat("h3d-anon")
def demo_h3d_anon() -> str:
    """H3d: the driver's page in an anonymous VMA."""
    rig = Rig(panic_on_warn=False)
    replace_mapping(rig, "split", "anon")
    rig.run(lambda f: insert_unchecked_write(f, 0))
    return splat(rig.kernel, "foreign-vma").render()


@pytest.mark.parametrize("strict", [False, True], ids=["linux", "strict"])
def test_h3d_driver_page_in_an_anonymous_vma(strict: bool) -> None:
    """H3d (vm_insert_page): after a split and an anonymous mmap in the hole, the driver's
    file page is mapped in an anonymous VMA; the user reads the driver's data there."""
    rig = Rig(strict=strict, panic_on_warn=False)
    replace_mapping(rig, "split", "anon")
    rig.run(lambda f: insert_unchecked_write(f, 0))
    assert rig.proc.read(BASE, 13) == b"hazard page 0"
    assert contracts(rig.kernel) == (["foreign-vma"] if strict else [])
    rig.finish()


@doc_splat("h3d-other-zap")
def demo_h3d_other_zap() -> str:
    """H3d: zapping another driver's VMA."""
    rig = Rig(panic_on_warn=False)
    replace_mapping(rig, "mremap-away", "other-driver")
    rig.proc.read(BASE, 1)  # the other driver's page faults in
    rig.run(lambda f: zap_unchecked(f, 0))
    return splat(rig.kernel, "foreign-vma").render()


@pytest.mark.parametrize("strict", [False, True], ids=["linux", "strict"])
def test_h3d_another_drivers_vma(strict: bool) -> None:
    """H3d (vm_insert_page, zap_page_range_single): the other driver's VMA is VM_MIXEDMAP,
    so even the read-lock flow inserts into it (its user now reads our page where its own
    should fault in), and a zap removes the other driver's PTEs."""
    rig = Rig(strict=strict, panic_on_warn=False)
    replace_mapping(rig, "mremap-away", "other-driver")
    assert rig.proc.read(BASE + P, 12) == b"other page 1"
    rig.run(lambda f: insert_unchecked_read(f, 0))
    assert rig.proc.read(BASE, 13) == b"hazard page 0"
    rig.run(lambda f: zap_unchecked(f, 1))
    assert rig.pte_pfn(BASE + P) is None
    assert contracts(rig.kernel) == (["foreign-vma", "foreign-vma"] if strict else [])
    rig.finish()


# ---------------------------------------------------------------------------- the demo driver


def test_h3_demo_eager_driver_refuses_the_replaced_vma() -> None:
    """H3, correct driver: the demo's eager-insert driver (C and Rust binder's scheme, with
    check_vma) refuses a SEND into a receiver whose mapping was replaced by an anonymous VMA:
    ESRCH, nothing inserted, nothing for the model to report."""
    from safemm import Kernel

    k = Kernel()
    driver = EagerInsertDriver()
    k.register_device(DEVICE_PATH, driver)
    receiver, sender = k.spawn("receiver"), k.spawn("sender")
    rfd, sfd = receiver.open(DEVICE_PATH), sender.open(DEVICE_PATH)
    receiver.mmap(BASE, 16 * P, PROT_READ, MAP_SHARED | MAP_FIXED, rfd)
    target = receiver.ioctl(rfd, SAFEBINDER_GET_ID)
    receiver.munmap(BASE, 16 * P)
    receiver.mmap(BASE, 16 * P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
    with pytest.raises(KernelError) as err:
        sender.ioctl(sfd, SAFEBINDER_SEND, (target, b"hello"))
    assert err.value.errno == errno.ESRCH
    assert driver.stats.paths["insert.foreign_vma"] == 1
    assert receiver.mm.pgtables.lookup(BASE // P) is None
    assert k.dmesg == []
    receiver.exit()
    sender.exit()
    k.check_invariants()

"""The registry of contracts the model checks.

Every report the model makes names one of these. Each contract has the kernel source that
states it, a one-line summary, and the fix a driver author should apply; the README's contract
table is generated from, and tested against, this registry.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONTRACTS", "Contract", "contract"]


@dataclass(frozen=True)
class Contract:
    """A kernel contract: what is illegal, where the kernel says so, and how to comply.

    Attributes:
        id: short stable identifier, used in splats and tests.
        summary: what the contract forbids.
        source: the kernel function or review message that states it.
        fix: what the calling code should do instead.
        kernel_checks: whether Linux itself reports a violation (False: strict mode only).
    """

    id: str
    summary: str
    source: str
    fix: str
    kernel_checks: bool = True


def _c(
    id: str, summary: str, source: str, fix: str, *, kernel_checks: bool = True
) -> tuple[str, Contract]:
    return id, Contract(id, summary, source, fix, kernel_checks)


#: Every contract the model checks, by id (the id a splat names and ``expect_splat`` takes).
#:
#: :meta hide-value:
CONTRACTS: dict[str, Contract] = dict(
    [
        _c(
            "mmap-lock-held",
            "the mmap lock (read or write) must be held",
            "include/linux/mmap_lock.h mmap_assert_locked",
            "take mmap_read_lock() (MmWithUser.mmap_read_lock()) around the call",
        ),
        _c(
            "mmap-write-lock-held",
            "the mmap lock must be held for writing",
            "include/linux/mmap_lock.h mmap_assert_write_locked",
            "take mmap_write_lock() (MmWithUser.mmap_write_lock()) around the call",
        ),
        _c(
            "vma-write-locked",
            "the VMA must be write-locked (vma_start_write) before its fields change",
            "include/linux/mmap_lock.h vma_assert_write_locked",
            "use vm_flags_set/clear/mod, which call vma_start_write, under the mmap write lock",
        ),
        _c(
            "vma-locked",
            "a VMA may be used only while the mmap lock or its per-VMA read lock is held",
            "include/linux/mmap_lock.h vma_assert_locked; review H12",
            "look the VMA up again under a lock you hold; never keep a VMA across an unlock",
            kernel_checks=False,
        ),
        _c(
            "vma-attached",
            "a detached (unmapped) VMA must not be used",
            "mm/vma.c vms_gather_munmap_vmas, vma_mark_detached",
            "look the VMA up again (vma_lookup) under the mmap lock before using it",
            kernel_checks=False,
        ),
        _c(
            "might-sleep",
            "no sleeping operation in atomic context (spinlock, RCU read side, irqs off)",
            "kernel/sched/core.c __might_resched (CONFIG_DEBUG_ATOMIC_SLEEP)",
            "drop the spinlock first, or use the trylock / non-blocking variant",
        ),
        _c(
            "schedule-atomic",
            "a task must never schedule while atomic",
            "kernel/sched/core.c __schedule_bug",
            "never block with a spinlock held or preemption disabled",
        ),
        _c(
            "lock-order",
            "locks must be taken in one global order (no ABBA, incl. against reclaim)",
            "kernel/locking/lockdep.c check_noncircular",
            "take locks in the documented order; in reclaim paths use trylocks and skip",
        ),
        _c(
            "recursive-lock",
            "a task must not take a lock it already holds",
            "kernel/locking/lockdep.c check_deadlock",
            "do not re-take the lock; pass the guard you already hold",
        ),
        _c(
            "unlock-balance",
            "only the task holding a lock may release it, and only once",
            "kernel/locking/lockdep.c print_unlock_imbalance_bug; rwsem DEBUG_RWSEMS_WARN_ON",
            "release each guard exactly once, in the task that took it",
        ),
        _c(
            "lock-held-return",
            "no lock may be held when returning to user space or out of a driver hook",
            "kernel/locking/lockdep.c lockdep_sys_exit",
            "release every guard before the syscall or hook returns (use `with`)",
        ),
        _c(
            "deadlock",
            "an acquisition must not wait for something that can never happen",
            "hung task detector (kernel/hung_task.c)",
            "never take a lock you (or a lock you hold) already block",
        ),
        _c(
            "livelock",
            "concurrent tasks must make progress: a retry loop needs something that ends it",
            "soft-lockup detector (kernel/watchdog.c watchdog_timer_fn)",
            "do not spin on a trylock or retry without bound: take the lock (sleeping) or back "
            "off and return -EAGAIN to user space",
        ),
        _c(
            "insert-needs-mixedmap",
            "vm_insert_page on a VMA without VM_MIXEDMAP needs the mmap write lock",
            "mm/memory.c vm_insert_page BUG_ON(mmap_read_trylock()); review H1",
            "set VM_MIXEDMAP in ->mmap (VmAreaNew.set_mixedmap()) or check it with "
            "as_mixedmap_vma() before inserting",
        ),
        _c(
            "insert-pfnmap",
            "a refcounted page must never be inserted into a VM_PFNMAP VMA",
            "mm/memory.c vm_insert_page BUG_ON(VM_PFNMAP); review H2",
            "insert pages only into the driver's own VM_MIXEDMAP VMAs",
        ),
        _c(
            "pfn-insert-flags",
            "vmf_insert_pfn needs exactly one of VM_PFNMAP/VM_MIXEDMAP, no COW PFNMAP, and no "
            "struct-page pfn in a MIXEDMAP VMA",
            "mm/memory.c vmf_insert_pfn_prot BUG_ONs",
            "use vm_insert_page for struct pages; set VM_PFNMAP only on shared mappings",
        ),
        _c(
            "foreign-vma",
            "a driver must only insert into or zap VMAs it owns (its file, vm_ops, private data)",
            "review H3; rust_binder check_vma (commit 8ef2c15aeae0)",
            "check ownership first (VmOperations.check_vma(vma, owner)), or use "
            "unmap_mapping_range",
            kernel_checks=False,
        ),
        _c(
            "insert-hugetlb",
            "a 4K page must never be inserted into a VM_HUGETLB VMA",
            "review H3c; mm/memory.c walk_to_pmd VM_BUG_ON(pmd_trans_huge)",
            "check that the VMA is the driver's own before inserting",
            kernel_checks=False,
        ),
        _c(
            "live-flags",
            "on a live VMA a driver may only set VM_MIXEDMAP, VM_DONTCOPY or VM_DONTDUMP and "
            "clear VM_MAYWRITE/VM_MAYEXEC; in ->mmap it must not set access bits or VM_HUGETLB",
            "review (Jann Horn's list of acceptable driver flag changes); rust/kernel/mm/virt.rs",
            "change other flags only in ->mmap (VmAreaNew), and never VM_READ/WRITE/EXEC",
            kernel_checks=False,
        ),
        _c(
            "mixedmap-pfnmap-exclusive",
            "VM_MIXEDMAP and VM_PFNMAP are never both set",
            "review (Jann Horn: 'dangerous and invalid'); mm/memory.c vmf_insert_pfn_prot",
            "choose one: VM_MIXEDMAP for struct pages, VM_PFNMAP for raw pfns",
        ),
        _c(
            "flags-sticky",
            "VM_MIXEDMAP and VM_PFNMAP are never cleared once set; VM_HUGETLB never set by a "
            "driver",
            "review (Jann Horn); include/linux/mm.h",
            "never clear these flags; drivers cannot set VM_HUGETLB",
            kernel_checks=False,
        ),
        _c(
            "mixedmap-uffd",
            "a VMA with a userfaultfd context must not become VM_MIXEDMAP",
            "review (Jann Horn); include/linux/userfaultfd_k.h vma_can_userfault; H8",
            "set VM_MIXEDMAP only in ->mmap, before user space can register userfaultfd",
            kernel_checks=False,
        ),
        _c(
            "access-after-insert",
            "a driver VMA must not gain VM_WRITE/VM_EXEC after pages were inserted",
            "review H9; mm/mprotect.c mprotect_fixup, change_protection",
            "clear VM_MAYWRITE/VM_MAYEXEC in ->mmap (try_clear_maywrite/try_clear_mayexec)",
            kernel_checks=False,
        ),
        _c(
            "pfn-outlives-page",
            "a special (pfn) PTE must be zapped before the memory behind it is freed",
            "review H11; mm/memory.c vmf_insert_pfn takes no reference",
            "zap the range (zap_page_range_single / unmap_mapping_range) before freeing",
            kernel_checks=False,
        ),
        _c(
            "mm-users",
            "the mmap lock and VMAs are usable only while mm_users > 0",
            "include/linux/sched/mm.h mmget_not_zero; rust/kernel/mm.rs MmWithUser",
            "call mmget_not_zero() first and handle None",
            kernel_checks=False,
        ),
        _c(
            "mm-ref-owned",
            "an mm reference is released only by its owner, exactly once, with the release "
            "that matches it (mmdrop for mmgrab, mmput for mmget)",
            "include/linux/sched/mm.h mmdrop/mmput; rust/kernel/mm.rs ARef<Mm>, "
            "ARef<MmWithUser> (a borrowed &MmWithUser has no drop)",
            "release only references you took (OwnedMm, OwnedMmWithUser), with `with` or their "
            "own mmdrop()/mmput(); never one borrowed from current().mm() or a VMA",
        ),
        _c(
            "page-refcount",
            "a page's refcount must never drop below zero, nor be freed while mapped",
            "include/linux/mm.h put_page VM_BUG_ON_PAGE; mm/page_alloc.c bad_page",
            "release each page reference exactly once; unmap before freeing",
        ),
        _c(
            "fault-locked-page",
            "->fault hands the kernel its page locked and pinned, taken while the driver's lock "
            "still says the page is there; reclaim locks the page before it unmaps and frees it",
            "mm/memory.c __do_fault / finish_fault (VM_FAULT_LOCKED); mm/truncate.c "
            "truncate_inode_folio; safe layer VmOperations.fault",
            "return page.trylock() taken under the driver's lock (VmFaultReason.NOPAGE if it is "
            "held), and trylock the page in reclaim before unmapping and freeing it",
        ),
        _c(
            "folio-locked",
            "operations on a page-cache folio that need its lock (removal, release_folio, "
            "unmapping and freeing it in reclaim) run with PG_locked held, and folio_unlock "
            "is called once per lock",
            "mm/filemap.c folio_unlock, filemap_release_folio, __filemap_remove_folio "
            "VM_BUG_ON_FOLIO(!folio_test_locked(folio)); mm/vmscan.c __remove_mapping",
            "lock the folio first (Folio.lock(), AddressSpaceOwned.filemap_lock_folio()) and "
            "call the operation on the FolioGuard; unlock each guard once",
        ),
        _c(
            "pagecache-free",
            "a page-cache folio leaves every page table before it leaves the page cache, and "
            "the page cache before it is freed",
            'mm/filemap.c filemap_unaccount_folio ("Bad page cache", CONFIG_DEBUG_VM); '
            'mm/page_alloc.c free_page_is_bad ("non-NULL mapping")',
            "unmap the folio's offset (unmap_mapping_range) and remove it from the page cache "
            "(FolioGuard.filemap_remove_folio()) before the last reference goes",
        ),
        _c(
            "release-folio-gfp",
            "->release_folio must not sleep when its gfp mask lacks __GFP_DIRECT_RECLAIM",
            'mm/filemap.c filemap_release_folio ("whether the call may block"); '
            "mm/truncate.c mapping_evict_folio passes 0",
            "check gfp in release_folio and answer without blocking (trylocks only, or return "
            "False) when gfp lacks Gfp.DIRECT_RECLAIM",
            kernel_checks=False,
        ),
        _c(
            "pagecache-foreign",
            "a driver adds folios to and removes them from only the page cache of a mapping it "
            "created (its own anonymous inode)",
            "mm/filemap.c filemap_add_folio (no owner check); review (binder pages in a "
            "per-open anonymous inode's address_space)",
            "create the mapping with AddressSpaceOperations.new_mapping() and use that "
            "AddressSpaceOwned; never insert into file.mapping of a file you did not set up",
            kernel_checks=False,
        ),
        _c(
            "zap-range",
            "zap_page_range_single must be given a range inside the VMA",
            "rust/kernel/mm/virt.rs zap_page_range_single (range check, v10)",
            "pass an address range inside [vma.start, vma.end)",
        ),
        _c(
            "zap-vma-ptes",
            "zap_vma_ptes zaps only VM_PFNMAP ranges inside the VMA; elsewhere it silently does "
            "nothing",
            "mm/memory.c zap_vma_ptes (6.12: returns unless VM_PFNMAP); review H13",
            "use zap_page_range_single (VmAreaRef.zap_page_range_single) or unmap_mapping_range",
            kernel_checks=False,
        ),
        _c(
            "mmap-hook",
            "->mmap must not move the VMA nor add VM_MAYWRITE",
            "mm/mmap.c mmap_region WARN_ON_ONCE(addr != vma->vm_start)",
            "never change vm_start; clear VM_MAY* bits only",
        ),
        _c(
            "split-range",
            "a VMA is split only at an address strictly inside it",
            "mm/vma.c __split_vma WARN_ON",
            "split at vm_start < addr < vm_end",
        ),
        _c(
            "fault-progress",
            "a ->fault handler that reports success must map the page",
            "mm/memory.c __do_fault / finish_fault",
            "set vmf.page (or insert the PTE and return VM_FAULT_NOPAGE)",
        ),
        _c(
            "leak",
            "every mm reference, page and guard taken must be released",
            "kernel/fork.c mmput/mmdrop; mm/page_alloc.c __free_pages; lockdep",
            "release it on every path (a `with` block, or OwnedMm.mmdrop(), "
            "OwnedMmWithUser.mmput(), Page.free(), unlock())",
        ),
        _c(
            "stale-handle",
            "a handle must not be used after the lock or object it depended on ended",
            "rust/kernel/mm/virt.rs lifetimes ('a of VmaRef/VmaNew)",
            "use handles only inside the guard's `with` block / the hook that gave them",
        ),
        _c(
            "use-after-free",
            "an object freed after an RCU grace period must not be used afterwards",
            "mm/kasan/report.c kasan_report (CONFIG_KASAN); kernel/rcu/tree.c; review (Jann Horn "
            "on scheduling while atomic)",
            "never sleep inside an RCU read-side section (spinlock held)",
        ),
    ]
)


def contract(id: str) -> Contract:
    """The registered contract ``id`` (KeyError for an unknown id)."""
    return CONTRACTS[id]

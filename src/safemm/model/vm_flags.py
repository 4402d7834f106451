"""``vm_flags_t`` bits and the derived predicates of include/linux/mm.h.

:class:`VmFlags` is the public ``enum.IntFlag``; the model itself stores and tests plain ``int``
values (the module-level ``VM_*`` constants) because IntFlag arithmetic is slow on hot paths.
"""

from __future__ import annotations

import enum

__all__ = ["VmFlags"]


class VmFlags(enum.IntFlag):
    """VMA flags with the kernel's names and bit values (include/linux/mm.h)."""

    NONE = 0
    READ = 0x00000001
    WRITE = 0x00000002
    EXEC = 0x00000004
    SHARED = 0x00000008
    MAYREAD = 0x00000010
    MAYWRITE = 0x00000020
    MAYEXEC = 0x00000040
    MAYSHARE = 0x00000080
    GROWSDOWN = 0x00000100
    UFFD_MISSING = 0x00000200
    PFNMAP = 0x00000400
    UFFD_WP = 0x00001000
    LOCKED = 0x00002000
    IO = 0x00004000
    SEQ_READ = 0x00008000
    RAND_READ = 0x00010000
    DONTCOPY = 0x00020000
    DONTEXPAND = 0x00040000
    LOCKONFAULT = 0x00080000
    ACCOUNT = 0x00100000
    NORESERVE = 0x00200000
    HUGETLB = 0x00400000
    SYNC = 0x00800000
    ARCH_1 = 0x01000000
    WIPEONFORK = 0x02000000
    DONTDUMP = 0x04000000
    SOFTDIRTY = 0x08000000
    MIXEDMAP = 0x10000000
    HUGEPAGE = 0x20000000
    NOHUGEPAGE = 0x40000000
    MERGEABLE = 0x80000000
    UFFD_MINOR = 1 << 38
    DROPPABLE = 1 << 40
    SEALED = 1 << 63


VM_NONE = 0
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_MAYREAD = 0x10
VM_MAYWRITE = 0x20
VM_MAYEXEC = 0x40
VM_MAYSHARE = 0x80
VM_GROWSDOWN = 0x100
VM_UFFD_MISSING = 0x200
VM_PFNMAP = 0x400
VM_UFFD_WP = 0x1000
VM_LOCKED = 0x2000
VM_IO = 0x4000
VM_SEQ_READ = 0x8000
VM_RAND_READ = 0x10000
VM_DONTCOPY = 0x20000
VM_DONTEXPAND = 0x40000
VM_LOCKONFAULT = 0x80000
VM_ACCOUNT = 0x100000
VM_NORESERVE = 0x200000
VM_HUGETLB = 0x400000
VM_WIPEONFORK = 0x2000000
VM_DONTDUMP = 0x4000000
VM_SOFTDIRTY = 0x8000000
VM_MIXEDMAP = 0x10000000
VM_UFFD_MINOR = 1 << 38
VM_DROPPABLE = 1 << 40
VM_SEALED = 1 << 63

VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_MAY_FLAGS = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
#: Never merged, never mlocked (include/linux/mm.h VM_SPECIAL).
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP
VM_UFFD_FLAGS = VM_UFFD_MISSING | VM_UFFD_WP | VM_UFFD_MINOR
#: The flags mlock manages (include/linux/mm.h VM_LOCKED_MASK).
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT
#: Flags ignored when deciding whether two VMAs can merge (VM_IGNORE_MERGE).
VM_IGNORE_MERGE = VM_SOFTDIRTY
#: Every bit the model knows; ``vm_flags_*`` refuse others.
VM_KNOWN = sum(int(f) for f in VmFlags)


def is_cow_mapping(flags: int) -> bool:
    """``is_cow_mapping`` (mm/internal.h): private and may become writable."""
    return flags & (VM_SHARED | VM_MAYWRITE) == VM_MAYWRITE


def vma_flags_accessible(flags: int) -> bool:
    """``vma_is_accessible``: any of read/write/exec (x86 cannot map write- or exec-only)."""
    return flags & VM_ACCESS_FLAGS != 0


def pte_writable_for(flags: int) -> bool:
    """Whether ``vm_get_page_prot(flags)`` gives writable PTEs (arch/x86/mm/pgprot.c).

    Only shared writable mappings get writable PTEs at map time; private writable ones get
    read-only PTEs and copy on write (``PAGE_COPY``).
    """
    return flags & (VM_WRITE | VM_SHARED) == VM_WRITE | VM_SHARED


def flags_str(flags: int) -> str:
    """The ``VmFlags`` names set in ``flags``, like ``READ|MAYREAD``, for messages."""
    names = [f.name for f in VmFlags if f.value and flags & f.value == f.value and f.name]
    return "|".join(names) if names else "NONE"

"""``/proc/PID/maps``: fs/proc/task_mmu.c ``show_map_vma``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mman import PAGE_SHIFT
from .vm_flags import VM_EXEC, VM_MAYSHARE, VM_READ, VM_WRITE

if TYPE_CHECKING:
    from .mm_types import MmStruct, Vma

__all__ = ["show_map_vma", "show_maps"]

#: (major, minor) of the pseudo filesystems behind each inode kind.
_PSEUDO_FS_DEV = {"chr": (0, 5), "shmem": (0, 1), "hugetlbfs": (0, 15), "anon": (0, 14)}


def show_map_vma(vma: Vma) -> str:
    """One ``/proc/PID/maps`` line, padded as the kernel pads it (``seq_pad`` to column 73)."""
    flags = vma.vm_flags
    f = vma.vm_file
    dev = (0, 0)
    ino = 0
    pgoff = 0
    if f is not None:
        dev = _PSEUDO_FS_DEV.get(f.f_inode.kind, (0, 0))
        ino = f.f_inode.ino
        pgoff = vma.vm_pgoff << PAGE_SHIFT
    line = (
        f"{vma.vm_start:08x}-{vma.vm_end:08x} "
        f"{'r' if flags & VM_READ else '-'}{'w' if flags & VM_WRITE else '-'}"
        f"{'x' if flags & VM_EXEC else '-'}{'s' if flags & VM_MAYSHARE else 'p'} "
        f"{pgoff:08x} {dev[0]:02x}:{dev[1]:02x} {ino} "
    )
    if f is not None:
        return line.ljust(72) + " " + f.path
    return line


def show_maps(mm: MmStruct) -> str:
    """The whole file: one line per VMA, ascending."""
    return "".join(show_map_vma(v) + "\n" for v in mm.vmas())

"""Shared memory files: the parts of mm/shmem.c behind memfd (read, write, truncate, mmap).

Mirrors ``shmem_mmap`` (``f_op->mmap``: the VMA gets ``shmem_vm_ops``, whose fault finds or
allocates the page-cache page and is SIGBUS at or past ``i_size``), ``shmem_file_read_iter``
(holes read as zeroes without allocating, reads stop at ``i_size``),
``shmem_file_write_iter``/``generic_perform_write`` (``shmem_write_begin`` allocates, the
file grows to cover what was written; ``generic_write_check_limits``), and
``shmem_setattr``'s size change: growing only moves ``i_size``; shrinking moves it, then
``unmap_mapping_range(holebegin, 0, even_cows=1)`` zaps every mapping of the pages past the
new size in every process (private COW copies included) and ``shmem_truncate_range`` frees
them and zeroes the tail of a partial last page.

Simplifications: no swap, no huge pages, no seals, no ``RLIMIT_FSIZE``, no size limit of the
tmpfs instance; pages are allocated one at a time.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .fs import FileOperationsStruct
from .memory import unmap_mapping_range
from .mm_types import VmOperationsStruct
from .mman import PAGE_SHIFT, PAGE_SIZE
from .mmap import SHMEM_VM_OPS
from .page_alloc import GFP_HIGHUSER, Gfp, PageKind

if TYPE_CHECKING:
    from .fs import File, Inode
    from .mm_types import Vma
    from .page_alloc import Page

__all__ = [
    "MAX_LFS_FILESIZE",
    "SHMEM_FILE_OPS",
    "shmem_file_read",
    "shmem_file_write",
    "shmem_setattr_size",
]

#: ``MAX_LFS_FILESIZE`` on 64-bit: ``LLONG_MAX``.
MAX_LFS_FILESIZE = (1 << 63) - 1

#: ``shmem_vm_ops``: the same fault as the anonymous shared mappings' ``shmem_anon_vm_ops``.
SHMEM_FILE_VM_OPS = VmOperationsStruct("shmem_vm_ops", fault=SHMEM_VM_OPS.fault, map_pages=True)


def shmem_mmap(file: File, vma: Vma) -> None:
    """``shmem_mmap``: the VMA faults through the page cache (``shmem_vm_ops``)."""
    vma.vm_ops = SHMEM_FILE_VM_OPS


#: ``shmem_file_operations`` (the hooks the model has: mmap; read/write/truncate are called
#: directly by the syscalls).
SHMEM_FILE_OPS = FileOperationsStruct("shmem_file_operations", mmap=shmem_mmap)


def _get_page(inode: Inode, index: int) -> Page:
    """``shmem_get_folio`` with SGP_WRITE: the page-cache page at ``index``, allocated (and
    zeroed) if it is a hole.

    Raises:
        KernelError: ENOMEM when no page can be allocated.
    """
    mapping = inode.i_mapping
    page = mapping.pages.get(index)
    if page is None:
        page = inode.kernel.pages.alloc_page(GFP_HIGHUSER | Gfp.ZERO, PageKind.FILE)
        page.mapping = mapping
        page.index = index
        mapping.pages[index] = page
    return page


def shmem_file_read(inode: Inode, length: int, pos: int) -> bytes:
    """``shmem_file_read_iter``: up to ``length`` bytes from ``pos``, stopping at ``i_size``;
    holes read as zeroes (nothing is allocated)."""
    end = min(pos + length, inode.i_size)
    out = bytearray()
    while pos < end:
        index, off = pos >> PAGE_SHIFT, pos & (PAGE_SIZE - 1)
        chunk = min(end - pos, PAGE_SIZE - off)
        page = inode.i_mapping.pages.get(index)
        out += bytes(chunk) if page is None else page.read(off, chunk)
        pos += chunk
    return bytes(out)


def shmem_file_write(inode: Inode, data: bytes, pos: int) -> int:
    """``shmem_file_write_iter``: ``generic_write_checks`` (EFBIG at or past
    ``MAX_LFS_FILESIZE``, the count cut to end there), then ``generic_perform_write`` page by
    page (``shmem_write_begin`` allocates holes); ``i_size`` grows to cover the write.
    Returns the number of bytes written.

    Raises:
        KernelError: EFBIG; ENOMEM if the first page cannot be allocated (a later one ends
            the write short, as ``generic_perform_write`` returns what it copied).
    """
    if not data:
        return 0
    if pos >= MAX_LFS_FILESIZE:
        raise KernelError(errno.EFBIG, f"pwrite: offset {pos:#x} is past the largest file size")
    data = data[: MAX_LFS_FILESIZE - pos]
    done = 0
    while done < len(data):
        index, off = (pos + done) >> PAGE_SHIFT, (pos + done) & (PAGE_SIZE - 1)
        chunk = min(len(data) - done, PAGE_SIZE - off)
        try:
            page = _get_page(inode, index)
        except KernelError:
            if done:
                break
            raise
        page.write(off, bytes(data[done : done + chunk]))
        done += chunk
    inode.i_size = max(inode.i_size, pos + done)
    return done


def shmem_truncate_range(inode: Inode, lstart: int, oldsize: int) -> None:
    """``shmem_truncate_range(inode, lstart, -1)``: free the page-cache pages wholly past
    ``lstart`` and zero the rest of the page ``lstart`` falls in
    (``truncate_inode_partial_folio``). Like the kernel's xarray walk, it costs what it
    removes: it looks at the indices up to ``oldsize`` or at the cached pages, whichever are
    fewer."""
    mapping = inode.i_mapping
    first_whole = (lstart + PAGE_SIZE - 1) >> PAGE_SHIFT
    partial = lstart & (PAGE_SIZE - 1)
    if partial:
        page = mapping.pages.get(lstart >> PAGE_SHIFT)
        if page is not None:
            page.write(partial, bytes(PAGE_SIZE - partial))
    old_end = (oldsize + PAGE_SIZE - 1) >> PAGE_SHIFT
    if old_end - first_whole <= len(mapping.pages):
        doomed = [i for i in range(first_whole, old_end) if i in mapping.pages]
    else:
        doomed = sorted(i for i in mapping.pages if i >= first_whole)
    for index in doomed:
        page = mapping.pages.pop(index)
        page.mapping = None
        inode.kernel.pages.put_page(page, "mm/shmem.c:shmem_undo_range")


def shmem_setattr_size(inode: Inode, newsize: int) -> None:
    """``shmem_setattr`` for ATTR_SIZE: set ``i_size``; when shrinking, zap every mapping of
    the pages past the new size (``unmap_mapping_range(holebegin, 0, 1)``, before and after
    freeing them, as the kernel does against racing COW faults) and free them."""
    oldsize = inode.i_size
    inode.i_size = newsize
    if newsize > oldsize:
        return
    holebegin = (newsize + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if oldsize > holebegin:
        unmap_mapping_range(inode.i_mapping, holebegin, 0, even_cows=True)
    shmem_truncate_range(inode, newsize, oldsize)
    if oldsize > holebegin:
        unmap_mapping_range(inode.i_mapping, holebegin, 0, even_cows=True)

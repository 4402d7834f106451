"""Files, inodes and address spaces.

Mirrors include/linux/fs.h (``struct file``, ``struct inode``, ``struct address_space`` with
its ``i_mmap`` interval tree and ``i_mmap_rwsem``, ``struct file_operations``), fs/file_table.c
(``fput``/``__fput``: the last reference calls ``->release``), fs/libfs.c
(``alloc_anon_inode``) and the parts of mm/shmem.c that back shared anonymous memory.

Simplification: no real filesystem. The inodes that exist are character devices registered
with ``Kernel.register_device``, anonymous inodes a driver allocates, the shmem inodes behind
``MAP_SHARED|MAP_ANONYMOUS`` and the hugetlbfs inodes behind ``MAP_HUGETLB``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from typing_extensions import override

from .errors import KernelError
from .interval_tree import IntervalTree
from .locking import LockClass, RwSemaphore

if TYPE_CHECKING:
    from .kernel import Device, Kernel
    from .mm_types import Vma
    from .page_alloc import Page

__all__ = [
    "FMODE_READ",
    "FMODE_WRITE",
    "AddressSpace",
    "AddressSpaceOperationsStruct",
    "File",
    "FileOperationsStruct",
    "Inode",
    "alloc_anon_inode",
]

FMODE_READ = 0x1
FMODE_WRITE = 0x2

I_MMAP_CLASS = LockClass("&mapping->i_mmap_rwsem")


@dataclass(frozen=True, eq=False)
class FileOperationsStruct:
    """A ``file_operations``: a driver's file hooks (None = not provided).

    Hooks signal failure by raising :class:`KernelError`. ``unlocked_ioctl`` returns the
    ioctl's result. ``owner`` identifies the driver (strict-mode ownership checks).
    """

    name: str
    open: Callable[[File], None] | None = None
    release: Callable[[File], None] | None = None
    mmap: Callable[[File, Vma], None] | None = None
    unlocked_ioctl: Callable[[File, int, object], object] | None = None
    owner: object = None


@dataclass(frozen=True, eq=False)
class AddressSpaceOperationsStruct:
    """An ``address_space_operations``: the hooks reclaim and the page cache call on a
    mapping's folios (None = not provided).

    ``release_folio(folio, gfp)`` is asked, with the folio locked, whether the folio's private
    state can go so the folio can be freed (``filemap_release_folio``); it returns False to
    keep the folio. ``free_folio(folio)`` is told after a folio left the page cache
    (``__remove_mapping``, ``filemap_remove_folio``). ``owner`` identifies the driver.
    """

    name: str
    release_folio: Callable[[Page, int], bool] | None = None
    free_folio: Callable[[Page], None] | None = None
    owner: object = None


class AddressSpace:
    """An ``address_space``: an inode's page cache and ``i_mmap``, every VMA mapping it.

    Invariant: ``i_mmap`` holds exactly the attached VMAs, in any mm, whose
    ``vm_file.f_mapping`` is this mapping, each under its page-offset range; ``pages`` (the
    ``i_pages`` xarray) maps page offsets to page-cache pages, each with ``mapping`` set to
    this mapping and ``index`` to its offset, and holding one reference for the cache.
    ``a_ops`` are the driver's hooks (None: the default ones); ``owner`` the driver that
    allocated the inode (strict-mode ownership checks); ``release_always`` is
    ``AS_RELEASE_ALWAYS`` (``mapping_set_release_always``: reclaim asks ``release_folio``
    about every folio, private data or not); ``private_data`` is ``i_private_data``.
    """

    __slots__ = (
        "a_ops",
        "host",
        "i_mmap",
        "i_mmap_rwsem",
        "owner",
        "pages",
        "private_data",
        "release_always",
    )

    def __init__(self, host: Inode) -> None:
        self.host = host
        self.i_mmap: IntervalTree[Vma] = IntervalTree()
        self.i_mmap_rwsem = RwSemaphore(f"inode{host.ino}->i_mmap_rwsem", I_MMAP_CLASS)
        self.pages: dict[int, Page] = {}
        self.a_ops: AddressSpaceOperationsStruct | None = None
        self.release_always = False
        self.private_data: object = None
        #: The driver that allocated the inode (``alloc_anon_inode`` in its code), or None.
        self.owner: object = None

    @override
    def __repr__(self) -> str:
        return f"<address_space of inode {self.host.ino}>"


class Inode:
    """An ``inode``: ``kind`` is "chr" (a device node), "anon" (``alloc_anon_inode``),
    "shmem" (shared anonymous memory) or "hugetlbfs".

    ``i_size`` is the file size in bytes; only shmem uses it (a fault at or past it is
    SIGBUS, ``shmem_get_folio_gfp``), the other kinds leave it 0.

    Invariant: ``i_mapping`` is this inode's own address space.
    """

    __slots__ = ("device", "i_mapping", "i_size", "ino", "kernel", "kind")

    def __init__(self, kernel: Kernel, kind: str, device: Device | None = None) -> None:
        self.kernel = kernel
        self.ino = kernel.new_id("ino", 100)
        self.kind = kind
        self.device = device
        self.i_size = 0
        self.i_mapping = AddressSpace(self)

    def evict(self) -> None:
        """``evict``/``truncate_inode_pages``: drop the page cache's page references."""
        pages = self.i_mapping.pages
        self.i_mapping.pages = {}
        for page in pages.values():
            page.mapping = None
            self.kernel.pages.put_page(page, "mm/truncate.c:truncate_inode_pages")


class File:
    """A ``struct file``: one open of an inode.

    Invariant: ``f_count`` counts file descriptors and VMAs referring to the file; when it
    drops to 0 the file is released (``->release`` runs once) and ``released`` is set.
    ``f_mapping`` starts as ``f_inode.i_mapping`` and a driver may point it at another
    address space in ``->open`` (as DRM and aio do with an anonymous inode).
    """

    __slots__ = (
        "f_count",
        "f_inode",
        "f_mapping",
        "f_mode",
        "f_op",
        "id",
        "kernel",
        "path",
        "private_data",
        "released",
    )

    def __init__(
        self, kernel: Kernel, inode: Inode, fops: FileOperationsStruct | None, mode: int, path: str
    ) -> None:
        self.id = kernel.new_id("file")
        self.kernel = kernel
        self.f_inode = inode
        self.f_mapping = inode.i_mapping
        self.f_op = fops
        self.f_mode = mode
        self.f_count = 1
        self.private_data: object = None
        self.path = path
        self.released = False

    @property
    def device(self) -> Device | None:
        """The device this file was opened from, if any."""
        return self.f_inode.device

    @override
    def __repr__(self) -> str:
        return f"<file#{self.id} {self.path}>"


def get_file(file: File) -> File:
    """``get_file``: take a reference."""
    if file.released:
        raise AssertionError(f"get_file on released {file!r}")
    file.f_count += 1
    return file


def fput(file: File) -> None:
    """``fput``: drop a reference; the last one defers ``__fput`` to task work.

    Like the kernel, the release does not run inside the caller (which may hold the mmap
    lock): it runs when the current syscall or kernel work item finishes.
    """
    if file.f_count <= 0:
        raise AssertionError(f"fput on {file!r} with f_count {file.f_count}")
    file.f_count -= 1
    if file.f_count == 0:
        file.kernel.task_work_add(lambda: _fput(file))


def _fput(file: File) -> None:
    """``__fput``: call ``->release`` and drop the inode's page cache if it was private."""
    k = file.kernel
    file.released = True
    fops = file.f_op
    if fops is not None and fops.release is not None:
        with k.driver_hook(fops.owner, file, f"{fops.name}->release"):
            fops.release(file)
    k.file_released(file)
    if file.f_inode.kind in ("shmem", "hugetlbfs"):
        file.f_inode.evict()


def alloc_anon_inode(kernel: Kernel) -> Inode:
    """``alloc_anon_inode`` (fs/libfs.c): a fresh inode with its own address space, owned by
    the driver whose code calls it."""
    inode = Inode(kernel, "anon")
    inode.i_mapping.owner = kernel.driver_owner()
    return inode


def shmem_file_setup(kernel: Kernel, kind: str = "shmem", size: int = 0) -> File:
    """``shmem_zero_setup``/``hugetlb_file_setup``: the unnamed file behind a shared
    anonymous (or hugetlb) mapping, ``size`` bytes long (the mapping's length at mmap time:
    growing the mapping later does not grow the file); it is referenced only by its VMAs."""
    inode = Inode(kernel, kind)
    inode.i_size = size
    path = "/dev/zero (deleted)" if kind == "shmem" else "/anon_hugepage (deleted)"
    return File(kernel, inode, None, FMODE_READ | FMODE_WRITE, path)


def check_mode(file: File, mode: int, what: str) -> None:
    """Refuse with EACCES when ``file`` was not opened with ``mode``."""
    if file.f_mode & mode != mode:
        raise KernelError(errno.EACCES, f"{what}: {file.path} not opened for that access")

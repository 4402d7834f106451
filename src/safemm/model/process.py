"""User space: a process and its system calls.

Each method is the user-space view of one syscall (or, for :meth:`Process.read` and
:meth:`Process.write`, of plain loads and stores): it checks its arguments as the syscall entry
does, enters the kernel as this process's task, takes the locks the kernel takes
(``mmap_write_lock_killable`` for mmap/munmap/mprotect/mremap, ...) and calls the model.
A refused call raises :class:`KernelError` with the syscall's errno.

Mirrors mm/mmap.c ``ksys_mmap_pgoff``/``vm_mmap_pgoff``, mm/vma.c ``__vm_munmap``,
mm/mprotect.c and mm/mremap.c syscall bodies, kernel/fork.c ``copy_mm``/``copy_files``,
kernel/exit.c ``do_exit`` (``exit_mm`` before ``exit_files``), fs/open.c, fs/ioctl.c and
fs/userfaultfd.c.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from typing_extensions import override

from .errors import KernelError
from .fault import user_access
from .fork import dup_mmap, mmget, mmput
from .fs import FMODE_READ, FMODE_WRITE, File, fput, get_file
from .madvise import do_madvise, madvise_needs_write_lock
from .memfd import memfd_create
from .memory import read_pfn, write_pfn
from .mlock import apply_vma_lock_flags, mlock_populate, mlock_range
from .mm_types import MmStruct
from .mman import (
    HPAGE_SIZE,
    MAP_ANONYMOUS,
    MAP_HUGETLB,
    MREMAP_FIXED,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
)
from .mmap import do_mmap
from .mmap_lock import mmap_read_lock, mmap_read_unlock, mmap_write_lock, mmap_write_unlock
from .mprotect import do_mprotect
from .mremap import do_mremap
from .pgtable import HugePmd
from .shmem import (
    MAX_LFS_FILESIZE,
    SHMEM_FILE_OPS,
    shmem_file_read,
    shmem_file_write,
    shmem_setattr_size,
)
from .task_mmu import show_maps
from .userfaultfd import UserfaultfdCtx, userfaultfd_register
from .vm_flags import VM_LOCKED
from .vma import do_vmi_munmap

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["O_RDONLY", "O_RDWR", "O_WRONLY", "FilesStruct", "Process"]

#: ``open`` flag: read only.
O_RDONLY = 0
#: ``open`` flag: write only.
O_WRONLY = 1
#: ``open`` flag: read and write.
O_RDWR = 2
ULONG_MAX = (1 << 64) - 1
#: The first file descriptor handed out (0-2 are stdin/stdout/stderr).
FIRST_FD = 3


def _ulong(name: str, value: object) -> int:
    """An ``unsigned long`` syscall argument: negative values wrap as in C."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < -(1 << 63) or value > ULONG_MAX:
        raise KernelError(errno.EINVAL, f"{name} {value:#x} does not fit in an unsigned long")
    return value & ULONG_MAX


class FilesStruct:
    """A ``files_struct`` (fs/file.c): the descriptor table, shared by the threads of a
    process (``CLONE_FILES``).

    Invariant: ``count`` is the number of live tasks using the table; ``fds`` maps each open
    descriptor to a file holding one reference for it.
    """

    __slots__ = ("count", "fds")

    def __init__(self) -> None:
        self.count = 1
        self.fds: dict[int, File] = {}


class Process:
    """A user task — a process, or a thread of one (:meth:`spawn_thread`) — with its
    address space and file-descriptor table.

    Invariant: while ``alive``, ``task.mm is mm`` and this task holds one ``mm.mm_users``
    reference; ``fds`` is the descriptor table (``files.fds``), shared with every thread of
    the group (``tgid`` is the pid of the first one).
    """

    def __init__(
        self,
        kernel: Kernel,
        pid: int,
        comm: str = "",
        mm: MmStruct | None = None,
        *,
        thread_of: Process | None = None,
    ) -> None:
        self.kernel = kernel
        self.pid = pid
        self.comm = comm or f"proc{pid}"
        self.task = kernel.new_task(pid, self.comm)
        self.mm = mm if mm is not None else MmStruct(kernel, pid)
        self.task.mm = self.mm
        if thread_of is None:
            self.tgid = pid
            self.files = FilesStruct()
            self.uffd: UserfaultfdCtx | None = None
        else:
            self.tgid = thread_of.tgid
            self.files = thread_of.files
            self.files.count += 1
            self.uffd = thread_of.uffd
        self.fds = self.files.fds
        self.alive = True
        kernel.processes[pid] = self

    @override
    def __repr__(self) -> str:
        return f"<Process {self.comm} pid={self.pid}>"

    def _check_alive(self) -> None:
        if not self.alive:
            raise KernelError(errno.ESRCH, f"process {self.pid} has exited")

    def _file(self, fd: object) -> File:
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"fd must be an int, got {type(fd).__name__}")
        f = self.fds.get(fd)
        if f is None:
            raise KernelError(errno.EBADF, f"fd {fd} is not open in process {self.pid}")
        return f

    @contextmanager
    def _fdget(self, fd: object) -> Iterator[File]:
        """``fdget``/``fdput`` (fs/file.c): the descriptor's file, pinned for the call, so a
        sibling thread's ``close`` cannot release it under the syscall. Inside an entry."""
        f = get_file(self._file(fd))
        try:
            yield f
        finally:
            fput(f)

    def _fd_alloc(self) -> int:
        fd = FIRST_FD
        while fd in self.fds:
            fd += 1
        return fd

    # ---------------------------------------------------------------- files

    def open(self, path: str, flags: int = O_RDWR) -> int:
        """``open(2)`` a registered device; ENOENT if none, EINVAL for bad flags.

        The driver's ``->open`` may refuse (its error is returned, and ``->release`` is not
        called, as for a failed ``do_dentry_open``).
        """
        self._check_alive()
        pth: object = path
        if not isinstance(pth, str):
            raise TypeError(f"path must be a str, got {type(path).__name__}")
        fl: object = flags
        if isinstance(fl, bool) or not isinstance(fl, int) or fl & ~3 or fl == 3:
            raise KernelError(errno.EINVAL, f"open: bad flags {flags!r}")
        k = self.kernel
        with k.enter(self.task, "sys_openat"):
            dev = k.devices.get(path)
            if dev is None:
                raise KernelError(errno.ENOENT, f"open: no such device {path}")
            mode = {O_RDONLY: FMODE_READ, O_WRONLY: FMODE_WRITE, O_RDWR: FMODE_READ | FMODE_WRITE}
            f = File(k, dev.inode, dev.fops, mode[flags], path)
            if dev.fops.open is not None:
                with k.driver_hook(dev.fops.owner, f, f"{dev.fops.name}->open"):
                    dev.fops.open(f)
            k.file_opened(f)
            fd = self._fd_alloc()
            self.fds[fd] = f
            return fd

    def close(self, fd: int) -> None:
        """``close(2)``: drop the descriptor's file reference (EBADF if not open)."""
        self._check_alive()
        self._file(fd)
        with self.kernel.enter(self.task, "sys_close"):
            # pick_file: another thread of the group may have closed it since the check.
            f = self.fds.pop(fd, None)
            if f is None:
                raise KernelError(errno.EBADF, f"fd {fd} is not open in process {self.pid}")
            fput(f)

    def ioctl(self, fd: int, cmd: int, arg: object = None) -> object:
        """``ioctl(2)``: call the driver's ``->unlocked_ioctl`` (ENOTTY if it has none)."""
        self._check_alive()
        self._file(fd)
        if isinstance(cmd, bool) or not isinstance(cmd, int):
            raise TypeError(f"cmd must be an int, got {type(cmd).__name__}")
        k = self.kernel
        with k.enter(self.task, "sys_ioctl"), self._fdget(fd) as f:
            fops = f.f_op
            if fops is None or fops.unlocked_ioctl is None:
                raise KernelError(errno.ENOTTY, f"ioctl: {f.path} has no ioctl")
            with k.driver_hook(fops.owner, f, f"{fops.name}->unlocked_ioctl"):
                return fops.unlocked_ioctl(f, cmd, arg)

    # ---------------------------------------------------------------- memfd and file I/O

    def memfd_create(self, name: str, flags: int = 0) -> int:
        """``memfd_create(2)``: a new shmem file (size 0) on a new descriptor; see
        :func:`~safemm.model.memfd.memfd_create` for the EINVAL cases."""
        self._check_alive()
        nm: object = name
        if not isinstance(nm, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        flags = _ulong("flags", flags)
        k = self.kernel
        with k.enter(self.task, "sys_memfd_create"):
            f = memfd_create(k, name, flags)
            k.file_opened(f)
            fd = self._fd_alloc()
            self.fds[fd] = f
            return fd

    def _shmem_file(self, fd: int, mode: int, what: str) -> File:
        """The checks of ``vfs_read``/``vfs_write`` and ``do_sys_ftruncate`` on the file:
        EBADF without the open mode ``mode``; EINVAL if it has no such operation (only shmem
        files have read, write and truncate in the model)."""
        f = self._file(fd)  # pinned by the caller's _fdget
        if not f.f_mode & mode:
            if what == "ftruncate":
                raise KernelError(errno.EINVAL, f"ftruncate: fd {fd} is not open for writing")
            raise KernelError(errno.EBADF, f"{what}: fd {fd} is not open for that access")
        if f.f_inode.kind != "shmem" or f.f_op is not SHMEM_FILE_OPS:
            raise KernelError(errno.EINVAL, f"{what}: {f.path} has no {what} operation")
        return f

    def ftruncate(self, fd: int, length: int) -> None:
        """``ftruncate(2)`` (fs/open.c ``do_sys_ftruncate`` → ``shmem_setattr``): EINVAL for
        a negative length, a file not open for writing or not a regular file; EBADF for a bad
        descriptor. Shrinking zaps the pages past the new size from every mapping of the file
        in every process (``unmap_mapping_range``)."""
        self._check_alive()
        ln: object = length
        if isinstance(ln, bool) or not isinstance(ln, int):
            raise TypeError(f"length must be an int, got {type(length).__name__}")
        if not -(1 << 63) <= length < 1 << 63:
            raise KernelError(errno.EINVAL, f"ftruncate: length {length:#x} is not a loff_t")
        with self.kernel.enter(self.task, "sys_ftruncate"):
            if length < 0:
                raise KernelError(errno.EINVAL, f"ftruncate: negative length {length}")
            f = self._shmem_file(fd, FMODE_WRITE, "ftruncate")
            with self._fdget(fd):
                shmem_setattr_size(f.f_inode, length)

    @staticmethod
    def _rw_offset(what: str, count: int, offset: int) -> None:
        """``ksys_pread64``/``ksys_pwrite64``: EINVAL for a negative offset (checked before
        the descriptor)."""
        for name, value in (("count", count), ("offset", offset)):
            v: object = value
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if offset < 0:
            raise KernelError(errno.EINVAL, f"{what}: negative offset {offset}")

    @staticmethod
    def _rw_verify_area(what: str, count: int, offset: int) -> None:
        """``rw_verify_area`` (after the descriptor checks): EINVAL for a negative count or
        an end past ``LLONG_MAX``."""
        if count < 0:
            raise KernelError(errno.EINVAL, f"{what}: negative count {count}")
        if offset + count > MAX_LFS_FILESIZE:
            raise KernelError(errno.EINVAL, f"{what}: {offset:#x}+{count:#x} overflows loff_t")

    def pread(self, fd: int, length: int, offset: int) -> bytes:
        """``pread64(2)``: up to ``length`` bytes at ``offset`` (fewer at the end of the file;
        holes read as zeroes). EINVAL for a negative offset; EBADF for a bad descriptor or
        one not open for reading; EINVAL for a file without a read operation."""
        self._check_alive()
        self._rw_offset("pread", length, offset)
        with self.kernel.enter(self.task, "sys_pread64"):
            f = self._shmem_file(fd, FMODE_READ, "pread")
            self._rw_verify_area("pread", length, offset)
            with self._fdget(fd):
                return shmem_file_read(f.f_inode, length, offset)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        """``pwrite64(2)``: write ``data`` at ``offset``, growing the file as needed; returns
        the count written. Errors as :meth:`pread` (EBADF when not open for writing), and
        EFBIG at ``MAX_LFS_FILESIZE``."""
        self._check_alive()
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        self._rw_offset("pwrite", len(data), offset)
        with self.kernel.enter(self.task, "sys_pwrite64"):
            f = self._shmem_file(fd, FMODE_WRITE, "pwrite")
            self._rw_verify_area("pwrite", len(data), offset)
            with self._fdget(fd):
                return shmem_file_write(f.f_inode, bytes(data), offset)

    # ---------------------------------------------------------------- memory map

    def mmap(
        self, addr: int | None, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0
    ) -> int:
        """``mmap(2)``; returns the address. ``addr=None`` means no hint (0).

        EINVAL for an unaligned offset (x86 ``sys_mmap``), EBADF for a bad fd without
        MAP_ANONYMOUS, then every check of ``do_mmap``.
        """
        self._check_alive()
        a = 0 if addr is None else _ulong("addr", addr)
        length = _ulong("length", length)
        prot = _ulong("prot", prot)
        flags = _ulong("flags", flags)
        offset = _ulong("offset", offset)
        k = self.kernel
        with k.enter(self.task, "sys_mmap"):
            if offset & ~PAGE_MASK:
                raise KernelError(errno.EINVAL, f"mmap: offset {offset:#x} is not page aligned")
            file: File | None = None
            if not flags & MAP_ANONYMOUS:
                file = self._file(fd)
                if flags & MAP_HUGETLB:
                    raise KernelError(errno.EINVAL, "mmap: MAP_HUGETLB needs MAP_ANONYMOUS here")
            elif flags & MAP_HUGETLB:
                length = (length + HPAGE_SIZE - 1) & ~(HPAGE_SIZE - 1)
            with ExitStack() as pin:
                if file is not None:
                    pin.enter_context(self._fdget(fd))
                mm = self.mm
                mmap_write_lock(mm)
                try:
                    return do_mmap(mm, file, a, length, prot, flags, offset >> PAGE_SHIFT)
                finally:
                    mmap_write_unlock(mm)

    def munmap(self, addr: int, length: int) -> None:
        """``munmap(2)``: the lock is downgraded to read before zapping, as in the kernel."""
        self._check_alive()
        addr = _ulong("addr", addr)
        length = _ulong("length", length)
        k = self.kernel
        with k.enter(self.task, "sys_munmap"):
            mm = self.mm
            mmap_write_lock(mm)
            try:
                do_vmi_munmap(mm, addr, length, unlock=True)
            except BaseException:
                # On error do_vmi_munmap keeps the write lock; an exception after the
                # downgrade (from a ->close hook) leaves the read lock.
                if mm.mmap_lock.writer is self.task:
                    mmap_write_unlock(mm)
                elif self.task in mm.mmap_lock.readers:
                    mmap_read_unlock(mm)
                raise

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        """``mprotect(2)``."""
        self._check_alive()
        addr = _ulong("addr", addr)
        length = _ulong("length", length)
        prot = _ulong("prot", prot)
        with self.kernel.enter(self.task, "sys_mprotect"):
            mm = self.mm
            mmap_write_lock(mm)
            try:
                do_mprotect(mm, addr, length, prot)
            finally:
                mmap_write_unlock(mm)

    def mremap(
        self,
        old_addr: int,
        old_len: int,
        new_len: int,
        flags: int = 0,
        new_addr: int | None = None,
    ) -> int:
        """``mremap(2)``; returns the (possibly new) address."""
        self._check_alive()
        old_addr = _ulong("old_addr", old_addr)
        old_len = _ulong("old_len", old_len)
        new_len = _ulong("new_len", new_len)
        flags = _ulong("flags", flags)
        if new_addr is None and flags & MREMAP_FIXED:
            raise KernelError(errno.EINVAL, "mremap: MREMAP_FIXED needs new_addr")
        na = 0 if new_addr is None else _ulong("new_addr", new_addr)
        with self.kernel.enter(self.task, "sys_mremap"):
            mm = self.mm
            mmap_write_lock(mm)
            try:
                return do_mremap(mm, old_addr, old_len, new_len, flags, na)
            finally:
                mmap_write_unlock(mm)

    def madvise(self, addr: int, length: int, advice: int) -> None:
        """``madvise(2)`` (``do_madvise``): EINVAL for an unknown advice, an unaligned
        ``addr`` or a range that overflows; ENOMEM if the range has holes, after the advice
        was applied to what is mapped; EINVAL from a VMA the advice cannot apply to (the
        VMAs before it keep the advice). MADV_DONTNEED takes the mmap read lock, advice
        that changes VMA flags the write lock."""
        self._check_alive()
        addr = _ulong("addr", addr)
        length = _ulong("length", length)
        adv: object = advice
        if isinstance(adv, bool) or not isinstance(adv, int):
            raise TypeError(f"advice must be an int, got {type(advice).__name__}")
        advice = ((advice + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)  # the syscall's ``int``
        with self.kernel.enter(self.task, "sys_madvise"):
            mm = self.mm
            write = madvise_needs_write_lock(advice)
            (mmap_write_lock if write else mmap_read_lock)(mm)
            try:
                do_madvise(mm, addr, length, advice)
            finally:
                (mmap_write_unlock if write else mmap_read_unlock)(mm)

    def mlock(self, addr: int, length: int) -> None:
        """``mlock(2)`` (``do_mlock``): ``addr`` is rounded down to its page; ENOMEM if it
        is not mapped or the range has a hole (after locking what precedes the hole);
        EINVAL if the range wraps. The locked range is then faulted in under the read lock;
        a VMA that cannot be (PROT_NONE) makes the call fail with ENOMEM, VM_LOCKED set."""
        self._check_alive()
        start, size = mlock_range(_ulong("addr", addr), _ulong("length", length))
        with self.kernel.enter(self.task, "sys_mlock"):
            mm = self.mm
            mmap_write_lock(mm)
            try:
                apply_vma_lock_flags(mm, start, size, VM_LOCKED)
            finally:
                mmap_write_unlock(mm)
            mmap_read_lock(mm)
            try:
                mlock_populate(mm, start, size)
            finally:
                mmap_read_unlock(mm)

    def munlock(self, addr: int, length: int) -> None:
        """``munlock(2)``: clear VM_LOCKED/VM_LOCKONFAULT; the same range rules and errors
        as :meth:`mlock`, without the population."""
        self._check_alive()
        start, size = mlock_range(_ulong("addr", addr), _ulong("length", length))
        with self.kernel.enter(self.task, "sys_munlock"):
            mm = self.mm
            mmap_write_lock(mm)
            try:
                apply_vma_lock_flags(mm, start, size, 0)
            finally:
                mmap_write_unlock(mm)

    # ---------------------------------------------------------------- processes

    def fork(self) -> Process:
        """``fork(2)``: a child with a copy of the address space and the descriptors."""
        self._check_alive()
        k = self.kernel
        with k.enter(self.task, "sys_fork"):
            pid = k.next_pid()
            child = Process(k, pid, f"{self.comm}-child", MmStruct(k, pid))
            try:
                dup_mmap(child.mm, self.mm)
            except BaseException:
                del k.processes[pid]
                raise
            for fd, f in self.fds.items():
                child.fds[fd] = get_file(f)
            return child

    def spawn_thread(self) -> Process:
        """``clone(CLONE_VM | CLONE_FILES | CLONE_THREAD)``: a new task in this thread group.

        It shares the address space (``copy_mm`` takes an ``mm_users`` reference with
        ``mmget``) and the descriptor table, and has its own pid and task — so it can run
        syscalls concurrently with its siblings in :meth:`Kernel.concurrently`.
        """
        self._check_alive()
        k = self.kernel
        with k.enter(self.task, "sys_clone"):
            mmget(self.mm)
            return Process(k, k.next_pid(), self.comm, self.mm, thread_of=self)

    def exit(self) -> None:
        """``exit(2)`` of this task: drop its address-space reference (``exit_mm``), then
        its descriptor-table reference (``exit_files``) — the last thread of the group closes
        every descriptor; the files' ``->release`` runs as the task's last work."""
        self._check_alive()
        k = self.kernel
        with k.enter(self.task, "do_exit"):
            mm = self.mm
            self.task.mm = None
            mmput(mm)
            files = self.files
            files.count -= 1
            if files.count == 0:
                fds = list(files.fds.values())
                files.fds.clear()
                for f in fds:
                    fput(f)
        self.alive = False
        k.processes.pop(self.pid, None)

    # ---------------------------------------------------------------- user memory

    def _access(self, addr: object, length: object, write: bool) -> tuple[int, int]:
        self._check_alive()
        a = _ulong("addr", addr)
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise KernelError(errno.EINVAL, f"bad length {length!r}")
        return a, length

    def read(self, addr: int, length: int) -> bytes:
        """Load ``length`` bytes from user address ``addr`` (faulting pages in as needed).

        Raises :class:`SegmentationFault` / :class:`BusError` where the kernel would signal.
        """
        a, n = self._access(addr, length, False)
        out = bytearray()
        k = self.kernel
        end = a + n
        while a < end:
            chunk = min(end, (a & PAGE_MASK) + PAGE_SIZE) - a
            entry = user_access(self.mm, self.task, a, False)
            if isinstance(entry, HugePmd):
                sub = (a & (HPAGE_SIZE - 1)) >> PAGE_SHIFT
                data = entry.page.data.get(sub)
                off = a & (PAGE_SIZE - 1)
                out += bytes(chunk) if data is None else data[off : off + chunk]
            elif entry.page is not None:
                out += entry.page.read(a & (PAGE_SIZE - 1), chunk)
            else:
                out += read_pfn(k, entry.pfn, a & (PAGE_SIZE - 1), chunk)
            a += chunk
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        """Store ``data`` at user address ``addr`` (write faults: COW, zero-fill, ...)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        a, n = self._access(addr, len(data), True)
        k = self.kernel
        end = a + n
        pos = 0
        while a < end:
            chunk = min(end, (a & PAGE_MASK) + PAGE_SIZE) - a
            piece = bytes(data[pos : pos + chunk])
            entry = user_access(self.mm, self.task, a, True)
            off = a & (PAGE_SIZE - 1)
            if isinstance(entry, HugePmd):
                sub = (a & (HPAGE_SIZE - 1)) >> PAGE_SHIFT
                buf = entry.page.data.setdefault(sub, bytearray(PAGE_SIZE))
                buf[off : off + chunk] = piece
            else:
                entry.dirty = True
                if entry.page is not None:
                    entry.page.write(off, piece)
                else:
                    write_pfn(k, entry.pfn, off, piece)
            a += chunk
            pos += chunk

    # ---------------------------------------------------------------- misc

    def userfaultfd_register(self, addr: int, length: int, mode: int = 1) -> None:
        """``userfaultfd()`` + ``UFFDIO_REGISTER`` on ``[addr, addr+length)`` (mode 1 =
        MISSING, 2 = WP, 4 = MINOR)."""
        self._check_alive()
        addr = _ulong("addr", addr)
        length = _ulong("length", length)
        mode = _ulong("mode", mode)
        with self.kernel.enter(self.task, "sys_ioctl(UFFDIO_REGISTER)"):
            if self.uffd is None:
                self.uffd = UserfaultfdCtx(self.mm)
            mm = self.mm
            mmap_write_lock(mm)
            try:
                userfaultfd_register(mm, self.uffd, addr, length, mode)
            finally:
                mmap_write_unlock(mm)

    def maps(self) -> str:
        """The contents of ``/proc/PID/maps``."""
        self._check_alive()
        with self.kernel.enter(self.task, "proc_pid_maps"):
            mm = self.mm
            mmap_read_lock(mm)
            try:
                return show_maps(mm)
            finally:
                mmap_read_unlock(mm)

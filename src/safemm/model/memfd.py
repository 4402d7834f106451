"""Anonymous memory files: the model's mm/memfd.c (``memfd_create``).

Mirrors ``SYSCALL_DEFINE2(memfd_create)``: the flag checks (unknown bits, MFD_EXEC with
MFD_NOEXEC_SEAL: EINVAL), the name check (at most ``MFD_NAME_MAX_LEN`` = 249 bytes: EINVAL)
and ``alloc_file``: a shmem file of size 0, open for reading and writing, whose
``/proc/PID/maps`` name is ``/memfd:NAME (deleted)``.

Simplifications: no seals (MFD_ALLOW_SEALING and MFD_NOEXEC_SEAL are accepted; ``F_ADD_SEALS``
does not exist in the model), no MFD_HUGETLB (refused with EINVAL as not modelled), no
close-on-exec (there is no exec), no ``vm.memfd_noexec`` sysctl.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .errors import KernelError
from .fs import FMODE_READ, FMODE_WRITE, File, Inode
from .shmem import SHMEM_FILE_OPS

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = [
    "MFD_ALLOW_SEALING",
    "MFD_CLOEXEC",
    "MFD_EXEC",
    "MFD_HUGETLB",
    "MFD_NOEXEC_SEAL",
    "memfd_create",
]

MFD_CLOEXEC = 0x0001
MFD_ALLOW_SEALING = 0x0002
MFD_HUGETLB = 0x0004
MFD_NOEXEC_SEAL = 0x0008
MFD_EXEC = 0x0010
#: ``MFD_ALL_FLAGS`` without the hugetlb page-size bits.
MFD_ALL_FLAGS = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC
#: ``NAME_MAX - strlen("memfd:")``.
MFD_NAME_MAX_LEN = 255 - 6


def memfd_create(kernel: Kernel, name: str, flags: int) -> File:
    """``memfd_create``: a new shmem file named ``memfd:NAME``.

    Raises:
        KernelError: EINVAL for unknown flags, MFD_EXEC together with MFD_NOEXEC_SEAL,
            MFD_HUGETLB (not modelled), a name longer than 249 bytes or one with a NUL.
    """
    if flags & ~MFD_ALL_FLAGS:
        raise KernelError(errno.EINVAL, f"memfd_create: unknown flags {flags:#x}")
    if flags & MFD_EXEC and flags & MFD_NOEXEC_SEAL:
        raise KernelError(errno.EINVAL, "memfd_create: MFD_EXEC with MFD_NOEXEC_SEAL")
    if flags & MFD_HUGETLB:
        raise KernelError(errno.EINVAL, "memfd_create: MFD_HUGETLB is valid but not modelled")
    raw = name.encode()
    if b"\0" in raw:
        # strndup_user would stop at the NUL; a Python caller meant something else.
        raise KernelError(errno.EINVAL, "memfd_create: the name contains a NUL byte")
    if len(raw) > MFD_NAME_MAX_LEN:
        raise KernelError(
            errno.EINVAL, f"memfd_create: name of {len(raw)} bytes (at most {MFD_NAME_MAX_LEN})"
        )
    inode = Inode(kernel, "shmem")
    return File(
        kernel, inode, SHMEM_FILE_OPS, FMODE_READ | FMODE_WRITE, f"/memfd:{name} (deleted)"
    )

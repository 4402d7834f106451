"""The ioctl ABI of the ``safebinder`` devices, shared by the drivers and user space.

Command numbers follow the kernel's ``_IOC`` encoding (include/uapi/asm-generic/ioctl.h) with
the magic ``'s'``; arguments are Python objects instead of user pointers:

=====================  =============================  =================================
command                argument                       result / errors
=====================  =============================  =================================
``SAFEBINDER_GET_ID``  None                           the open file's target id (int)
``SAFEBINDER_SEND``    ``(target_id, data)``          None. ESRCH: no such target, or its
                       (int, non-empty bytes)         mapping is gone; ENOSPC: no room in
                                                      its area; ENOMEM: no page; EFAULT,
                                                      EBUSY: a page could not be mapped
``SAFEBINDER_RECV``    None                           ``(addr, length)`` of the oldest
                                                      buffer. EAGAIN: none queued; EPERM:
                                                      the caller does not own the mapping;
                                                      EFAULT: the buffer could not be
                                                      mapped and was dropped
``SAFEBINDER_FREE``    ``addr`` (int, as RECV gave)   None. EINVAL: not a received buffer
=====================  =============================  =================================

A buffer occupies whole pages of the receiver's area (at most 4 MiB, the first 4 MiB of its
mapping); its address is ``base + offset``, where ``base`` is where the receiver's mapping
maps file offset 0 (it follows an mremap of that part).
"""

from __future__ import annotations

import errno

from safemm import KernelError

__all__ = [
    "DEVICE_PATH",
    "MAX_AREA",
    "SAFEBINDER_FREE",
    "SAFEBINDER_GET_ID",
    "SAFEBINDER_RECV",
    "SAFEBINDER_SEND",
    "parse_addr",
    "parse_recv",
    "parse_send",
]

#: Where the demo registers its device.
DEVICE_PATH = "/dev/safebinder"
#: The largest area a mapping provides (binder's 4 MiB ``SZ_4M`` cap).
MAX_AREA = 4 * 1024 * 1024

_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = 8
_IOC_SIZESHIFT = 16
_IOC_DIRSHIFT = 30
_IOC_WRITE = 1
_IOC_READ = 2
_MAGIC = ord("s")


def _ioc(direction: int, nr: int, size: int) -> int:
    """``_IOC(dir, type, nr, size)``."""
    return (
        (direction << _IOC_DIRSHIFT)
        | (_MAGIC << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


#: ``_IOR('s', 1, __u32)``: the id other processes send to.
SAFEBINDER_GET_ID = _ioc(_IOC_READ, 1, 4)
#: ``_IOW('s', 2, struct { __u32 target; __u64 ptr; __u64 len; })``.
SAFEBINDER_SEND = _ioc(_IOC_WRITE, 2, 24)
#: ``_IOR('s', 3, struct { __u64 addr; __u64 len; })``.
SAFEBINDER_RECV = _ioc(_IOC_READ, 3, 16)
#: ``_IOW('s', 4, __u64)``.
SAFEBINDER_FREE = _ioc(_IOC_WRITE, 4, 8)


def parse_send(arg: object) -> tuple[int, bytes]:
    """The ``(target_id, data)`` of a SEND, or KernelError(EINVAL)."""
    if isinstance(arg, tuple) and len(arg) == 2:
        target: object = arg[0]
        data: object = arg[1]
        if isinstance(target, int) and not isinstance(target, bool) and isinstance(data, bytes):
            if not data:
                raise KernelError(errno.EINVAL, "SEND: empty data")
            return target, data
    raise KernelError(errno.EINVAL, f"SEND: expected (target_id, bytes), got {arg!r:.60}")


def parse_addr(arg: object) -> int:
    """The address argument of a FREE, or KernelError(EINVAL)."""
    if isinstance(arg, int) and not isinstance(arg, bool):
        return arg
    raise KernelError(errno.EINVAL, f"FREE: expected an address, got {arg!r:.60}")


def parse_recv(result: object) -> tuple[int, int]:
    """User space: the ``(addr, length)`` a RECV returned (ValueError if malformed)."""
    if isinstance(result, tuple) and len(result) == 2:
        addr: object = result[0]
        length: object = result[1]
        if isinstance(addr, int) and isinstance(length, int):
            return addr, length
    raise ValueError(f"RECV returned {result!r}")

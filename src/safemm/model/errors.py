"""The exceptions the model raises, and the errno values it uses.

A refused call raises :class:`KernelError` carrying the errno the kernel returns; a user access
the kernel answers with a signal raises :class:`SegmentationFault` or :class:`BusError`; a
``BUG()`` raises :class:`KernelBug`; a ``WARN()`` (and the other reports a debug kernel prints:
lockdep, ``might_sleep``) raises :class:`KernelWarning` when ``panic_on_warn`` is on.
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "BusError",
    "Deadlock",
    "InvariantError",
    "KernelBug",
    "KernelError",
    "KernelWarning",
    "Livelock",
    "SegmentationFault",
    "StaleReferenceError",
]

#: SIGSEGV si_code values (include/uapi/asm-generic/siginfo.h).
SEGV_MAPERR = 1
SEGV_ACCERR = 2
#: SIGBUS si_code value for a nonexistent physical address / object.
BUS_ADRERR = 2


class KernelError(OSError):
    """A call the kernel refused, with the errno it returns.

    ``exc.errno`` is the positive errno value (``errno.EINVAL`` ...); the syscall itself would
    return its negation. The message names the problem.
    """

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, f"{_errno.errorcode.get(err, str(err))}: {message}")
        self.message = message


class SegmentationFault(Exception):
    """SIGSEGV delivered to the process for a user access (arch/x86/mm/fault.c).

    Attributes:
        addr: the faulting address.
        code: ``SEGV_MAPERR`` (no VMA) or ``SEGV_ACCERR`` (the VMA forbids the access).
    """

    def __init__(self, addr: int, code: int, message: str) -> None:
        super().__init__(f"SIGSEGV at {addr:#x}: {message}")
        self.addr = addr
        self.code = code


class BusError(Exception):
    """SIGBUS delivered to the process: the fault handler returned VM_FAULT_SIGBUS."""

    def __init__(self, addr: int, message: str) -> None:
        super().__init__(f"SIGBUS at {addr:#x}: {message}")
        self.addr = addr
        self.code = BUS_ADRERR


class _Reported(Exception):
    """An exception carrying the report (a :class:`~safemm.model.printk.Splat`) behind it."""

    def __init__(self, message: str, splat: object = None) -> None:
        super().__init__(message)
        #: The report that raised this exception (a ``Splat``), if any.
        self.splat = splat

    @property
    def contract(self) -> str | None:
        """The id of the contract the report names, if any."""
        c = getattr(self.splat, "contract", None)
        return c if isinstance(c, str) else None


class KernelBug(_Reported):
    """``BUG()`` / ``BUG_ON()`` fired: the kernel would oops here. Always raised."""


class Deadlock(KernelBug):
    """An acquisition that would block forever in the kernel (reported, not hung): with
    :meth:`Kernel.concurrently`, no task can run and every unfinished one is blocked."""


class Livelock(KernelBug):
    """A :meth:`Kernel.concurrently` run that made no progress within its step bound (a task
    spinning on a trylock, a retry loop that never succeeds): reported, not hung."""


class KernelWarning(_Reported):
    """A ``WARN()``, lockdep or ``might_sleep`` report while ``panic_on_warn`` is on."""


class StaleReferenceError(Exception):
    """A VMA, guard or page handle was used after the lock or object it depended on ended."""


class InvariantError(AssertionError):
    """``Kernel.check_invariants()`` found a broken invariant; the message names it."""

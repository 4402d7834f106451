"""Contract fault-locked-page (race 7, tests/concurrency/test_race_fault_reclaim.py):
``->fault`` hands the kernel a page locked and pinned while the driver's lock still says it
is there (``page.trylock()``, ``VM_FAULT_LOCKED``), never a bare ``Page`` that reclaim may
free before the kernel maps it; a ``PageLock`` comes only from ``Page.trylock``."""

from typing_extensions import override

from safemm.fs import VmFault, VmFaultReason, VmOperations
from safemm.page import Page, PageLock


class Slot:
    """The driver's state for one mapping."""

    def __init__(self, page: Page) -> None:
        self.page = page


class BarePage(VmOperations[Slot]):
    @override
    def fault(self, vmf: VmFault[Slot]) -> Page | VmFaultReason:  # type: ignore[override]
        return vmf.vma.private_data.page


class BareReturn(VmOperations[Slot]):
    @override
    def fault(self, vmf: VmFault[Slot]) -> PageLock | VmFaultReason:
        return vmf.vma.private_data.page  # type: ignore[return-value]


def forge(page: Page, raw: object) -> None:
    PageLock(raw, page)  # type: ignore[call-arg, arg-type]


class ForgedLock(PageLock):  # type: ignore[misc]
    pass

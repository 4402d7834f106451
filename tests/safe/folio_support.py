"""A driver whose pages live in its own page cache (one anonymous inode per open file), for
the safe-layer tests of folios and ``release_folio`` (tests/safe/test_folio.py)."""

from __future__ import annotations

from collections.abc import Callable

from typing_extensions import override

from safemm import MAP_SHARED, PAGE_SIZE, PROT_READ, Kernel, Process
from safemm.folio import CachedFolio, Folio, FolioGuard
from safemm.fs import (
    AddressSpaceOperations,
    AddressSpaceOwned,
    File,
    FileOperations,
    VmFault,
    VmFaultReason,
    VmOperations,
)
from safemm.page import Gfp
from safemm.virt import VmAreaNew


class Cache:
    """Per-open state: the file's page cache, the driver's pins, the offsets in use."""

    def __init__(self) -> None:
        self.mapping: AddressSpaceOwned[Cache] | None = None
        self.pins: dict[int, Folio] = {}
        self.busy: set[int] = set()
        self.asked: list[tuple[int, Gfp]] = []

    def require_mapping(self) -> AddressSpaceOwned[Cache]:
        """The mapping ``->open`` created."""
        assert self.mapping is not None
        return self.mapping


class CacheAops(AddressSpaceOperations[Cache]):
    """``release_folio``: refuse busy offsets; otherwise drop the driver's pin."""

    @override
    def release_folio(self, folio: CachedFolio[Cache], gfp: Gfp) -> bool:
        cache = folio.private_data
        cache.asked.append((folio.index, gfp))
        if folio.index in cache.busy:
            return False
        pin = cache.pins.pop(folio.index, None)
        if pin is not None:
            pin.put()
        return True


class CacheVmOps(VmOperations[Cache]):
    """``->fault`` maps the folio cached at the offset, as ``filemap_fault`` does."""

    @override
    def fault(self, vmf: VmFault[Cache]) -> FolioGuard | VmFaultReason:
        guard = vmf.vma.private_data.require_mapping().filemap_lock_folio(vmf.pgoff)
        return VmFaultReason.SIGBUS if guard is None else guard


class CacheDriver(FileOperations[Cache]):
    """``/dev/cache``: its ioctl runs ``action`` in driver context."""

    def __init__(self) -> None:
        super().__init__(Cache, "cachedrv")
        self.aops = CacheAops(Cache, "cachedrv_aops")
        self.vm_ops = CacheVmOps(Cache, "cachedrv_vm_ops")
        self.action: Callable[[Cache], object] | None = None

    @override
    def open(self, file: File[Cache]) -> None:
        cache = Cache()
        cache.mapping = self.aops.new_mapping(cache)
        file.set_mapping(cache.mapping.address_space)
        file.private_data = cache

    @override
    def release(self, file: File[Cache]) -> None:
        cache = file.private_data
        assert cache is not None
        for pin in cache.pins.values():
            pin.put()
        cache.pins.clear()
        cache.require_mapping().truncate_inode_pages()

    @override
    def mmap(self, file: File[Cache], vma: VmAreaNew) -> None:
        cache = file.private_data
        assert cache is not None
        vma.try_clear_maywrite()
        vma.set_vm_ops(self.vm_ops, cache)

    @override
    def ioctl(self, file: File[Cache], cmd: int, arg: object) -> object:
        cache = file.private_data
        assert cache is not None and self.action is not None
        return self.action(cache)


def fill(cache: Cache, index: int, data: bytes) -> Folio:
    """Allocate a folio, write ``data``, add it at ``index``, pin it; the pin."""
    folio = Folio.alloc()
    folio.write(0, data)
    with cache.require_mapping().filemap_add_folio(folio, index):
        pass
    cache.pins[index] = folio
    return folio


class CacheSetup:
    """A kernel with ``/dev/cache``, one process that opened and mapped four pages."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.driver = CacheDriver()
        kernel.register_device("/dev/cache", self.driver)
        self.proc: Process = kernel.spawn()
        self.fd = self.proc.open("/dev/cache")
        self.addr = self.proc.mmap(None, 4 * PAGE_SIZE, PROT_READ, MAP_SHARED, self.fd)

    def run(self, action: Callable[[Cache], object]) -> object:
        """Run ``action`` inside the driver's ioctl."""
        self.driver.action = action
        try:
            return self.proc.ioctl(self.fd, 0)
        finally:
            self.driver.action = None

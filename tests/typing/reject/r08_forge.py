"""Contract stale-handle: states cannot be constructed directly or minted by subclassing."""

from safemm.fs import File, VmFault
from safemm.mm import (
    Mm,
    MmapReadGuard,
    MmapWriteGuard,
    MmWithUser,
    MmWithUserAsync,
    OwnedMm,
    OwnedMmWithUser,
    VmaReadGuard,
)
from safemm.page import Page
from safemm.virt import VmAreaMixedMapRef, VmAreaMut, VmAreaNew, VmAreaOwnedRef, VmAreaRef


def construct(raw: object, other: object) -> None:
    VmAreaRef(raw, other)  # type: ignore[call-arg, arg-type]
    VmAreaMut(raw, other)  # type: ignore[call-arg, arg-type]
    VmAreaNew(raw, other)  # type: ignore[call-arg, arg-type]
    VmAreaMixedMapRef(raw, other)  # type: ignore[call-arg, arg-type]
    VmAreaOwnedRef(raw, other)  # type: ignore[call-arg, arg-type]
    MmapReadGuard(raw, other)  # type: ignore[call-arg, arg-type]
    MmapWriteGuard(raw, other)  # type: ignore[call-arg, arg-type]
    VmaReadGuard(raw, other)  # type: ignore[call-arg, arg-type]
    Mm(raw, other)  # type: ignore[call-arg, arg-type]
    MmWithUser(raw, other)  # type: ignore[call-arg, arg-type]
    OwnedMm(raw, other)  # type: ignore[call-arg, arg-type]
    OwnedMmWithUser(raw, other)  # type: ignore[call-arg, arg-type]
    MmWithUserAsync(raw, other)  # type: ignore[call-arg, arg-type]
    Page(raw, other)  # type: ignore[call-arg, arg-type]
    File(raw, other)  # type: ignore[call-arg, arg-type]
    VmFault(raw, other)  # type: ignore[call-arg, arg-type]


class ForgedMixedMap(VmAreaMixedMapRef):  # type: ignore[misc]
    pass


class ForgedNew(VmAreaNew):  # type: ignore[misc]
    pass


class ForgedOwned(VmAreaOwnedRef[int]):  # type: ignore[misc]
    pass


class ForgedAsync(MmWithUserAsync):  # type: ignore[misc]
    pass


class ForgedOwnedMm(OwnedMm):  # type: ignore[misc]
    pass


class ForgedOwnedUser(OwnedMmWithUser):  # type: ignore[misc]
    pass


class ForgedWriteGuard(MmapWriteGuard):  # type: ignore[misc]
    pass

# Type stubs for ``sortedcontainers.sortedset`` (sortedcontainers 2.4.0).
#
# ``SortedSet[T]`` is a mutable set that is also a sequence.  Its ``__init__`` copies some bound
# methods of the inner set and sorted list onto the instance; the stub declares those as
# instance attributes typed with the callback protocols from ``sortedlist.pyi``.

from _typeshed import SupportsRichComparison
from collections.abc import Callable, Iterable, Iterator, MutableSet, Sequence
from collections.abc import Set as AbstractSet
from typing import ClassVar, Self, TypeVar, overload

from typing_extensions import override

from .sortedlist import _Bisect, _BisectKey, _IRange, _IRangeKey, _ISlice, _Reset, _SliceIndex

_T = TypeVar("_T")
_S = TypeVar("_S")
# A value that can be sorted without a key function.
_SCT = TypeVar("_SCT", bound=SupportsRichComparison)

class SortedSet(MutableSet[_T], Sequence[_T]):
    # Defining __eq__ in the class body makes instances unhashable.
    __hash__: ClassVar[None]  # type: ignore[assignment]

    # Set methods bound to the inner ``set``.
    issubset: Callable[[Iterable[object]], bool]
    issuperset: Callable[[Iterable[object]], bool]
    # SortedList methods bound to the inner sorted list.
    bisect_left: _Bisect[_T]
    bisect: _Bisect[_T]
    bisect_right: _Bisect[_T]
    # ``index`` is bound to the sorted list as well, but it also overrides ``Sequence.index``
    # (which the class attribute still is), so it is declared as a method.  The defaults are
    # ``...`` because the instance's (None) differ from the class attribute's (0).
    @override
    def index(self, value: _T, start: int | None = ..., stop: int | None = ...) -> int: ...
    irange: _IRange[_T]
    islice: _ISlice[_T]
    _reset: _Reset
    # Only set when the sorted set has a key function (AttributeError otherwise).
    bisect_key_left: _BisectKey
    bisect_key_right: _BisectKey
    bisect_key: _BisectKey
    irange_key: _IRangeKey[_T]

    # Empty: ``SortedSet[int]()`` and ``x: SortedSet[int] = SortedSet()`` both work.
    @overload
    def __init__(self, iterable: None = None, key: None = None) -> None: ...
    # Without a key function the values themselves must be comparable.
    @overload
    def __init__(self: SortedSet[_SCT], iterable: Iterable[_SCT], key: None = None) -> None: ...
    @overload
    def __init__(self, iterable: Iterable[_T] | None, key: Callable[[_T], SupportsRichComparison]) -> None: ...
    @overload
    def __init__(self, iterable: Iterable[_T] | None = None, *, key: Callable[[_T], SupportsRichComparison]) -> None: ...
    @property
    def key(self) -> Callable[[_T], SupportsRichComparison] | None: ...
    @override
    def __contains__(self, value: object) -> bool: ...
    @override
    @overload
    def __getitem__(self, index: int) -> _T: ...
    @overload
    def __getitem__(self, index: _SliceIndex) -> list[_T]: ...
    def __delitem__(self, index: int | _SliceIndex) -> None: ...
    # Equality and ordering are set equality and subset/superset tests.
    @override
    def __eq__(self, other: object) -> bool: ...
    @override
    def __ne__(self, other: object) -> bool: ...
    @override
    def __lt__(self, other: AbstractSet[object]) -> bool: ...
    @override
    def __gt__(self, other: AbstractSet[object]) -> bool: ...
    @override
    def __le__(self, other: AbstractSet[object]) -> bool: ...
    @override
    def __ge__(self, other: AbstractSet[object]) -> bool: ...
    @override
    def __len__(self) -> int: ...
    @override
    def __iter__(self) -> Iterator[_T]: ...
    @override
    def __reversed__(self) -> Iterator[_T]: ...
    @override
    def add(self, value: _T) -> None: ...
    @override
    def clear(self) -> None: ...
    def copy(self) -> Self: ...
    __copy__ = copy
    @override
    def count(self, value: object) -> int: ...
    @override
    def discard(self, value: _T) -> None: ...
    @override
    def pop(self, index: int = -1) -> _T: ...
    @override
    def remove(self, value: _T) -> None: ...
    # Operations that only drop values keep the type; the others may widen it.
    def difference(self, *iterables: Iterable[object]) -> Self: ...
    __sub__ = difference
    def difference_update(self, *iterables: Iterable[object]) -> Self: ...
    __isub__ = difference_update
    def intersection(self, *iterables: Iterable[object]) -> Self: ...
    __and__ = intersection
    __rand__ = __and__
    def intersection_update(self, *iterables: Iterable[object]) -> Self: ...
    __iand__ = intersection_update
    def symmetric_difference(self, other: Iterable[_S]) -> SortedSet[_T | _S]: ...
    __xor__ = symmetric_difference
    __rxor__ = __xor__
    def symmetric_difference_update(self, other: Iterable[_T]) -> Self: ...
    __ixor__ = symmetric_difference_update
    def union(self, *iterables: Iterable[_S]) -> SortedSet[_T | _S]: ...
    __or__ = union
    __ror__ = __or__
    def update(self, *iterables: Iterable[_T]) -> Self: ...
    __ior__ = update
    # Pickles as ``(type(self), (values_set, key))``.
    @override
    def __reduce__(self) -> tuple[type[Self], tuple[set[_T], Callable[[_T], SupportsRichComparison] | None]]: ...
    def _check(self) -> None: ...

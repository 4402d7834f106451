# Type stubs for ``sortedcontainers.sorteddict`` (sortedcontainers 2.4.0).
#
# ``SortedDict[K, V]`` is a ``dict`` that keeps its keys in a sorted list.  An optional key
# function may be given as the *first positional* argument to the constructor; without one the
# keys themselves must be comparable.  Like ``SortedSet``, ``__init__`` copies some bound methods
# of the inner sorted list onto the instance; they are declared as instance attributes.

from _typeshed import SupportsGetItem, SupportsKeysAndGetItem, SupportsRichComparison
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, Sequence, ValuesView
from typing import Self, TypeVar, overload

from typing_extensions import deprecated, override

from .sortedlist import _Bisect, _BisectKey, _Index, _IRange, _IRangeKey, _ISlice, _Reset, _SliceIndex

_T = TypeVar("_T")
_S = TypeVar("_S")
_T1 = TypeVar("_T1")
_T2 = TypeVar("_T2")
_KT = TypeVar("_KT")
_VT = TypeVar("_VT")
_KT_co = TypeVar("_KT_co", covariant=True)
_VT_co = TypeVar("_VT_co", covariant=True)
# A key that can be sorted without a key function.
_SKT = TypeVar("_SKT", bound=SupportsRichComparison)

class SortedDict(dict[_KT, _VT]):
    # SortedList methods bound to the inner sorted list of keys.
    bisect_left: _Bisect[_KT]
    bisect: _Bisect[_KT]
    bisect_right: _Bisect[_KT]
    index: _Index[_KT]
    irange: _IRange[_KT]
    islice: _ISlice[_KT]
    _reset: _Reset
    # Only set when the sorted dict has a key function (AttributeError otherwise).
    bisect_key_left: _BisectKey
    bisect_key_right: _BisectKey
    bisect_key: _BisectKey
    irange_key: _IRangeKey[_KT]

    # The same call shapes as ``dict()``; without a key function the keys must be comparable.
    @overload
    def __init__(self) -> None: ...
    @overload
    def __init__(self: SortedDict[str, _VT], **kwargs: _VT) -> None: ...
    @overload
    def __init__(self: SortedDict[_SKT, _VT], map: SupportsKeysAndGetItem[_SKT, _VT], /) -> None: ...
    @overload
    def __init__(self: SortedDict[str, _VT], map: SupportsKeysAndGetItem[str, _VT], /, **kwargs: _VT) -> None: ...
    @overload
    def __init__(self: SortedDict[_SKT, _VT], iterable: Iterable[tuple[_SKT, _VT]], /) -> None: ...
    @overload
    def __init__(self: SortedDict[str, _VT], iterable: Iterable[tuple[str, _VT]], /, **kwargs: _VT) -> None: ...
    # A leading key function (any keys, ordered by ``key(k)``) ...
    @overload
    def __init__(self, key: Callable[[_KT], SupportsRichComparison], /) -> None: ...
    @overload
    def __init__(self, key: Callable[[_KT], SupportsRichComparison], map: SupportsKeysAndGetItem[_KT, _VT], /) -> None: ...
    @overload
    def __init__(self, key: Callable[[_KT], SupportsRichComparison], iterable: Iterable[tuple[_KT, _VT]], /) -> None: ...
    @overload
    def __init__(
        self: SortedDict[str, _VT],
        key: Callable[[str], SupportsRichComparison],
        map: SupportsKeysAndGetItem[str, _VT] | Iterable[tuple[str, _VT]] = ...,
        /,
        **kwargs: _VT,
    ) -> None: ...
    # ... or a leading None, which means "no key function".
    @overload
    def __init__(self, key: None, /) -> None: ...
    @overload
    def __init__(self: SortedDict[_SKT, _VT], key: None, map: SupportsKeysAndGetItem[_SKT, _VT], /) -> None: ...
    @overload
    def __init__(self: SortedDict[_SKT, _VT], key: None, iterable: Iterable[tuple[_SKT, _VT]], /) -> None: ...
    @overload
    def __init__(
        self: SortedDict[str, _VT],
        key: None,
        map: SupportsKeysAndGetItem[str, _VT] | Iterable[tuple[str, _VT]] = ...,
        /,
        **kwargs: _VT,
    ) -> None: ...
    @property
    def key(self) -> Callable[[_KT], SupportsRichComparison] | None: ...
    @property
    @deprecated("SortedDict.iloc is deprecated; use SortedDict.keys() instead")
    def iloc(self) -> SortedKeysView[_KT]: ...
    @override
    def clear(self) -> None: ...
    @override
    def __delitem__(self, key: _KT) -> None: ...
    @override
    def __iter__(self) -> Iterator[_KT]: ...
    @override
    def __reversed__(self) -> Iterator[_KT]: ...
    @override
    def __setitem__(self, key: _KT, value: _VT) -> None: ...
    # ``|`` accepts any mapping (dict's accepts only dicts) and keeps the key function.
    @override  # type: ignore[override]
    @overload
    def __or__(self, other: Mapping[_KT, _VT]) -> Self: ...
    @overload
    def __or__(self, other: Mapping[_T1, _T2]) -> SortedDict[_KT | _T1, _VT | _T2]: ...
    @override
    @overload
    def __ror__(self, other: Mapping[_KT, _VT]) -> Self: ...
    @overload
    def __ror__(self, other: Mapping[_T1, _T2]) -> SortedDict[_KT | _T1, _VT | _T2]: ...
    # Like dict.__ior__ (and typeshed's ignore there), this accepts pairs that ``|`` does not.
    @override  # type: ignore[override, misc]
    @overload
    def __ior__(self, other: SupportsKeysAndGetItem[_KT, _VT]) -> Self: ...
    @overload
    def __ior__(self, other: Iterable[tuple[_KT, _VT]]) -> Self: ...
    @override
    def copy(self) -> Self: ...
    __copy__ = copy
    # ``cls(pairs)``: no key function, so the keys must be comparable (narrower than dict's).
    @override  # type: ignore[override]
    @classmethod
    @overload
    def fromkeys(cls, iterable: Iterable[_SKT], value: None = None) -> SortedDict[_SKT, None]: ...
    @classmethod
    @overload
    def fromkeys(cls, iterable: Iterable[_SKT], value: _S) -> SortedDict[_SKT, _S]: ...
    # The views are sequences as well as sets; they are not the dict_keys etc. that dict returns.
    @override
    def keys(self) -> SortedKeysView[_KT]: ...  # type: ignore[override]
    @override
    def items(self) -> SortedItemsView[_KT, _VT]: ...  # type: ignore[override]
    @override
    def values(self) -> SortedValuesView[_VT]: ...  # type: ignore[override]
    @override
    @overload
    def pop(self, key: _KT) -> _VT: ...
    @overload
    def pop(self, key: _KT, default: _VT) -> _VT: ...
    @overload
    def pop(self, key: _KT, default: _T) -> _VT | _T: ...
    @override
    def popitem(self, index: int = -1) -> tuple[_KT, _VT]: ...
    def peekitem(self, index: int = -1) -> tuple[_KT, _VT]: ...
    @override
    @overload
    def setdefault(self: SortedDict[_KT, _T | None], key: _KT, default: None = None) -> _T | None: ...
    @overload
    def setdefault(self, key: _KT, default: _VT) -> _VT: ...
    # The same call shapes as ``MutableMapping.update``.
    @override
    @overload
    def update(self, m: SupportsKeysAndGetItem[_KT, _VT], /) -> None: ...
    @overload
    def update(self: SupportsGetItem[str, _VT], m: SupportsKeysAndGetItem[str, _VT], /, **kwargs: _VT) -> None: ...
    @overload
    def update(self, m: Iterable[tuple[_KT, _VT]], /) -> None: ...
    @overload
    def update(self: SupportsGetItem[str, _VT], m: Iterable[tuple[str, _VT]], /, **kwargs: _VT) -> None: ...
    @overload
    def update(self: SupportsGetItem[str, _VT], /, **kwargs: _VT) -> None: ...
    # Pickles as ``(type(self), (key, plain_dict))``.
    @override
    def __reduce__(
        self,
    ) -> tuple[type[Self], tuple[Callable[[_KT], SupportsRichComparison] | None, dict[_KT, _VT]]]: ...
    def _check(self) -> None: ...

# The views only work on a SortedDict (they read its sorted list of keys).  Their set operators
# (``&``, ``|``, ``-``, ``^``) are the ``collections.abc.Set`` mixins: typeshed types them as
# returning ``set``, while at runtime they build a SortedSet.  Overriding them here would need a
# suppressed override error on each, since SortedSet is not a subclass of set.
class SortedKeysView(KeysView[_KT_co], Sequence[_KT_co]):
    def __init__(self, mapping: SortedDict[_KT_co, _VT]) -> None: ...
    @override
    @overload
    def __getitem__(self, index: int) -> _KT_co: ...
    @overload
    def __getitem__(self, index: _SliceIndex) -> list[_KT_co]: ...
    def __delitem__(self, index: int | _SliceIndex) -> None: ...

class SortedItemsView(ItemsView[_KT_co, _VT_co], Sequence[tuple[_KT_co, _VT_co]]):
    def __init__(self, mapping: SortedDict[_KT_co, _VT_co]) -> None: ...
    # ItemsView takes only pairs here and Sequence takes any object; the runtime takes any object.
    @override
    def __contains__(self, item: object) -> bool: ...
    @override
    @overload
    def __getitem__(self, index: int) -> tuple[_KT_co, _VT_co]: ...
    @overload
    def __getitem__(self, index: _SliceIndex) -> list[tuple[_KT_co, _VT_co]]: ...
    def __delitem__(self, index: int | _SliceIndex) -> None: ...

class SortedValuesView(ValuesView[_VT_co], Sequence[_VT_co]):
    def __init__(self, mapping: SortedDict[_KT, _VT_co]) -> None: ...
    @override
    @overload
    def __getitem__(self, index: int) -> _VT_co: ...
    @overload
    def __getitem__(self, index: _SliceIndex) -> list[_VT_co]: ...
    def __delitem__(self, index: int | _SliceIndex) -> None: ...

"""Uses of sortedcontainers that must type-check, with the types the stubs give them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import assert_type

from sortedcontainers import (
    SortedDict,
    SortedItemsView,
    SortedKeyList,
    SortedKeysView,
    SortedList,
    SortedListWithKey,
    SortedSet,
    SortedValuesView,
)


def negate(value: int) -> int:
    """A key function: sort ints in descending order."""
    return -value


def length(text: str) -> int:
    """A key function: sort strings by length."""
    return len(text)


# --- SortedList: comparable values, no key function --------------------------------------
sl = SortedList([3, 1, 2])
assert_type(sl, SortedList[int])
assert_type(sl[0], int)
assert_type(sl[1:], list[int])
assert_type(sl.bisect_left(2), int)
assert_type(sl.bisect(2), int)
assert_type(sl.irange(1, 2, inclusive=(True, False)), Iterator[int])
assert_type(sl.islice(0, 2, reverse=True), Iterator[int])
assert_type(sl.index(2, start=None), int)
assert_type(sl.pop(), int)
assert_type(sl.copy(), SortedList[int])
assert_type(sl + range(4, 6), SortedList[int])
assert_type(sl * 2, SortedList[int])
sl += [7]
sl.add(6)
sl.update([8, 9])
assert_type(sl, SortedList[int])
empty: SortedList[str] = SortedList()

# --- A key function makes SortedList() return a SortedKeyList -----------------------------
by_neg = SortedList([1, 2, 3], key=negate)
assert_type(by_neg, SortedKeyList[int, int])
assert_type(SortedList(key=length), SortedKeyList[str, int])
assert_type(by_neg.key, Callable[[int], int])
assert_type(by_neg.bisect_key_left(-2), int)
assert_type(by_neg.bisect_key_right(-2), int)
assert_type(by_neg.bisect_key(-2), int)
assert_type(by_neg.irange_key(min_key=-3, max_key=-1), Iterator[int])
assert_type(by_neg.copy(), SortedKeyList[int, int])
assert_type(by_neg + range(4), SortedKeyList[int, int])

# SortedKeyList without a key uses the identity, so the values are their own keys.
assert_type(SortedKeyList([1.5, 2.5]), SortedKeyList[float, float])
assert_type(SortedKeyList(["ab", "c"], length), SortedKeyList[str, int])
assert SortedListWithKey is SortedKeyList

# --- SortedDict --------------------------------------------------------------------------
sd = SortedDict({"b": 2, "a": 1})
assert_type(sd, SortedDict[str, int])
assert_type(sd.peekitem(), tuple[str, int])
assert_type(sd.peekitem(0), tuple[str, int])
assert_type(sd.popitem(index=0), tuple[str, int])
assert_type(sd.keys(), SortedKeysView[str])
assert_type(sd.items(), SortedItemsView[str, int])
assert_type(sd.values(), SortedValuesView[int])
assert_type(sd.keys()[0], str)
assert_type(sd.items()[-1], tuple[str, int])
assert_type(sd.values()[:1], list[int])
assert_type(sd.bisect_left("b"), int)
assert_type(sd.irange("a", "b"), Iterator[str])
assert_type(sd.index("b"), int)
assert_type(sd | {"c": 3}, SortedDict[str, int])
assert_type(sd.copy(), SortedDict[str, int])
assert_type(sd.pop("z", None), int | None)
assert_type(sd.setdefault("c", 3), int)
assert_type(SortedDict(x=1.5), SortedDict[str, float])
pairs = [(2, "two"), (1, "one")]
assert_type(SortedDict(pairs), SortedDict[int, str])
assert_type(SortedDict.fromkeys(["a", "b"], 0), SortedDict[str, int])
# A leading key function; the keys need not be comparable themselves.
by_len = SortedDict(length, {"ccc": 3, "a": 1})
assert_type(by_len, SortedDict[str, int])
assert_type(by_len.bisect_key_left(2), int)
for key in reversed(by_len):
    assert_type(key, str)

# --- SortedSet ---------------------------------------------------------------------------
ss = SortedSet([3, 1, 2])
assert_type(ss, SortedSet[int])
assert_type(ss[0], int)
assert_type(ss[::2], list[int])
assert_type(ss.bisect_right(2), int)
assert_type(ss.index(2), int)
assert_type(ss.pop(0), int)
assert_type(ss - {1}, SortedSet[int])
assert_type(ss & [1, 2], SortedSet[int])
assert_type(ss | {2.5}, SortedSet[int | float])
assert_type(ss.union([0.5], [1.5]), SortedSet[int | float])
assert_type(ss.update([4]), SortedSet[int])
assert_type(ss.issubset(range(10)), bool)
keyed_set = SortedSet(["bb", "a"], key=length)
assert_type(keyed_set, SortedSet[str])
assert_type(keyed_set.irange_key(1, 2), Iterator[str])

# Type stubs for ``sortedcontainers`` 2.4.0, which ships no types of its own.

from .sorteddict import (
    SortedDict as SortedDict,
    SortedItemsView as SortedItemsView,
    SortedKeysView as SortedKeysView,
    SortedValuesView as SortedValuesView,
)
from .sortedlist import SortedKeyList as SortedKeyList, SortedList as SortedList, SortedListWithKey as SortedListWithKey
from .sortedset import SortedSet as SortedSet

__all__ = [
    "SortedList",
    "SortedKeyList",
    "SortedListWithKey",
    "SortedDict",
    "SortedKeysView",
    "SortedItemsView",
    "SortedValuesView",
    "SortedSet",
]

__title__: str
__version__: str
__build__: int
__author__: str
__license__: str
__copyright__: str

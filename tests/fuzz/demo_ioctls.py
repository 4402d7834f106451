"""The ioctl ABI of the demo's ``safebinder`` drivers, as fuzzer argument strategies."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from safemm import PAGE_SIZE
from safemm.demo.drivers.abi import (
    SAFEBINDER_FREE,
    SAFEBINDER_GET_ID,
    SAFEBINDER_RECV,
    SAFEBINDER_SEND,
)
from safemm.fuzz import Ioctls, UserMapping
from safemm.fuzz._world import DEVICE

__all__ = ["DEMO_IOCTLS"]


def _free_arg(maps: tuple[UserMapping, ...]) -> SearchStrategy[object]:
    """An address RECV may have returned: mostly the start of the caller's mapping of the
    device (where the first buffer lands), else a page of any mapping, or junk."""
    mine = [m.start for m in maps if m.device == DEVICE]
    addrs = [m.start + i * PAGE_SIZE for m in maps for i in range(2)]
    if not addrs:
        return st.none()
    choices = [st.sampled_from(mine)] * 3 if mine else []
    return st.one_of(*choices, st.sampled_from(addrs), st.integers(-1, 8))


_send_ok = st.tuples(
    st.sampled_from([1, 1, 2, 2, 0, 3]),
    st.one_of(
        st.binary(min_size=1, max_size=16),
        st.sampled_from([PAGE_SIZE, PAGE_SIZE + 1, 3 * PAGE_SIZE]).map(lambda n: b"x" * n),
    ),
)
_send_bad: SearchStrategy[object] = st.one_of(
    st.none(), st.tuples(st.integers(1, 2), st.just(b""))
)

#: GET_ID and RECV take nothing; SEND mostly a target id (ids count from 1) and some bytes
#: (up to three pages), sometimes something malformed; FREE an address.
DEMO_IOCTLS: Ioctls = {
    SAFEBINDER_GET_ID: st.none(),
    SAFEBINDER_SEND: st.sampled_from([_send_ok, _send_ok, _send_ok, _send_bad]).flatmap(
        lambda s: s
    ),
    SAFEBINDER_RECV: st.none(),
    SAFEBINDER_FREE: _free_arg,
}

"""Schedule tokens: a short printable string that replays one schedule exactly.

A schedule is the sequence of *decisions* the scheduler made (switch points where more than
one task could run). Most decisions are the default one — the running task goes on, or, when
it cannot, the first runnable task in order — so a token stores only the deviations: for each,
how many decisions after the previous deviation it came, which context it chose, and a 16-bit
fingerprint of the decisions since the previous deviation (their switch-point kinds, labels,
running task and runnable set). The end of the run is summed up the same way. Replay checks
each fingerprint before it applies the deviation, so a program that no longer reaches the same
switch points is reported at the first deviation whose stretch differs, instead of running a
different schedule.

Layout (then URL-safe base64 without padding, after the prefix ``S1.``): one byte strategy
code, varint seed, varint number of decisions, two bytes end fingerprint, varint number of
deviations, then per deviation: varint gap, varint context, two bytes fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass

__all__ = ["PREFIX", "Deviation", "Token", "TokenError", "fingerprint"]

PREFIX = "S1."
STRATEGIES = ("random", "pct", "dfs", "hypothesis", "replay")


class TokenError(ValueError):
    """A string that is not a schedule token."""


@dataclass(frozen=True)
class Deviation:
    """One non-default decision: ``gap`` decisions after the previous deviation (or the
    start), the scheduler ran context ``context``; ``check`` fingerprints the stretch."""

    gap: int
    context: int
    check: int


@dataclass(frozen=True)
class Token:
    """A decoded schedule token."""

    strategy: str
    seed: int
    decisions: int
    end_check: int
    deviations: tuple[Deviation, ...]

    def encode(self) -> str:
        """The printable token."""
        out = bytearray([STRATEGIES.index(self.strategy)])
        _varint(out, self.seed)
        _varint(out, self.decisions)
        out += self.end_check.to_bytes(2, "big")
        _varint(out, len(self.deviations))
        for d in self.deviations:
            _varint(out, d.gap)
            _varint(out, d.context)
            out += d.check.to_bytes(2, "big")
        return PREFIX + base64.urlsafe_b64encode(bytes(out)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Token:
        """Parse a token; :class:`TokenError` names what is wrong."""
        raw_text: object = text
        if not isinstance(raw_text, str) or not text.startswith(PREFIX):
            raise TokenError(f"not a schedule token (tokens start with {PREFIX!r}): {text!r}")
        body = text[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as e:
            raise TokenError(f"schedule token {text!r} is not valid base64: {e}") from None
        pos = [0]
        try:
            code = raw[0]
            pos[0] = 1
            if code >= len(STRATEGIES):
                raise TokenError(f"schedule token {text!r} names an unknown strategy {code}")
            seed = _read_varint(raw, pos)
            decisions = _read_varint(raw, pos)
            end_check = int.from_bytes(raw[pos[0] : pos[0] + 2], "big")
            pos[0] += 2
            n = _read_varint(raw, pos)
            devs = []
            for _ in range(n):
                gap = _read_varint(raw, pos)
                ctx = _read_varint(raw, pos)
                if pos[0] + 2 > len(raw):
                    raise IndexError
                check = int.from_bytes(raw[pos[0] : pos[0] + 2], "big")
                pos[0] += 2
                devs.append(Deviation(gap, ctx, check))
        except IndexError:
            raise TokenError(f"schedule token {text!r} is truncated") from None
        if pos[0] != len(raw):
            raise TokenError(f"schedule token {text!r} has trailing bytes")
        return cls(STRATEGIES[code], seed, decisions, end_check, tuple(devs))


def fingerprint(
    check: int, kind: str, label: str, current: int, candidates: tuple[int, ...]
) -> int:
    """Fold one decision into a running 16-bit fingerprint."""
    data = f"{kind}|{label}|{current}|{','.join(map(str, candidates))}".encode()
    return zlib.crc32(data, check) & 0xFFFF


def _varint(out: bytearray, n: int) -> None:
    if n < 0:
        raise ValueError(f"varint of negative {n}")
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def _read_varint(raw: bytes, pos: list[int]) -> int:
    n = 0
    shift = 0
    while True:
        b = raw[pos[0]]
        pos[0] += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n
        shift += 7

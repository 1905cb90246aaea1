"""The TCP segment as a value: a frozen, slotted dataclass and its options (RFC 9293 §3.1, RFC 7323, RFC 2018).

This is the smoltcp "Repr" level: what the endpoint produces and consumes. Turning it into bytes and back is
:mod:`tcpwise.wire.tcp`'s job (``emit``/``parse``); nothing here validates peer data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tcpwise.vocab import ACK, FIN, RST, SYN, flags_to_str

__all__ = [
    "TcpOption",
    "EolOption",
    "NopOption",
    "MssOption",
    "WindowScaleOption",
    "SackPermittedOption",
    "SackOption",
    "TimestampsOption",
    "UnknownOption",
    "TcpSegment",
]


class TcpOption:
    """Base of the option values; ``kind`` is the option-kind byte (RFC 9293 §3.1, IANA registry)."""

    __slots__ = ()
    kind: int


@dataclass(frozen=True, slots=True)
class EolOption(TcpOption):
    kind = 0


@dataclass(frozen=True, slots=True)
class NopOption(TcpOption):
    kind = 1


@dataclass(frozen=True, slots=True)
class MssOption(TcpOption):
    mss: int
    kind = 2


@dataclass(frozen=True, slots=True)
class WindowScaleOption(TcpOption):
    shift: int
    kind = 3


@dataclass(frozen=True, slots=True)
class SackPermittedOption(TcpOption):
    kind = 4


@dataclass(frozen=True, slots=True)
class SackOption(TcpOption):
    blocks: tuple[tuple[int, int], ...]
    kind = 5


@dataclass(frozen=True, slots=True)
class TimestampsOption(TcpOption):
    tsval: int
    tsecr: int
    kind = 8


@dataclass(frozen=True, slots=True)
class UnknownOption(TcpOption):
    """An option we do not interpret, kept byte for byte so a parse -> emit round trip is exact."""

    kind: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """One TCP segment. ``flags`` is the 8-bit flag field (see :mod:`tcpwise.vocab`). ``options`` keeps order and
    padding (NOP/EOL) so that emitting a parsed segment reproduces its bytes. ``checksum`` is what was on the
    wire when parsed (None when built locally: emit computes it)."""

    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    options: tuple[TcpOption, ...] = ()
    payload: bytes = b""
    urgent: int = 0
    checksum: int | None = None

    # -- sequence space (RFC 9293 §3.4: SYN and FIN each occupy one sequence number) ------------------------
    @property
    def seg_len(self) -> int:
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    @property
    def flag_str(self) -> str:
        return flags_to_str(self.flags)

    @property
    def syn(self) -> bool:
        return bool(self.flags & SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & RST)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & ACK)

    # -- option accessors ----------------------------------------------------------------------------------
    def _opt(self, cls: type) -> Any:
        for o in self.options:
            if type(o) is cls:
                return o
        return None

    @property
    def mss(self) -> int | None:
        o = self._opt(MssOption)
        return o.mss if o else None

    @property
    def wscale(self) -> int | None:
        o = self._opt(WindowScaleOption)
        return o.shift if o else None

    @property
    def sack_permitted(self) -> bool:
        return self._opt(SackPermittedOption) is not None

    @property
    def sack_blocks(self) -> tuple[tuple[int, int], ...]:
        o = self._opt(SackOption)
        return o.blocks if o else ()

    @property
    def timestamps(self) -> tuple[int, int] | None:
        o = self._opt(TimestampsOption)
        return (o.tsval, o.tsecr) if o else None

    def with_(self, **changes: Any) -> TcpSegment:
        return replace(self, **changes)

    def options_dict(self) -> dict[str, Any]:
        """Decoded options in the event schema's ``opts`` shape."""
        d: dict[str, Any] = {}
        for o in self.options:
            t = type(o)
            if t is MssOption:
                d["mss"] = o.mss  # type: ignore[attr-defined]
            elif t is WindowScaleOption:
                d["ws"] = o.shift  # type: ignore[attr-defined]
            elif t is SackPermittedOption:
                d["sackok"] = True
            elif t is SackOption:
                d["sack"] = [list(b) for b in o.blocks]  # type: ignore[attr-defined]
            elif t is TimestampsOption:
                d["ts"] = [o.tsval, o.tsecr]  # type: ignore[attr-defined]
        return d

"""One watched socket's life: the record ``tcpwise watch`` prints when the socket ends (the JSON Lines contract).

The JSON object (docs/watch.md; scripts depend on the keys marked *)::

    {"laddr"*, "lport"*, "raddr"*, "rport"*, "family": 4|6, "netns": INODE|null,
     "pid"*: int|null, "comm"*: str|null, "role": "client"|"server"|"listener"|"unknown",
     "start": EPOCH_S, "end": EPOCH_S|null, "duration": S,
     "transitions"*: [{"t"*: EPOCH_S, "from"*: STATE, "to"*: STATE}, ...],
     "closer"*: "local"|"remote"|"none", "simultaneous_close": bool, "time_wait": true|false|null,
     "resets_sent"*: N, "resets_received"*: N, "resets": [{"t", "dir": "sent"|"received", "state", "reason"?}],
     "retransmits"*: N, "synack_retransmits": N, "end_reason": str, "open"*: bool, "partial": bool,
     "source": "tracepoints"|"sock_diag"}

States are the canonical names of :mod:`tcpwise.vocab`. ``time_wait`` says whether *this* side went into
TIME_WAIT (null: the kernel handed the connection to a timewait socket in FIN_WAIT_2 or TIME_WAIT and the
tracepoints cannot tell which — docs/watch.md "what it cannot see"). ``partial`` marks sockets that existed
before the watch started (their first transitions were not seen).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tcpwise.vocab import kernel_state_name

__all__ = ["ConnRecord", "Transition", "ResetInfo", "fmt_addr", "END_REASONS"]

END_REASONS = (
    "fin",  # both FINs exchanged (LAST_ACK -> CLOSED, or TIME_WAIT entered)
    "handoff",  # FIN_WAIT_2 handed to a timewait socket; the rest of the teardown is not traced
    "reset",  # a RST ended it
    "refused",  # SYN answered by RST
    "timeout",  # retransmissions exhausted (no RST seen)
    "aborted",  # closed by the application without a FIN exchange
    "listener-closed",
    "closed",  # sock_diag fallback: vanished between two samples, cause unseen
    "open",  # still open when the watch ended
)


def fmt_addr(family: int, raw: bytes) -> str:
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[:16])
    return socket.inet_ntop(socket.AF_INET, raw[:4])


class Transition(NamedTuple):
    """One state change (a NamedTuple: built once per transition of every socket, so it must be cheap)."""

    t: float  # epoch seconds
    from_state: str
    to_state: str

    def to_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "from": self.from_state, "to": self.to_state}


class ResetInfo(NamedTuple):
    t: float
    dir: str  # "sent" | "received"
    state: str
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"t": round(self.t, 6), "dir": self.dir, "state": self.state}
        if self.reason:
            d["reason"] = self.reason
        return d


@dataclass(frozen=True, slots=True)
class ConnRecord:
    """A finished (or, at the end of a watch, still open) socket."""

    laddr: str
    lport: int
    raddr: str
    rport: int
    family: int  # 4 or 6
    netns: int | None
    pid: int | None
    comm: str | None
    role: str
    start: float
    end: float | None
    transitions: tuple[Transition, ...]
    closer: str
    simultaneous_close: bool
    time_wait: bool | None
    resets: tuple[ResetInfo, ...]
    retransmits: int
    synack_retransmits: int
    end_reason: str
    open: bool
    partial: bool
    source: str = "tracepoints"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resets_sent(self) -> int:
        return sum(1 for r in self.resets if r.dir == "sent")

    @property
    def resets_received(self) -> int:
        return sum(1 for r in self.resets if r.dir == "received")

    @property
    def duration(self) -> float:
        last = (
            self.end if self.end is not None else (self.transitions[-1].t if self.transitions else self.start)
        )
        return max(0.0, last - self.start)

    @property
    def final_state(self) -> str:
        return self.transitions[-1].to_state if self.transitions else "?"

    def states(self) -> list[str]:
        """Every state the socket was seen in, in order (the first ``from`` then each ``to``)."""
        if not self.transitions:
            return []
        return [self.transitions[0].from_state] + [t.to_state for t in self.transitions]

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON, written directly (a watch writes tens of thousands per second;
        ``json.dumps(to_dict())`` costs three times as much). A test holds the two to the same object."""
        tr = ",".join(
            f'{{"t":{round(t.t, 6)!r},"from":"{t.from_state}","to":"{t.to_state}"}}' for t in self.transitions
        )
        rs = ",".join(json.dumps(r.to_dict(), separators=(",", ":")) for r in self.resets)
        end = "null" if self.end is None else repr(round(self.end, 6))
        tw = _j(self.time_wait)
        head = (
            f'{{"laddr":{_j(self.laddr)},"lport":{self.lport},"raddr":{_j(self.raddr)},"rport":{self.rport},'
            f'"family":{self.family},"netns":{_j(self.netns)},"pid":{_j(self.pid)},"comm":{_j(self.comm)},'
            f'"role":"{self.role}","start":{round(self.start, 6)!r},"end":{end},'
            f'"duration":{round(self.duration, 6)!r},"transitions":[{tr}],"closer":"{self.closer}",'
            f'"simultaneous_close":{_j(self.simultaneous_close)},"time_wait":{tw},'
            f'"resets_sent":{self.resets_sent},"resets_received":{self.resets_received},"resets":[{rs}],'
            f'"retransmits":{self.retransmits},"synack_retransmits":{self.synack_retransmits},'
            f'"end_reason":"{self.end_reason}","open":{_j(self.open)},"partial":{_j(self.partial)},'
            f'"source":"{self.source}"'
        )
        if self.extra:
            head += "," + json.dumps(self.extra, separators=(",", ":"))[1:-1]
        return head + "}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "laddr": self.laddr,
            "lport": self.lport,
            "raddr": self.raddr,
            "rport": self.rport,
            "family": self.family,
            "netns": self.netns,
            "pid": self.pid,
            "comm": self.comm,
            "role": self.role,
            "start": round(self.start, 6),
            "end": round(self.end, 6) if self.end is not None else None,
            "duration": round(self.duration, 6),
            "transitions": [t.to_dict() for t in self.transitions],
            "closer": self.closer,
            "simultaneous_close": self.simultaneous_close,
            "time_wait": self.time_wait,
            "resets_sent": self.resets_sent,
            "resets_received": self.resets_received,
            "resets": [r.to_dict() for r in self.resets],
            "retransmits": self.retransmits,
            "synack_retransmits": self.synack_retransmits,
            "end_reason": self.end_reason,
            "open": self.open,
            "partial": self.partial,
            "source": self.source,
        }
        d.update(self.extra)
        return d


def _j(v: object) -> str:
    """A JSON scalar: the few value kinds a record holds (str via json for escaping, bools, None, numbers)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def state_name(n: int) -> str:
    return kernel_state_name(n)

"""Questions checks ask of a recorded Run — the same for a sim run, a lab run and a traced connection.

Kept deliberately small and schema-only (no endpoint objects), so that checks written against the model also
judge the kernel.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from tcpwise.events import Event, Run, SegmentInfo
from tcpwise.vocab import AppCall, AppWhy, DropReason, EventKind
from tcpwise.wire.seq import seq_add

__all__ = [
    "SegEvent",
    "values",
    "state_events",
    "state_path",
    "sends",
    "recvs",
    "drops",
    "apps",
    "errors",
    "first_time_in",
    "time_in_state",
    "isn_of",
    "rel",
    "entered",
    "flags_seq",
]


def values(run: Run) -> dict[str, Any]:
    """The measured numbers a scenario's simulation recorded for its checks and narrative."""
    vals: dict[str, Any] = run.summary.get("values", {})
    return vals


class SegEvent(NamedTuple):
    """A send/recv/drop event with its segment, typed as present (what :func:`sends` and friends return)."""

    event: Event
    segment: SegmentInfo

    @property
    def t(self) -> float:
        return self.event.t

    @property
    def host(self) -> str:
        return self.event.host

    @property
    def reason(self) -> DropReason | None:
        return self.event.reason


def _is_listener(ev: Event) -> bool:
    return ev.conn is not None and ev.conn.endswith("(listen)")


def state_events(run: Run, host: str, *, listeners: bool = False) -> list[Event]:
    return [
        e for e in run.events if e.kind == "state" and e.host == host and (listeners or not _is_listener(e))
    ]


def state_path(run: Run, host: str, conn: str | None = None, *, start: str | None = None) -> list[str]:
    """The states one connection of ``host`` went through, e.g. ``[SYN_SENT, ESTABLISHED, FIN_WAIT_1, ...]``.
    ``conn`` selects a connection label; default: the first non-listener connection of the host. The initial
    CLOSED (or LISTEN) is left out unless ``start`` names it."""
    evs = state_events(run, host)
    if conn is None and evs:
        conn = evs[0].conn
    path: list[str] = []
    for e in evs:
        if conn is not None and e.conn != conn:
            continue
        if not path:
            if start is not None and e.from_state == start:
                path.append(start)
        path.append(e.to_state or "")
    return path


def entered(run: Run, host: str, state: str) -> list[float]:
    """Times at which any connection of ``host`` entered ``state``."""
    return [e.t for e in state_events(run, host) if e.to_state == state]


def first_time_in(run: Run, host: str, state: str) -> float | None:
    ts = entered(run, host, state)
    return ts[0] if ts else None


def time_in_state(run: Run, host: str, state: str, conn: str | None = None) -> float | None:
    """How long the first stay of a connection in ``state`` lasted (None if it never left within the run)."""
    evs = state_events(run, host)
    if conn is None and evs:
        conn = evs[0].conn
    t_in: float | None = None
    for e in evs:
        if e.conn != conn:
            continue
        if e.to_state == state and t_in is None:
            t_in = e.t
        elif e.from_state == state and t_in is not None:
            return e.t - t_in
    return None


def _segs(run: Run, kind: EventKind, host: str | None) -> list[SegEvent]:
    return [
        SegEvent(e, e.segment)
        for e in run.events
        if e.kind is kind and e.segment is not None and (host is None or e.host == host)
    ]


def sends(run: Run, host: str | None = None) -> list[SegEvent]:
    return _segs(run, EventKind.SEND, host)


def recvs(run: Run, host: str | None = None) -> list[SegEvent]:
    return _segs(run, EventKind.RECV, host)


def drops(run: Run, host: str | None = None, reason: DropReason | None = None) -> list[SegEvent]:
    return [d for d in _segs(run, EventKind.DROP, host) if reason is None or d.event.reason is reason]


def apps(
    run: Run,
    host: str | None = None,
    call: AppCall | None = None,
    *,
    errno: str | None = None,
    why: AppWhy | None = None,
) -> list[Event]:
    """The app events of ``host`` (any host when None), filtered by call, errno and why."""
    return [
        e
        for e in run.events
        if e.kind is EventKind.APP
        and (host is None or e.host == host)
        and (call is None or e.call is call)
        and (errno is None or e.errno == errno)
        and (why is None or e.why is why)
    ]


def errors(run: Run, host: str | None = None, errno: str | None = None) -> list[Event]:
    """The errors the application of ``host`` learnt (failed calls and ERROR reports), optionally one errno."""
    return [
        e
        for e in run.events
        if e.kind is EventKind.APP
        and e.errno is not None
        and (host is None or e.host == host)
        and (errno is None or e.errno == errno)
    ]


def isn_of(run: Run, host: str) -> int | None:
    """The ISN a host chose: the seq of its first SYN or SYN-ACK."""
    for e in sends(run, host):
        assert e.segment is not None
        if "S" in e.segment.flags:
            return e.segment.seq
    return None


def rel(value: int, base: int | None) -> int:
    """A sequence number relative to an ISN, modulo 2**32 (what Wireshark calls relative)."""
    return value if base is None else seq_add(value, -base)


def flags_seq(events: Iterable[Event | SegEvent]) -> list[str]:
    """The flag strings of segment events, in order (what conform compares)."""
    out = []
    for e in events:
        seg: SegmentInfo | None = e.segment
        if seg is not None:
            out.append(seg.flags)
    return out

"""The one event schema: what the sim, the lab and trace emit and what every renderer and conform consume.

A :class:`Run` is the record of one scenario run (model or kernel) or one traced connection::

    {"schema": 2, "scenario", "seed", "params", "hosts", "events": [...], "checks": [...], "summary", "world",
     "series"?}

Each event has a time ``t`` (seconds from the start of the run), the ``host`` it happened at, a ``kind``
(:class:`~tcpwise.vocab.EventKind`) and the typed fields of that kind — nothing a check needs is hidden in free
text:

* ``send`` / ``recv`` – ``segment`` (:class:`SegmentInfo`) left / reached the host;
* ``drop``  – the network lost ``segment`` (``host`` is the sender); ``reason`` (:class:`~tcpwise.vocab.DropReason`)
  says why, ``text`` optionally names the rule or box;
* ``state`` – a connection of the host moved ``from`` -> ``to`` (:class:`~tcpwise.vocab.TcpState`); ``cause`` is the
  :class:`~tcpwise.vocab.Trigger` when the world knows it (the model always does; the kernel's observers do not);
* ``timer`` – the TCP timer ``timer`` (:class:`~tcpwise.vocab.TimerName`) fired;
* ``app``   – the application made the call ``call`` (:class:`~tcpwise.vocab.AppCall`) or learnt its result, with
  ``errno`` (an errno name, e.g. ``ECONNRESET``), ``nbytes``, ``port``, ``backlog`` where they apply, and ``why`` +
  ``value`` when it was the application's own decision (an idle timeout of ``value`` seconds...);
* ``note``  – narrative ``text`` (and ``text_zh``) for the diagram.

``conn`` (optional) names the connection on a host that owns several (``"A:40000>B:80"``; a listener is
``"B:80 (listen)"``). Events are frozen and validated when made: an unknown kind, state, trigger, timer, call or
flag letter raises ``ValueError`` at once, and a kind without its required fields is refused. The JSON form
(:meth:`Event.to_dict`) leaves out keys whose value is ``None``.
"""

from __future__ import annotations

import errno as _errno_names
import json
import math
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from tcpwise.vocab import (
    FLAG_ORDER,
    AppCall,
    AppWhy,
    DropReason,
    EventKind,
    TcpState,
    TimerName,
    Trigger,
    flags_to_str,
)

__all__ = ["SegmentInfo", "Event", "Check", "Host", "Run", "EVENT_KINDS", "SCHEMA_VERSION", "is_errno"]

SCHEMA_VERSION = 2
EVENT_KINDS = tuple(k.value for k in EventKind)
_U32 = 1 << 32


def is_errno(name: str) -> bool:
    """``True`` for an errno name this system knows (``ECONNRESET``, ``EMFILE``...)."""
    return name.startswith("E") and isinstance(getattr(_errno_names, name, None), int)


# Every canonical flag string (letters once each, in S F R P A U E C order): 256 of them, looked up in O(1).
_CANONICAL_FLAGS = frozenset(flags_to_str(bits) for bits in range(256))


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A TCP segment as the schema shows it. ``seq``/``ack`` are absolute 32-bit numbers; ``len`` counts payload
    bytes only (not SYN/FIN); ``win`` is the raw 16-bit window field. ``opts`` holds decoded options (``mss``,
    ``ws``, ``sackok``, ``ts`` [val, ecr], ``sack`` [[l, r], ...]); ``payload`` holds the payload as hex when the
    scenario cares about the bytes."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: str
    len: int
    win: int
    opts: dict[str, Any] | None = None
    payload: str | None = None

    def __post_init__(self) -> None:
        if self.flags not in _CANONICAL_FLAGS:
            raise ValueError(
                f"flags {self.flags!r}: letters must be from {FLAG_ORDER}, once each, in that order"
            )
        if not (0 <= self.sport < 65536 and 0 <= self.dport < 65536):
            raise ValueError(f"port out of range: {self.sport} -> {self.dport}")
        if not (0 <= self.seq < _U32 and 0 <= self.ack < _U32):
            raise ValueError(f"seq/ack must be 32-bit unsigned: seq={self.seq} ack={self.ack}")
        if self.len < 0 or self.win < 0:
            raise ValueError(f"negative length or window: len={self.len} win={self.win}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "src": self.src,
            "dst": self.dst,
            "sport": self.sport,
            "dport": self.dport,
            "seq": self.seq,
            "ack": self.ack,
            "flags": self.flags,
            "len": self.len,
            "win": self.win,
        }
        if self.opts:
            d["opts"] = self.opts
        if self.payload is not None:
            d["payload"] = self.payload
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentInfo:
        return cls(
            src=d["src"],
            dst=d["dst"],
            sport=d["sport"],
            dport=d["dport"],
            seq=d["seq"],
            ack=d["ack"],
            flags=d["flags"],
            len=d["len"],
            win=d["win"],
            opts=d.get("opts"),
            payload=d.get("payload"),
        )


# Which fields each kind must carry (the rest may be None).
_REQUIRED: dict[EventKind, tuple[str, ...]] = {
    EventKind.SEND: ("segment",),
    EventKind.RECV: ("segment",),
    EventKind.DROP: ("segment", "reason"),
    EventKind.STATE: ("from_state", "to_state"),
    EventKind.TIMER: ("timer",),
    EventKind.APP: ("call",),
    EventKind.NOTE: ("text",),
}
# Enum-typed fields: a plain string is turned into the member (and an unknown one refused).
_ENUMS: tuple[tuple[str, type[Any]], ...] = (
    ("from_state", TcpState),
    ("to_state", TcpState),
    ("cause", Trigger),
    ("timer", TimerName),
    ("call", AppCall),
    ("why", AppWhy),
    ("reason", DropReason),
)
# JSON key -> attribute, in the order keys are written.
_JSON_KEYS: tuple[tuple[str, str], ...] = (
    ("from", "from_state"),
    ("to", "to_state"),
    ("cause", "cause"),
    ("timer", "timer"),
    ("call", "call"),
    ("errno", "errno"),
    ("nbytes", "nbytes"),
    ("port", "port"),
    ("backlog", "backlog"),
    ("why", "why"),
    ("value", "value"),
    ("reason", "reason"),
    ("text", "text"),
    ("text_zh", "text_zh"),
    ("conn", "conn"),
)


@dataclass(frozen=True, slots=True)
class Event:
    t: float
    host: str
    kind: EventKind
    _: KW_ONLY
    segment: SegmentInfo | None = None
    from_state: TcpState | None = None  # JSON key "from"
    to_state: TcpState | None = None  # JSON key "to"
    cause: Trigger | None = None
    timer: TimerName | None = None
    call: AppCall | None = None
    errno: str | None = None
    nbytes: int | None = None
    port: int | None = None
    backlog: int | None = None
    why: AppWhy | None = None
    value: float | None = None
    reason: DropReason | None = None
    text: str | None = None
    text_zh: str | None = None
    conn: str | None = None

    def __post_init__(self) -> None:
        kind = self.kind
        if type(kind) is not EventKind:
            kind = EventKind(kind)
            object.__setattr__(self, "kind", kind)
        if not math.isfinite(self.t):
            raise ValueError(f"event time must be finite, got {self.t!r}")
        # Segment events are most of every log: one check for them, the full validation for the rest.
        if kind is EventKind.SEND or kind is EventKind.RECV:
            if self.segment is None:
                raise ValueError(f"a {kind} event needs segment")
            if self.from_state is None and self.call is None and self.timer is None:
                return
        for name, enum in _ENUMS:
            v = getattr(self, name)
            if v is not None and type(v) is not enum:
                object.__setattr__(self, name, enum(v))
        for name in _REQUIRED[kind]:
            if getattr(self, name) is None:
                raise ValueError(f"a {kind} event needs {name}")
        if self.errno is not None and not is_errno(self.errno):
            raise ValueError(f"unknown errno name {self.errno!r}")
        for name in ("nbytes", "port", "backlog"):
            v = getattr(self, name)
            if v is not None and (type(v) is not int or v < 0):
                raise ValueError(f"{name} must be a non-negative int, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"t": round(self.t, 6), "host": self.host, "kind": self.kind.value}
        if self.segment is not None:
            d["segment"] = self.segment.to_dict()
        for key, attr in _JSON_KEYS:
            v = getattr(self, attr)
            if v is not None:
                d[key] = v  # enum members are str: JSON writes their value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        seg = d.get("segment")
        kw: dict[str, Any] = {attr: d.get(key) for key, attr in _JSON_KEYS}
        return cls(
            float(d["t"]),
            d["host"],
            EventKind(d["kind"]),
            segment=SegmentInfo.from_dict(seg) if seg else None,
            **kw,
        )


@dataclass(frozen=True, slots=True)
class Check:
    """A claim the run must make true. ``claim`` is one English sentence, ``claim_zh`` its Chinese twin;
    ``detail`` carries the measured numbers that decided it. ``observed`` is False when the run could not see
    what the claim is about (a lab run too short for a 60 s TIME_WAIT): such a check is reported, not failed."""

    claim: str
    ok: bool
    claim_zh: str | None = None
    detail: str | None = None
    observed: bool = True

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"claim": self.claim, "ok": self.ok}
        if self.claim_zh is not None:
            d["claim_zh"] = self.claim_zh
        if self.detail is not None:
            d["detail"] = self.detail
        if not self.observed:
            d["observed"] = False
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Check:
        return cls(
            claim=d["claim"],
            ok=bool(d["ok"]),
            claim_zh=d.get("claim_zh"),
            detail=d.get("detail"),
            observed=bool(d.get("observed", True)),
        )


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    addr: str
    role: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "addr": self.addr, "role": self.role}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Host:
        return cls(name=d["name"], addr=d["addr"], role=d.get("role", ""))


@dataclass(slots=True)
class Run:
    """One recorded run. ``world`` is ``"sim"``, ``"lab"`` or ``"trace"``. ``summary`` holds ``text`` (the
    narrative, en), ``text_zh`` and ``values`` (the measured numbers the narrative quotes). ``series`` holds time
    series for large runs (``{"t": [...], "TIME_WAIT": [...], ...}``) in place of a full event log."""

    scenario: str
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    hosts: list[Host] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    world: str = "sim"
    series: dict[str, list[float]] | None = None
    title: str = ""

    @property
    def ok(self) -> bool:
        """Every check the run could observe holds."""
        return all(c.ok for c in self.checks if c.observed)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "scenario": self.scenario,
            "title": self.title,
            "world": self.world,
            "seed": self.seed,
            "params": self.params,
            "hosts": [h.to_dict() for h in self.hosts],
            "events": [e.to_dict() for e in self.events],
            "checks": [c.to_dict() for c in self.checks],
            "summary": self.summary,
        }
        if self.series is not None:
            d["series"] = self.series
        return d

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Run:
        return cls(
            scenario=d["scenario"],
            title=d.get("title", ""),
            world=d.get("world", "sim"),
            seed=d.get("seed"),
            params=dict(d.get("params", {})),
            hosts=[Host.from_dict(h) for h in d.get("hosts", [])],
            events=[Event.from_dict(e) for e in d.get("events", [])],
            checks=[Check.from_dict(c) for c in d.get("checks", [])],
            summary=dict(d.get("summary", {})),
            series=d.get("series"),
        )

    @classmethod
    def from_json(cls, text: str) -> Run:
        return cls.from_dict(json.loads(text))

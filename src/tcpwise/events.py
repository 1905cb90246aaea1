"""The one event schema: what the sim, the lab and trace emit and what every renderer and conform consume.

A :class:`Run` is the record of one scenario run (model or kernel) or one traced connection::

    {"scenario", "seed", "params", "hosts", "events": [...], "checks": [...], "summary", "world", "series"?}

Each event has a time ``t`` (seconds, float, from the start of the run), the ``host`` it happened at and a
``kind``:

* ``send``  – the host put ``segment`` on the wire;
* ``recv``  – ``segment`` arrived at the host (after the network);
* ``drop``  – the network lost ``segment`` (``host`` is the sender; ``text`` says why: loss, partition, ...);
* ``state`` – a connection of the host moved ``from`` -> ``to`` (canonical names from :mod:`tcpwise.vocab`);
* ``timer`` – a timer fired (``name``: rto, time_wait, fin_wait_2, keepalive, persist, user_timeout, ...);
* ``app``   – the application called or learnt something (``text``: ``connect()``, ``close()``, ``ECONNRESET``);
* ``note``  – narrative text for the diagram.

``conn`` (optional) names the connection on a host that owns several (``"A:40000>B:80"``), so that lanes
with many sockets stay readable. The JSON form leaves out keys whose value is ``None``; the schema is stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SegmentInfo", "Event", "Check", "Host", "Run", "EVENT_KINDS"]

EVENT_KINDS = ("send", "recv", "drop", "state", "timer", "app", "note")


@dataclass(slots=True)
class SegmentInfo:
    """A TCP segment as the schema shows it. ``seq``/``ack`` are absolute 32-bit numbers; ``len`` counts payload
    bytes only (not SYN/FIN). ``opts`` holds decoded options (``mss``, ``ws``, ``sackok``, ``ts`` [val, ecr],
    ``sack`` [[l, r], ...]); ``payload`` holds the payload as hex when the scenario cares about the bytes."""

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


@dataclass(slots=True)
class Event:
    t: float
    host: str
    kind: str
    segment: SegmentInfo | None = None
    from_state: str | None = None  # JSON key "from"
    to_state: str | None = None  # JSON key "to"
    name: str | None = None  # timer name
    text: str | None = None  # app call / note / drop reason
    conn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"t": round(self.t, 6), "host": self.host, "kind": self.kind}
        if self.from_state is not None:
            d["from"] = self.from_state
        if self.to_state is not None:
            d["to"] = self.to_state
        if self.segment is not None:
            d["segment"] = self.segment.to_dict()
        if self.name is not None:
            d["name"] = self.name
        if self.text is not None:
            d["text"] = self.text
        if self.conn is not None:
            d["conn"] = self.conn
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        seg = d.get("segment")
        return cls(
            t=float(d["t"]),
            host=d["host"],
            kind=d["kind"],
            segment=SegmentInfo.from_dict(seg) if seg else None,
            from_state=d.get("from"),
            to_state=d.get("to"),
            name=d.get("name"),
            text=d.get("text"),
            conn=d.get("conn"),
        )


@dataclass(slots=True)
class Check:
    """A claim the run must make true. ``claim`` is one English sentence, ``claim_zh`` its Chinese twin;
    ``detail`` carries the measured numbers that decided it."""

    claim: str
    ok: bool
    claim_zh: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"claim": self.claim, "ok": self.ok}
        if self.claim_zh is not None:
            d["claim_zh"] = self.claim_zh
        if self.detail is not None:
            d["detail"] = self.detail
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Check:
        return cls(claim=d["claim"], ok=bool(d["ok"]), claim_zh=d.get("claim_zh"), detail=d.get("detail"))


@dataclass(slots=True)
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
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
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

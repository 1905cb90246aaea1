"""The sequence-diagram model every drawing renderer (text, mermaid, svg) shares.

Theory of operation
-------------------
A :class:`tcpwise.events.Run` records each segment up to three times: a ``send`` event at the sender, a ``recv``
event at the receiver after the network delay, or a ``drop`` event (at the sender's host) when the network lost
it. A diagram wants one *arrow* per transmitted segment, from send time to receive time, so :func:`build` pairs
them: every ``send`` opens an arrow keyed by the segment's header fields; the first ``recv`` or ``drop`` with the
same key closes it (FIFO, so reordering and identical retransmissions pair correctly; when a middlebox rewrote
addresses or ports on the way, as a NAT does, the key falls back to seq, ack, flags and length). A second
``recv`` of an already-delivered key is a network duplicate and becomes a duplicate arrow; a ``recv`` nobody
sent (a trace that saw one side only, an injected old duplicate) becomes an arrow that starts at its arrival
time.

Lanes are the run's hosts, in order; a host that appears only in events is appended. Everything that is not a
segment (state changes, timers, application calls, notes) becomes a :class:`Mark` on its host's lane.

Sequence numbers are shown relative to each direction's initial sequence number by default, as Wireshark does
(RFC 9293 §3.4: the SYN consumes the ISN, so the first data byte is relative 1). A direction's ISN is the
sequence number of its first SYN; a later SYN with a different number on the same 4-tuple is a new incarnation
and resets it. A direction first seen without a SYN (a run that starts ESTABLISHED, a mid-stream trace) takes
``seq - 1`` as its ISN, so its first byte is 1, like the textbook's "seq=u". The acknowledgment number is shown
relative to the *reverse* direction's ISN.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tcpwise.events import Event, Run, SegmentInfo
from tcpwise.i18n import event_text
from tcpwise.vocab import AppCall
from tcpwise.wire.seq import seq_add, seq_diff

__all__ = ["Lane", "Arrow", "Mark", "Fold", "Item", "Diagram", "build", "seg_label", "MAX_EVENTS", "GLOBAL"]

GLOBAL = -1  # Mark.lane of a note about the whole run (event with an empty host)

# Beyond this many events a sequence diagram is unreadable anyway (and an SVG of it weighs megabytes): draw the
# first MAX_EVENTS and say how many were left out. Large scenarios report time series instead (Run.series).
MAX_EVENTS = 1500


@dataclass(slots=True)
class Lane:
    name: str
    addr: str
    role: str
    # initial state of each connection on this lane (conn label or "" -> state), from its first state event
    initial: dict[str, str] = field(default_factory=dict)
    conns: list[str] = field(default_factory=list)  # distinct connection labels in order of appearance

    @property
    def title(self) -> str:
        parts = [self.name]
        if self.addr and self.addr != self.name:
            parts.append(self.addr)
        if self.role:
            parts.append(f"({self.role})")
        return " ".join(parts)


@dataclass(slots=True)
class Arrow:
    """One transmitted segment. ``t1`` is the arrival time (None: lost or still in flight at the end)."""

    seg: SegmentInfo
    src: int  # lane index of the sender
    dst: int  # lane index of the receiver
    t0: float
    t1: float | None = None
    lost: bool = False
    reason: str = ""  # drop reason from the drop event's text
    dup: bool = False  # a second delivery of the same transmission (network duplication)
    orphan: bool = False  # received but never seen sent
    label: str = ""
    conn: str | None = None
    send_index: int = -1  # index into Diagram.items of the arrow's start
    recv_index: int = -1  # index into Diagram.items of its end (-1 when none)


@dataclass(slots=True)
class Mark:
    """A lane annotation: ``kind`` is state, timer, app or note; ``lane`` is :data:`GLOBAL` for a note about the
    whole run."""

    kind: str
    lane: int
    t: float
    text: str
    from_state: str | None = None
    to_state: str | None = None
    conn: str | None = None
    call: AppCall | None = None  # app marks: the call (a bulk transfer folds its send()/recv() calls)
    errno: str | None = None


@dataclass(slots=True)
class Fold:
    """One folded bulk run: ``src`` sent ``data`` segments (``nbytes`` bytes) to ``dst`` between ``t0`` and ``t1``;
    ``acks`` pure ACKs came back; ``retx`` data segments repeated bytes already sent; ``lost`` were dropped;
    ``win`` is the first and last window ``dst`` advertised."""

    src: int
    dst: int
    t0: float
    t1: float
    data: int = 0
    nbytes: int = 0
    acks: int = 0
    retx: int = 0
    lost: int = 0
    win: tuple[int, int] | None = None
    arrows: list[Arrow] = field(default_factory=list)
    calls: int = 0  # send()/recv() calls folded with it


@dataclass(slots=True)
class Item:
    """One row of the diagram in event order: an arrow's start ("send"), an arrow's end ("recv"), a mark, or a
    folded bulk transfer ("fold", see :mod:`tcpwise.render.fold`)."""

    kind: str  # "send" | "recv" | "mark" | "fold"
    t: float
    arrow: Arrow | None = None
    mark: Mark | None = None
    fold: Fold | None = None


@dataclass(slots=True)
class Diagram:
    lanes: list[Lane]
    items: list[Item]
    arrows: list[Arrow]
    marks: list[Mark]
    t_end: float
    truncated: int = 0  # events left out (beyond MAX_EVENTS)
    absolute: bool = False

    def state_changes(self, lane: int) -> list[Mark]:
        return [m for m in self.marks if m.kind == "state" and m.lane == lane]


def seg_label(seg: SegmentInfo, rel_seq: int, rel_ack: int | None) -> str:
    """``"SA seq=0 ack=1 len=0 win=65535"``; ``ack`` is left out when the ACK flag is not set (its field is then
    meaningless, RFC 9293 §3.1)."""
    parts = [seg.flags or "-", f"seq={rel_seq}"]
    if rel_ack is not None and "A" in seg.flags:
        parts.append(f"ack={rel_ack}")
    parts.append(f"len={seg.len}")
    parts.append(f"win={seg.win}")
    return " ".join(parts)


class Numbering:
    """Per-direction ISNs for relative sequence numbers (see module docstring)."""

    def __init__(self, absolute: bool) -> None:
        self.absolute = absolute
        self.isn: dict[tuple[str, int, str, int], int] = {}

    def label(self, seg: SegmentInfo) -> str:
        if self.absolute:
            return seg_label(seg, seg.seq, seg.ack)
        fwd = (seg.src, seg.sport, seg.dst, seg.dport)
        rev = (seg.dst, seg.dport, seg.src, seg.sport)
        if "S" in seg.flags:
            # first SYN, or a SYN with a new ISN (a new incarnation of the 4-tuple); a retransmitted SYN keeps it
            self.isn[fwd] = seg.seq
        elif fwd not in self.isn:
            self.isn[fwd] = seq_add(seg.seq, -1)
        rel_ack: int | None = None
        if "A" in seg.flags:
            if rev not in self.isn:
                self.isn[rev] = seq_add(seg.ack, -1)
            rel_ack = seq_diff(seg.ack, self.isn[rev])
        return seg_label(seg, seq_diff(seg.seq, self.isn[fwd]), rel_ack)


def _key(seg: SegmentInfo) -> tuple[object, ...]:
    return (seg.src, seg.dst, seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.len, seg.win)


def _loose_key(seg: SegmentInfo) -> tuple[object, ...]:
    return (seg.seq, seg.ack, seg.flags, seg.len)


def _take(queue: deque[Arrow] | None) -> Arrow | None:
    """The oldest arrow of ``queue`` still in flight (one arrow sits in two queues; the other may have taken it)."""
    while queue:
        a = queue.popleft()
        if a.t1 is None and not a.lost:
            return a
    return None


class _Builder:
    """The state of one :func:`build`: lanes by name and address, arrows waiting for their arrival."""

    def __init__(self, run: Run, absolute: bool, lang: str) -> None:
        self.lang = lang
        self.lanes: list[Lane] = [Lane(h.name, h.addr, h.role) for h in run.hosts]
        self.by_name: dict[str, int] = {lane.name: i for i, lane in enumerate(self.lanes)}
        self.by_addr: dict[str, int] = {lane.addr: i for i, lane in enumerate(self.lanes) if lane.addr}
        self.numbering = Numbering(absolute)
        self.items: list[Item] = []
        self.arrows: list[Arrow] = []
        self.marks: list[Mark] = []
        self.pending: dict[tuple[object, ...], deque[Arrow]] = {}
        # a middlebox that rewrites addresses/ports/window (NAT) changes the exact key between send and recv:
        # fall back to the fields it leaves alone
        self.loose: dict[tuple[object, ...], deque[Arrow]] = {}
        self.delivered: dict[tuple[object, ...], Arrow] = {}
        self.dropped: dict[tuple[object, ...], deque[Arrow]] = {}
        self.seen_conn: dict[int, set[str]] = {}

    def lane_of(self, host: str) -> int:
        i = self.by_name.get(host)
        if i is None:
            i = self.by_addr.get(host)
        if i is None:
            self.lanes.append(Lane(host, "", ""))
            i = self.by_name[host] = len(self.lanes) - 1
        return i

    def lane_of_addr(self, addr: str, other: int) -> int:
        i = self.by_addr.get(addr)
        if i is not None:
            return i
        if len(self.lanes) == 2:
            return 1 - other
        if addr in self.by_name:
            return self.by_name[addr]
        # an address outside the run's hosts (e.g. a trace peer): give it a lane of its own
        self.lanes.append(Lane(addr, addr, ""))
        i = self.by_addr[addr] = self.by_name[addr] = len(self.lanes) - 1
        return i

    def learn_addresses(self, events: list[Event]) -> None:
        """Which address belongs to which host, from the events themselves (runs without a host list, hosts with
        several addresses): a sender owns the source address, a receiver the destination address."""
        for ev in events:
            if ev.segment is not None and ev.kind in ("send", "recv"):
                addr = ev.segment.src if ev.kind == "send" else ev.segment.dst
                if addr not in self.by_addr:
                    self.by_addr[addr] = self.lane_of(ev.host)

    def _start(self, arrow: Arrow, seg: SegmentInfo) -> None:
        arrow.send_index = len(self.items)
        self.items.append(Item("send", arrow.t0, arrow=arrow))
        self.arrows.append(arrow)
        self.pending.setdefault(_key(seg), deque()).append(arrow)
        self.loose.setdefault(_loose_key(seg), deque()).append(arrow)

    def send(self, ev: Event, seg: SegmentInfo) -> None:
        src = self.lane_of(ev.host)
        dst = self.lane_of_addr(seg.dst, src)
        self._start(Arrow(seg, src, dst, ev.t, label=self.numbering.label(seg), conn=ev.conn), seg)

    def recv(self, ev: Event, seg: SegmentInfo) -> None:
        dst = self.lane_of(ev.host)
        key = _key(seg)
        found = _take(self.pending.get(key)) or _take(self.loose.get(_loose_key(seg)))
        if found is None:
            # a segment the network reported dropped but delivered after all (held back by a delay box and
            # released): it was in flight all along, so draw it as one long arrow, keeping the reason
            held = self.dropped.get(key)
            if held:
                found = held.popleft()
                found.lost = False
        if found is not None:
            arrow = found
            arrow.dst = dst
            arrow.t1 = ev.t
            self.delivered[key] = arrow
        else:
            first = self.delivered.get(key)
            if first is not None:  # the network duplicated it: same send, second arrival
                arrow = Arrow(seg, first.src, dst, first.t0, ev.t, dup=True, label=first.label, conn=ev.conn)
                arrow.send_index = first.send_index
            else:
                src = self.lane_of_addr(seg.src, dst)
                label = self.numbering.label(seg)
                arrow = Arrow(seg, src, dst, ev.t, ev.t, orphan=True, label=label, conn=ev.conn)
                arrow.send_index = len(self.items)
            self.arrows.append(arrow)
        arrow.recv_index = len(self.items)
        self.items.append(Item("recv", ev.t, arrow=arrow))

    def drop(self, ev: Event, seg: SegmentInfo) -> None:
        found = _take(self.pending.get(_key(seg))) or _take(self.loose.get(_loose_key(seg)))
        if found is not None:
            found.lost = True
            found.reason = event_text(ev, self.lang)
            self.dropped.setdefault(_key(seg), deque()).append(found)
            return
        # a loss whose send was not recorded: draw it as a lost arrow starting here
        sender = self.by_addr.get(seg.src)
        src = sender if sender is not None else self.lane_of(ev.host)
        arrow = Arrow(
            seg, src, self.lane_of_addr(seg.dst, src), ev.t, lost=True, reason=event_text(ev, self.lang),
            label=self.numbering.label(seg), conn=ev.conn,
        )  # fmt: skip
        self._start(arrow, seg)

    def mark(self, ev: Event) -> None:
        kind = ev.kind
        # a note without a host is about the whole run ("... 5100 events not shown ..."): it spans the lanes
        lane = GLOBAL if (kind == "note" and not ev.host) else self.lane_of(ev.host)
        if kind == "state":
            self._first_state(lane, ev)
            text = f"{ev.from_state or '?'} -> {ev.to_state or '?'}"
        else:
            text = event_text(ev, self.lang)
        m = Mark(kind, lane, ev.t, text, ev.from_state, ev.to_state, ev.conn, ev.call, ev.errno)
        self.marks.append(m)
        self.items.append(Item("mark", ev.t, mark=m))

    def _first_state(self, lane: int, ev: Event) -> None:
        c = ev.conn or ""
        ln = self.lanes[lane]
        if c not in ln.conns:
            ln.conns.append(c)
        seen = self.seen_conn.setdefault(lane, set())
        if c not in seen:
            # A connection's first from-state held since the start of the run -- unless it is a child socket
            # born from a listener ("LISTEN -> SYN_RCVD" on a lane that already has a socket): that one did not
            # exist before this event.
            if ev.from_state and not (ev.from_state == "LISTEN" and seen):
                ln.initial[c] = ev.from_state
            seen.add(c)


def build(run: Run, *, absolute: bool = False, max_events: int = MAX_EVENTS, lang: str = "en") -> Diagram:
    """Pair sends with receives/drops and lay events on lanes. Pure function of the run; mark texts (app calls,
    drop reasons, notes) are built from the events' fields in ``lang``."""
    b = _Builder(run, absolute, lang)
    # the sim logs in time order; a lab or trace run merged from several sources may not (sorted() is stable, so
    # same-time events keep their logged order)
    events: list[Event] = run.events
    if any(y.t < x.t for x, y in zip(events, events[1:], strict=False)):
        events = sorted(events, key=lambda e: e.t)
    b.learn_addresses(events)
    truncated = 0
    if len(events) > max_events:
        truncated = len(events) - max_events
        events = events[:max_events]
    for ev in events:
        seg = ev.segment
        if ev.kind == "send" and seg is not None:
            b.send(ev, seg)
        elif ev.kind == "recv" and seg is not None:
            b.recv(ev, seg)
        elif ev.kind == "drop" and seg is not None:
            b.drop(ev, seg)
        else:
            b.mark(ev)
    t_end = max((ev.t for ev in events), default=0.0)
    return Diagram(b.lanes, b.items, b.arrows, b.marks, t_end, truncated, absolute)


def states_over_time(diagram: Diagram, lane: int) -> dict[str, list[tuple[float, float, str]]]:
    """Per connection on ``lane``: the intervals ``(t_start, t_end, state)`` it spent in each state, from the
    start of the run to its end (the last interval ends at ``diagram.t_end``)."""
    out: dict[str, list[tuple[float, float, str]]] = {}
    ln = diagram.lanes[lane]
    current: dict[str, tuple[float, str]] = {c: (0.0, s) for c, s in ln.initial.items()}
    for m in diagram.state_changes(lane):
        c = m.conn or ""
        start, state = current.get(c, (m.t, m.from_state or "CLOSED"))
        if m.t > start or state != (m.to_state or ""):
            out.setdefault(c, []).append((start, m.t, state))
        current[c] = (m.t, m.to_state or "CLOSED")
    for c, (start, state) in current.items():
        out.setdefault(c, []).append((start, max(diagram.t_end, start), state))
    return out

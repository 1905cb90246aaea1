"""Segment-level comparison of two Runs of the same script: the model's and the kernel's.

Theory of operation
-------------------
Absolute numbers differ between any two runs of the same story (ISNs, ephemeral ports, TSvals, exact times), so
each segment a host *sent* is first normalised into what must be equal (:class:`NormSeg`):

* **connection** — the n-th distinct 4-tuple to appear in the run (ports differ between worlds, the order in which
  connections start does not);
* **direction** — sender and receiver host;
* **flags**, **payload length**;
* **relative seq/ack** — seq minus the sender's ISN on that connection, ack minus the receiver's (the ISN is the
  seq of the side's SYN; when a 4-tuple is reused by a new incarnation, the nearest ISN at or below the number —
  a reset answering an old duplicate is relative to the old one; a reset to a SYN, ``<SEQ=0><CTL=RST,ACK>``,
  keeps its literal 0);
* **window in bytes** — the raw field shifted by the sender's window scale when both SYNs carried the option
  (never in a SYN, RFC 7323 §2.2);
* **options present** — the set of mss / ws / sackok / ts / sack;
* **timestamp echo** — which segments of the peer the TSecr echoes: the set of the peer's segments this host had
  *received* with that TSval (``#k``, or ``#j-k`` when several were sent in the same millisecond), ``-`` for no
  echo (a SYN), ``?`` for a value never received. The two worlds agree when their sets share a segment (a burst
  shares one TSval in the model and may straddle a clock tick on the kernel). TSvals themselves are not compared.

The per-connection lists of the two worlds are compared position by position; the first difference is the
scenario's drill-down (:class:`SegmentDiff`). Windows are compared within a tolerance (:data:`WINDOW_TOL`, 20 %):
the kernel charges its receive buffer by skb truesize and adapts the share of it it advertises to what it measures
(the per-connection scaling ratio of 6.x: measured windows 5-13 % above the model's with data buffered), which the
model does not reproduce; zero must be zero, and an unscaled or missing window scale is off by a factor of 128.

**Timing** is compared only where it is the point: for every *timer-driven* event of the model (a segment sent
by a timer — retransmission, tail loss probe, keepalive or zero-window probe, SYN retry — and a state change a
timer caused — TIME_WAIT or FIN_WAIT_2 expiry, giving up) the time since its anchor — the host's previous segment
on the connection (for a state change: the last script step) — must agree with
the kernel's matching event within :func:`timing_tolerance`: 13 % of that time (the kernel's timer wheel rounds
a timeout up by at most one granularity of its level, under 1/8 of the timeout) plus 25 ms (a 4 ms tick, the
user-space delay line and the 2 ms state polling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tcpwise.events import Event, Run, SegmentInfo
from tcpwise.wire.seq import seq_diff

__all__ = [
    "NormSeg",
    "SegmentDiff",
    "TimingDiff",
    "normalise",
    "first_segment_diff",
    "timing_diffs",
    "timing_tolerance",
    "WINDOW_TOL",
]

# Window tolerance: zero must be zero; otherwise equal within this fraction of the larger or within two scale
# units plus one MSS (a segment the kernel has charged to the buffer before the application read it).
WINDOW_TOL = 0.20
TIMING_REL = 0.13
TIMING_ABS = 0.025
_OPTS = ("mss", "ws", "sackok", "ts", "sack")


@dataclass(frozen=True, slots=True)
class NormSeg:
    t: float
    host: str
    peer: str
    conn: int
    index: int  # position among the segments this host sent on this connection
    flags: str
    seq: int | str
    ack: int | str | None
    len: int
    win: int
    shift: int
    opts: tuple[str, ...]
    echo: str | None
    timer: bool = False  # sent by a timer (the model knows; the kernel run leaves it False)
    echoes: frozenset[int] = frozenset()  # the peer segments the TSecr may echo (see the module docstring)

    def fields(self) -> dict[str, Any]:
        return {
            "flags": self.flags,
            "seq": self.seq,
            "ack": self.ack,
            "len": self.len,
            "win": self.win,
            "opts": list(self.opts),
            "echo": self.echo,
        }

    def line(self) -> str:
        ack = f" ack={self.ack}" if self.ack is not None else ""
        echo = f" echo={self.echo}" if self.echo is not None else ""
        opts = f" [{','.join(self.opts)}]" if self.opts else ""
        return (
            f"{self.host}>{self.peer} #{self.index} {self.flags} seq={self.seq}{ack} len={self.len} "
            f"win={self.win}{opts}{echo}"
        )


@dataclass(frozen=True, slots=True)
class SegmentDiff:
    """The first segment where model and kernel differ."""

    host: str
    conn: int
    index: int
    what: list[str]  # the differing fields, or "missing" / "extra"
    model: NormSeg | None
    kernel: NormSeg | None
    context: list[str] = field(default_factory=list)  # the segments before it, equal in both

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "conn": self.conn,
            "index": self.index,
            "fields": self.what,
            "model": None if self.model is None else {"t": round(self.model.t, 6), **self.model.fields()},
            "kernel": None if self.kernel is None else {"t": round(self.kernel.t, 6), **self.kernel.fields()},
            "context": self.context,
        }

    def describe(self) -> list[str]:
        head = f"{self.host} connection {self.conn}, segment #{self.index}: {', '.join(self.what)}"
        out = [head]
        out += [f"    = {c}" for c in self.context]
        out.append(
            f"  model  t={self.model.t:9.4f}  {self.model.line()}" if self.model else "  model  (none)"
        )
        out.append(
            f"  kernel t={self.kernel.t:9.4f}  {self.kernel.line()}" if self.kernel else "  kernel (none)"
        )
        return out


@dataclass(frozen=True, slots=True)
class TimingDiff:
    what: str  # "segment" | "state"
    host: str
    label: str
    since: float  # the script step both times are measured from
    model: float
    kernel: float
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "host": self.host,
            "label": self.label,
            "since_step": self.since,
            "model_s": round(self.model, 4),
            "kernel_s": round(self.kernel, 4),
            "tolerance_s": round(self.tolerance, 4),
        }

    def describe(self) -> str:
        return (
            f"{self.host} {self.label}: {self.model:.3f} s after the step at {self.since:g} s in the model, "
            f"{self.kernel:.3f} s on the kernel (tolerance ±{self.tolerance:.3f} s)"
        )


def timing_tolerance(elapsed: float) -> float:
    return TIMING_REL * abs(elapsed) + TIMING_ABS


# --- normalisation -------------------------------------------------------------------------------------------
def _conn_key(seg: SegmentInfo) -> tuple[tuple[str, int], tuple[str, int]]:
    a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
    return (a, b) if a <= b else (b, a)


def _host_names(run: Run) -> dict[str, str]:
    return {h.addr: h.name for h in run.hosts}


def normalise(run: Run, horizon: float | None = None) -> dict[tuple[str, int], list[NormSeg]]:
    """The run's sent segments, normalised, per (sending host, connection index), in time order."""
    names = _host_names(run)
    sends = [
        e
        for e in run.events
        if e.kind == "send" and e.segment is not None and (horizon is None or e.t <= horizon + 1e-9)
    ]
    timer_at = {(e.host, round(e.t, 9)) for e in run.events if e.kind == "timer"}
    conns: dict[tuple[tuple[str, int], tuple[str, int]], int] = {}
    isn: dict[tuple[int, str], list[int]] = {}
    shift: dict[tuple[int, str], int] = {}
    syn_ws: dict[tuple[int, str], int | None] = {}
    for e in sends:
        seg = e.segment
        assert seg is not None
        k = conns.setdefault(_conn_key(seg), len(conns))
        if "S" in seg.flags:
            known = isn.setdefault((k, seg.src), [])
            if seg.seq not in known:
                known.append(seg.seq)
            syn_ws.setdefault((k, seg.src), (seg.opts or {}).get("ws"))
    for (k, src), ws in syn_ws.items():
        peers = [w for (k2, s2), w in syn_ws.items() if k2 == k and s2 != src]
        if ws is not None and peers and peers[0] is not None:
            shift[(k, src)] = int(ws)
    out: dict[tuple[str, int], list[NormSeg]] = {}
    # Which send each arriving segment was (a retransmission has its own TSval), and per receiving side the
    # peer segments it has received so far: TSval -> the latest send index with it.
    sent_index: dict[tuple[object, ...], int] = {}
    counts: dict[tuple[int, str], int] = {}
    for e in sends:
        seg = e.segment
        assert seg is not None
        k = conns[_conn_key(seg)]
        n = counts.get((k, seg.src), 0)
        counts[(k, seg.src)] = n + 1
        sent_index.setdefault(_seg_id(seg), n)
    received: dict[tuple[int, str], dict[int, set[int]]] = {}
    for e in run.events:
        if e.kind == "recv" and e.segment is not None and (horizon is None or e.t <= horizon + 1e-9):
            rs = e.segment
            ts = (rs.opts or {}).get("ts")
            key = _conn_key(rs)
            if ts and key in conns and _seg_id(rs) in sent_index:
                got = received.setdefault((conns[key], rs.dst), {})
                got.setdefault(int(ts[0]), set()).add(sent_index[_seg_id(rs)])
            continue
        if e.kind != "send" or e.segment is None or (horizon is not None and e.t > horizon + 1e-9):
            continue
        seg = e.segment
        k = conns[_conn_key(seg)]
        host = names.get(seg.src, e.host)
        peer = names.get(seg.dst, seg.dst)
        lst = out.setdefault((host, k), [])
        own = isn.get((k, seg.src), [])
        other = isn.get((k, seg.dst), [])
        opts = seg.opts or {}
        ts = opts.get("ts")
        echo: str | None = None
        echoes: frozenset[int] = frozenset()
        if ts:
            ecr = int(ts[1])
            if ecr == 0:
                echo = "-"
            else:
                echoes = frozenset(received.get((k, seg.src), {}).get(ecr, ()))
                lo, hi = (min(echoes), max(echoes)) if echoes else (0, 0)
                echo = "?" if not echoes else (f"#{lo}" if lo == hi else f"#{lo}-{hi}")
        sh = 0 if "S" in seg.flags else shift.get((k, seg.src), 0)
        lst.append(
            NormSeg(
                t=e.t,
                host=host,
                peer=peer,
                conn=k,
                index=len(lst),
                flags=seg.flags,
                seq=_rel_seq(seg, own),
                ack=_rel(seg.ack, other) if "A" in seg.flags else None,
                len=seg.len,
                win=seg.win << sh,
                shift=sh,
                opts=tuple(o for o in _OPTS if o in opts and opts[o] not in (None, False)),
                echo=echo,
                timer=(e.host, round(e.t, 9)) in timer_at,
                echoes=echoes,
            )
        )
    return out


def _seg_id(seg: SegmentInfo) -> tuple[object, ...]:
    ts = (seg.opts or {}).get("ts")
    return (
        seg.src,
        seg.dst,
        seg.sport,
        seg.dport,
        seg.seq,
        seg.ack,
        seg.flags,
        seg.len,
        tuple(ts) if ts else None,
    )


def _rel(x: int, isns: list[int]) -> int | str:
    """``x`` relative to the nearest of a side's ISNs at or below it (its incarnations of the 4-tuple)."""
    if not isns:
        return f"@{x}"
    diffs = [seq_diff(x, i) for i in isns]
    ahead = [d for d in diffs if d >= 0]
    return min(ahead) if ahead else diffs[0]


def _rel_seq(seg: SegmentInfo, isns: list[int]) -> int | str:
    if "R" in seg.flags and seg.seq == 0:
        return "0"  # <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>: a reset to a SYN
    return _rel(seg.seq, isns)


# --- comparison ----------------------------------------------------------------------------------------------
def _window_close(a: NormSeg, b: NormSeg) -> bool:
    if (a.win == 0) != (b.win == 0):
        return False
    slack = max(WINDOW_TOL * max(a.win, b.win), 2 * (1 << max(a.shift, b.shift)) + 1448)
    return abs(a.win - b.win) <= slack


def _echo_agrees(a: NormSeg, b: NormSeg) -> bool:
    if a.echoes or b.echoes:
        return bool(a.echoes & b.echoes)
    return a.echo == b.echo


def _differs(a: NormSeg, b: NormSeg, ignore: tuple[str, ...] = ()) -> list[str]:
    fields = ("peer", "flags", "seq", "ack", "len", "opts")
    out = [name for name in fields if getattr(a, name) != getattr(b, name)]
    if not _echo_agrees(a, b):
        out.append("echo")
    if not _window_close(a, b):
        out.append("win")
    return [x for x in out if x not in ignore]


def first_segment_diff(
    model: dict[tuple[str, int], list[NormSeg]],
    kernel: dict[tuple[str, int], list[NormSeg]],
    ignore: tuple[str, ...] = (),
) -> SegmentDiff | None:
    """The earliest (by model time) position where the two worlds' segments differ, or None. ``ignore`` names
    fields a scenario's plan leaves out (with its reason)."""
    found: list[tuple[float, SegmentDiff]] = []
    for key in sorted(set(model) | set(kernel)):
        ms, ks = model.get(key, []), kernel.get(key, [])
        for i in range(max(len(ms), len(ks))):
            a = ms[i] if i < len(ms) else None
            b = ks[i] if i < len(ks) else None
            if a is not None and b is not None:
                what = _differs(a, b, ignore)
                if not what:
                    continue
            else:
                what = ["missing on the kernel"] if b is None else ["only on the kernel"]
            ctx = [s.line() for s in ms[max(0, i - 2) : i]]
            t = a.t if a is not None else (b.t if b is not None else 0.0)
            found.append((t, SegmentDiff(key[0], key[1], i, what, a, b, ctx)))
            break
    if not found:
        return None
    found.sort(key=lambda x: x[0])
    return found[0][1]


def _step_before(steps: list[float], t: float) -> float:
    best = 0.0
    for s in steps:
        if s <= t + 1e-9:
            best = s
        else:
            break
    return best


def _timer_states(run: Run, horizon: float | None) -> dict[tuple[str, str, int], Event]:
    """Timer-caused state changes, keyed (host, to-state, occurrence among such changes)."""
    out: dict[tuple[str, str, int], Event] = {}
    count: dict[tuple[str, str], int] = {}
    for e in run.events:
        if e.kind != "state" or e.to_state is None or (horizon is not None and e.t > horizon + 1e-9):
            continue
        cause = str(e.cause or "")
        if not (cause.startswith("timer") or cause == "timeout"):
            continue
        key = (e.host, str(e.to_state))
        n = count.get(key, 0)
        count[key] = n + 1
        out[(e.host, str(e.to_state), n)] = e
    return out


def _kernel_states(run: Run, horizon: float | None) -> dict[tuple[str, str], list[Event]]:
    out: dict[tuple[str, str], list[Event]] = {}
    for e in run.events:
        if e.kind == "state" and e.to_state is not None and (horizon is None or e.t <= horizon + 1e-9):
            out.setdefault((e.host, str(e.to_state)), []).append(e)
    return out


def timing_diffs(
    model_run: Run,
    kernel_run: Run,
    model: dict[tuple[str, int], list[NormSeg]],
    kernel: dict[tuple[str, int], list[NormSeg]],
    steps: list[float],
    horizon: float | None = None,
) -> list[TimingDiff]:
    """Timer-driven events whose timing disagrees beyond :func:`timing_tolerance` (matched by position)."""
    steps = sorted(steps)
    out: list[TimingDiff] = []
    for key, ms in model.items():
        ks = kernel.get(key, [])
        for i, (a, b) in enumerate(zip(ms, ks, strict=False)):
            if not a.timer:
                continue
            s = _step_before(steps, a.t)
            sm = sk = s
            if i > 0:  # a timer started by the host's previous segment (a retransmission series, a probe)
                sm, sk = ms[i - 1].t, ks[i - 1].t
            dm, dk = a.t - sm, b.t - sk
            tol = timing_tolerance(dm)
            if abs(dm - dk) > tol:
                out.append(TimingDiff("segment", a.host, f"{a.flags} #{a.index} (timer)", s, dm, dk, tol))
    kstates = _kernel_states(kernel_run, horizon)
    for (host, state, _n), ev in _timer_states(model_run, horizon).items():
        # The kernel's change into the same state: the first one at or after the model's step anchor.
        s = _step_before(steps, ev.t)
        cands = [k for k in kstates.get((host, state), []) if k.t >= s - 1e-9]
        if not cands:
            continue  # absent on the kernel: the state comparison reports it
        k = min(cands, key=lambda x: abs(x.t - ev.t))
        dm, dk = ev.t - s, k.t - s
        tol = timing_tolerance(dm)
        if abs(dm - dk) > tol:
            out.append(TimingDiff("state", host, f"-> {state} ({ev.cause})", s, dm, dk, tol))
    return out

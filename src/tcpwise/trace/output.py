"""Run a capture through reader -> decode -> tracker, and the per-connection summaries (JSON, table story).

Theory of operation: :func:`trace_file` is the whole pipeline and the only loop over the file; output formats
are *sinks* the tracker calls as it finishes each connection, so JSON and Zeek output stream with constant
memory. The table sink has to hold its rows (a table is sorted by connection number), which is fine for the
capture sizes a human reads as a table.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from tcpwise.trace.decode import AddrTable, DecodeStats, decode_batch
from tcpwise.trace.reader import CaptureError, open_capture
from tcpwise.trace.tracker import Conn, Tracker
from tcpwise.trace.zeek import conn_state, uid

__all__ = ["TraceResult", "trace_file", "conn_dict", "conn_json", "story", "JsonSink"]


@dataclass(slots=True)
class TraceResult:
    stats: DecodeStats
    connections: int
    peak_open: int
    linktypes: list[int]
    format: str
    error: CaptureError | None = None  # truncation found after every complete record was processed
    wanted: Conn | None = None
    warnings: list[str] = field(default_factory=list)


def trace_file(
    path: str,
    sink: Callable[[Conn], None],
    addrs: AddrTable | None = None,
    batch: int = 65536,
    want: int | None = None,
    linger: float = 5.0,
) -> TraceResult:
    """Track every TCP connection in ``path``; ``sink`` receives each finished :class:`Conn`.

    Raises :class:`CaptureError` at once for a file that is not a capture or has an unsupported link type; a
    file truncated or corrupt *after* some good records is processed up to that point, the connections are
    flushed, and the error is returned in :attr:`TraceResult.error` for the caller to report (exit 2).
    """
    addrs = addrs or AddrTable()
    stats = DecodeStats()
    tracker = Tracker(sink, addrs, linger=linger)
    tracker.want = want
    # The tracker allocates no reference cycles; the cyclic GC would only rescan millions of live tuples.
    gc_was = gc.isenabled()
    gc.disable()
    try:
        return _trace(path, sink, addrs, stats, tracker, batch)
    finally:
        if gc_was:
            gc.enable()


def _trace(
    path: str,
    sink: Callable[[Conn], None],
    addrs: AddrTable,
    stats: DecodeStats,
    tracker: Tracker,
    batch: int,
) -> TraceResult:
    err: CaptureError | None = None
    with open_capture(path) as cap:
        try:
            for rb in cap.batches(batch):
                tracker.feed(decode_batch(cap.buf, rb, addrs, stats, path))  # type: ignore[arg-type]
                if tracker.wanted_done:
                    break  # --conn N: that connection's story is complete
        except CaptureError as exc:
            if cap.packets_read == 0:
                raise
            err = exc
        tracker.flush()
        res = TraceResult(
            stats=stats,
            connections=tracker.count,
            peak_open=tracker.peak,
            linktypes=sorted(cap.linktypes),
            format=cap.format,
            error=err,
            wanted=tracker.wanted,
        )
    res.warnings = stats.warnings()
    return res


def _kb(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1e6:.1f} MB"


def story(c: Conn) -> str:
    """A one-line lifecycle story: how it opened, what flowed, who closed first and who holds TIME_WAIT."""
    st = conn_state(c)
    parts: list[str] = []
    if c.partial:
        parts.append("mid-stream (no handshake seen)")
    elif st in ("S0", "SH"):
        n = c.o.pkts
        parts.append("SYN unanswered" + (f" ({n} tries)" if n > 1 else ""))
    elif st == "REJ":
        parts.append("refused: SYN answered by RST")
    elif c.synack_t is not None and c.syn_t is not None:
        rtt = (c.ack_t if c.ack_t is not None else c.synack_t) - c.syn_t
        parts.append(f"handshake {rtt * 1000:.2f} ms")
    if c.o.bytes or c.r.bytes:
        parts.append(f"client {_kb(c.o.bytes)} / server {_kb(c.r.bytes)}")
    who = ("client", "server")
    if c.rst_by is not None and st != "REJ":
        s = c.sides[c.rst_by]
        sil = c.rst_silence or 0.0
        if sil >= 10 and c.rst_reply:
            parts.append(
                f"RST by {who[c.rst_by]} answering the {who[1 - c.rst_by]} after {sil:.0f} s of silence: it no longer "
                "knew the connection (half-open)"
            )
        elif sil >= 10:
            parts.append(
                f"RST by {who[c.rst_by]} in {s.rst_state or '?'} after {sil:.0f} s idle (abort on timeout)"
            )
        else:
            parts.append(f"RST by {who[c.rst_by]} in {s.rst_state or '?'}")
    if c.first_fin is not None:
        d = c.first_fin
        other = c.sides[1 - d]
        after = other.bytes - c.peer_bytes_at_fin
        if after > 0:  # RFC 9293 §3.6: the side that got the FIN may keep sending (half-close)
            parts.append(f"half-close: {who[1 - d]} sent {_kb(after)} after the {who[d]}'s FIN")
        if other.fin_end is None:
            peer_state = other.state or "?"
            parts.append(f"{who[d]} closed first; {who[1 - d]} never closed ({peer_state})")
        else:
            if c.sides[d].state == "TIME_WAIT" and other.state == "TIME_WAIT":
                parts.append("simultaneous close: both hold TIME_WAIT")
            else:
                parts.append(f"{who[d]} closed first -> {who[d]} holds TIME_WAIT")
    elif c.rst_by is None and st not in ("S0", "REJ", "SH"):
        parts.append("still open at end of capture")
        o, r = c.o, c.r
        if o.t_last is not None and r.t_last is not None and abs(o.t_last - r.t_last) >= 5:
            d = 0 if o.t_last > r.t_last else 1
            x = c.sides[d]
            if x.rxmt or x.keepalive or x.ctl_rxmt:
                parts.append(
                    f"half-open suspected: {who[d]} kept sending for {abs(o.t_last - r.t_last):.0f} s "
                    f"({x.rxmt + x.ctl_rxmt} retrans, {x.keepalive} keepalives) with no answer"
                )
    extras = []
    rx = c.o.rxmt + c.r.rxmt
    if rx:
        extras.append(f"{rx} retrans")
    cr = c.o.ctl_rxmt + c.r.ctl_rxmt
    if cr and st not in ("S0", "SH"):
        extras.append(f"{cr} SYN/FIN retrans")
    ka = c.o.keepalive + c.r.keepalive
    if ka:
        extras.append(f"{ka} keepalive")
    zw = c.o.zw + c.r.zw
    if zw:
        extras.append(f"{zw} zero-win")
    ooo = c.o.ooo + c.r.ooo
    if ooo:
        extras.append(f"{ooo} out-of-order")
    if extras:
        parts.append(", ".join(extras))
    return "; ".join(parts)


def _r6(x: float) -> float:
    """Microsecond rounding without ``round()`` (which costs microseconds per call in this hot loop)."""
    return int(x * 1e6 + (0.5 if x >= 0 else -0.5)) / 1e6


def _side_dict(s: Any) -> dict[str, Any]:
    return {
        "pkts": s.pkts,
        "ip_bytes": s.ipbytes,
        "bytes": s.bytes,
        "missed_bytes": s.missed,
        "retransmissions": s.rxmt,
        "control_retransmissions": s.ctl_rxmt,
        "out_of_order": s.ooo,
        "zero_windows": s.zw,
        "keepalives": s.keepalive,
        "window_probes": s.winprobe,
        "fin": s.fin_end is not None,
        "final_state": s.state,
    }


def conn_dict(c: Conn, name: Callable[[int], str], salt: int = 0) -> dict[str, Any]:
    """The JSON form of one connection."""
    hs: dict[str, float] = {}
    if c.syn_t is not None and c.synack_t is not None:
        hs["syn_to_synack"] = _r6(c.synack_t - c.syn_t)
        if c.ack_t is not None:
            hs["synack_to_ack"] = _r6(c.ack_t - c.synack_t)
    who = ("orig", "resp")
    rst = None
    if c.rst_by is not None:
        s = c.sides[c.rst_by]
        rst = {"by": who[c.rst_by], "state": s.rst_state, "t": _r6(s.rst_t or 0.0)}
    tw = [who[i] for i in (0, 1) if c.sides[i].state == "TIME_WAIT"]
    return {
        "n": c.n,
        "uid": uid(c, salt),
        "ts": c.ts,
        "duration": _r6(c.last - c.ts),
        "orig_h": name(c.orig_ep >> 16),
        "orig_p": c.orig_ep & 0xFFFF,
        "resp_h": name(c.resp_ep >> 16),
        "resp_p": c.resp_ep & 0xFFFF,
        "conn_state": conn_state(c),
        "history": c.history,
        "partial": c.partial,
        "handshake": hs or None,
        "first_fin": who[c.first_fin] if c.first_fin is not None else None,
        "time_wait": tw,
        "rst": rst,
        "orig": _side_dict(c.o),
        "resp": _side_dict(c.r),
        # [seconds since the connection's first packet, host, from, to]
        "states": [[_r6(t - c.ts), who[d], a, b] for (t, d, a, b) in c.transitions],
        "story": story(c),
        "packets": [c.first_index, c.last_index],
    }


def _jv(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return '"' + v + '"'  # only our own ASCII names/letters/addresses reach here (no quotes, no escapes)
    return repr(v)


def _side_json(s: Any) -> str:
    return (
        f'{{"pkts":{s.pkts},"ip_bytes":{s.ipbytes},"bytes":{s.bytes},"missed_bytes":{s.missed if s.holes else 0},'
        f'"retransmissions":{s.rxmt},"control_retransmissions":{s.ctl_rxmt},"out_of_order":{s.ooo},"zero_windows":{s.zw},"keepalives":{s.keepalive},'
        f'"window_probes":{s.winprobe},"fin":{_jv(s.fin_end is not None)},"final_state":{_jv(s.state)}}}'
    )


class _TailCache(dict):  # type: ignore[type-arg]
    """``(side, from, to)`` -> the JSON text after the time of a state entry, built once per combination."""

    def __missing__(self, k: tuple[int, str, str]) -> str:
        v = self[k] = f',"{("orig", "resp")[k[0]]}","{k[1]}","{k[2]}"]'
        return v


_STATE_TAIL = _TailCache()


def conn_json(c: Conn, name: Callable[[int], str], salt: int = 0) -> str:
    """``json.dumps(conn_dict(c))`` written directly: the JSON sink's hot path (tests hold the two equal)."""
    who = ("orig", "resp")
    ts = c.ts
    if c.syn_t is not None and c.synack_t is not None:
        hs = f'{{"syn_to_synack":{c.synack_t - c.syn_t:.6f}'
        if c.ack_t is not None:
            hs += f',"synack_to_ack":{c.ack_t - c.synack_t:.6f}'
        hs += "}"
    else:
        hs = "null"
    if c.rst_by is not None:
        s = c.sides[c.rst_by]
        rst = f'{{"by":"{who[c.rst_by]}","state":{_jv(s.rst_state)},"t":{s.rst_t or 0.0:.6f}}}'
    else:
        rst = "null"
    tw = ",".join(f'"{who[i]}"' for i in (0, 1) if c.sides[i].state == "TIME_WAIT")
    tail = _STATE_TAIL
    states = ",".join([f"[{t - ts:.6f}{tail[d, a, b]}" for (t, d, a, b) in c.transitions])
    ff = f'"{who[c.first_fin]}"' if c.first_fin is not None else "null"
    return (
        f'{{"n":{c.n},"uid":"{uid(c, salt)}","ts":{ts!r},"duration":{c.last - ts:.6f},'
        f'"orig_h":"{name(c.orig_ep >> 16)}","orig_p":{c.orig_ep & 0xFFFF},'
        f'"resp_h":"{name(c.resp_ep >> 16)}","resp_p":{c.resp_ep & 0xFFFF},'
        f'"conn_state":"{conn_state(c)}","history":"{c.history}","partial":{_jv(c.partial)},'
        f'"handshake":{hs},"first_fin":{ff},"time_wait":[{tw}],"rst":{rst},'
        f'"orig":{_side_json(c.o)},"resp":{_side_json(c.r)},"states":[{states}],'
        f'"story":"{story(c)}","packets":[{c.first_index},{c.last_index}]}}'
    )


class JsonSink:
    """Streams ``{"connections": [...], ...}``: each connection is written as soon as it is finished."""

    def __init__(self, out: TextIO, name: Callable[[int], str], salt: int = 0) -> None:
        self.out = out
        self.name = name
        self.salt = salt
        self.n = 0
        out.write('{"connections": [\n')

    def __call__(self, c: Conn) -> None:
        if not self.salt:  # uids differ between captures: seed them with the first finished connection's time
            self.salt = int(c.ts * 1e6) or 1
        if self.n:
            self.out.write(",\n")
        self.out.write(conn_json(c, self.name, self.salt))
        self.n += 1

    def close(self, summary: dict[str, Any]) -> None:
        self.out.write("\n],\n")
        self.out.write('"summary": ' + json.dumps(summary) + "}\n")

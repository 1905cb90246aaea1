"""Run a capture through reader -> decode -> tracker, and the per-connection summaries (JSON, story).

Theory of operation: :func:`trace_file` is the whole pipeline and the only loop over the capture; output formats
are *sinks* the tracker calls as it finishes each connection, so every format streams with memory that follows
the connections still open, not the file. Sinks write nothing until their first connection or their close, so an
input that turns out not to be a capture leaves no output at all.

Ctrl-C: while :func:`trace_file` runs in the main thread, SIGINT only sets a :class:`~tcpwise.trace.reader.StopFlag`.
A mapped file stops at the next batch boundary; a stream is drained by the reader first (see its docstring). The
connections seen so far are then finished and flushed as at the end of a capture, so the output is complete up to
that point and :attr:`TraceResult.interrupted` says so. A third Ctrl-C raises ``KeyboardInterrupt`` at once.
"""

from __future__ import annotations

import contextlib
import gc
import json
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from tcpwise.term import fmt_seconds
from tcpwise.trace import native
from tcpwise.trace.decode import AddrTable, DecodeStats, decode_batch
from tcpwise.trace.reader import Capture, CaptureError, StopFlag, open_capture
from tcpwise.trace.tracker import Conn, Side, Tracker, ZeekTimers
from tcpwise.trace.zeek import conn_state, uid

__all__ = ["TraceResult", "trace_file", "conn_dict", "conn_json", "story", "JsonSink", "sigint_to", "BATCH"]

# Packets decoded and tracked at a time: large enough that numpy's per-call cost disappears, small enough that a
# batch's arrays and lists stay a few tens of MB (a SYN flood's memory budget counts them).
BATCH = 32768


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
    interrupted: bool = False  # Ctrl-C ended the input early; the output covers what was read
    stream: bool = False  # the input was a pipe or FIFO
    packets_read: int = 0


@contextlib.contextmanager
def sigint_to(stop: StopFlag) -> Iterator[None]:
    """While active (main thread only), Ctrl-C increments ``stop.requested``; the third raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_sig: int, _frame: object) -> None:
        stop.requested += 1
        if stop.requested >= 3:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def trace_file(
    path: str,
    sink: Callable[[Conn], None],
    addrs: AddrTable | None = None,
    batch: int = BATCH,
    want: int | None = None,
    timers: ZeekTimers | None = None,
    checksums: str = "auto",
    reference: bool = False,
    cap: Capture | None = None,
    stop: StopFlag | None = None,
) -> TraceResult:
    """Track every TCP connection in ``path`` (or the already open ``cap``); ``sink`` receives each finished row.

    Raises :class:`CaptureError` at once for an input that is not a capture or has an unsupported link type; a
    capture truncated or corrupt *after* some good records is processed up to that point, the connections are
    flushed, and the error is returned in :attr:`TraceResult.error` for the caller to report (exit 2).
    ``want=n`` keeps connection ``n`` in :attr:`TraceResult.wanted`; once it is finished the rest of the file is
    only walked (not decoded), so that a damaged tail is still reported.
    """
    addrs = addrs or AddrTable()
    stats = DecodeStats()
    tracker = Tracker(sink, addrs, timers=timers, reference=reference)
    tracker.want = want
    stop = stop or (cap.stop if cap is not None else StopFlag())
    # The tracker allocates no reference cycles; the cyclic GC would only rescan millions of live tuples.
    gc_was = gc.isenabled()
    gc.disable()
    try:
        with sigint_to(stop):
            if cap is None:
                cap = open_capture(path, stop)
            with cap:
                return _trace(path, cap, addrs, stats, tracker, batch, checksums, stop)
    finally:
        if gc_was:
            gc.enable()


def _trace(
    path: str,
    cap: Capture,
    addrs: AddrTable,
    stats: DecodeStats,
    tracker: Tracker,
    batch: int,
    checksums: str,
    stop: StopFlag,
) -> TraceResult:
    err: CaptureError | None = None
    interrupted = False
    try:
        for rb in cap.batches(batch):
            if not tracker.wanted_done:  # --conn: once that connection is complete, only walk on
                tracker.feed(decode_batch(rb.buf, rb, addrs, stats, path, checksums=checksums))
            if stop.requested and (cap.stream is None or stop.requested >= 2):
                interrupted = True
                break
    except CaptureError as exc:
        if cap.packets_read == 0:
            raise
        err = exc
    interrupted = interrupted or bool(stop.requested)
    tracker.flush()
    res = TraceResult(
        stats=stats,
        connections=tracker.count,
        peak_open=tracker.peak,
        linktypes=sorted(cap.linktypes),
        format=cap.format,
        error=err,
        wanted=tracker.wanted,
        interrupted=interrupted,
        stream=cap.stream is not None,
        packets_read=cap.packets_read,
    )
    res.warnings = stats.warnings()
    return res


def _kb(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.1f} kB"
    return f"{n / 1e6:.1f} MB"


_WHO = ("client", "server")


def story(c: Conn) -> str:
    """A one-line lifecycle story: how it opened, what flowed, who closed first and who holds TIME_WAIT."""
    st = conn_state(c)
    parts: list[str] = []
    _story_open(c, st, parts)
    if c.o.bytes or c.r.bytes:
        parts.append(f"client {_kb(c.o.bytes)} / server {_kb(c.r.bytes)}")
    if c.rst_by is not None and st != "REJ":
        parts.append(_story_rst(c))
    if c.first_fin is not None:
        _story_fin(c, parts)
    elif c.rst_by is None and st not in ("S0", "REJ", "SH"):
        _story_still_open(c, parts)
    extras = _story_extras(c, st)
    if extras:
        parts.append(", ".join(extras))
    return "; ".join(parts)


def _story_open(c: Conn, st: str, parts: list[str]) -> None:
    """How the row began: a continued row, mid-stream, unanswered, refused, or the handshake's RTT."""
    if c.prev_n is not None:
        why = " (Zeek's inactivity timeout ended that row)" if c.prev_end == "inactivity" else ""
        parts.append(f"continues #{c.prev_n}{why}")
    elif c.partial:
        parts.append("mid-stream (no handshake seen)")
    elif st in ("S0", "SH"):
        n = c.o.pkts
        parts.append("SYN unanswered" + (f" ({n} tries)" if n > 1 else ""))
    elif st == "REJ":
        parts.append("refused: SYN answered by RST")
    elif c.synack_t is not None and c.syn_t is not None:
        took = (c.ack_t if c.ack_t is not None else c.synack_t) - c.syn_t
        text = f"handshake {fmt_seconds(took)}"  # 100 ms, 1.05 s, 52 µs (loopback): 3 digits
        if c.ack_t is not None and c.syn_last_t is not None and c.syn_last_t > c.syn_t:
            # SYN retries: the wait was the retransmission timer's, not the path's; say both.
            text += f" (SYN retried; RTT {fmt_seconds(c.ack_t - c.syn_last_t)})"
        parts.append(text)


def _story_rst(c: Conn) -> str:
    """Who reset, in which state, and whether a long silence before it points at a half-open connection."""
    assert c.rst_by is not None
    who = _WHO
    s = c.sides[c.rst_by]
    sil = c.rst_silence or 0.0
    if sil >= 10 and c.rst_reply:
        return (
            f"RST by {who[c.rst_by]} answering the {who[1 - c.rst_by]} after {sil:.0f} s of silence: it no longer "
            "knew the connection (half-open)"
        )
    if sil >= 10:
        return f"RST by {who[c.rst_by]} in {s.rst_state or '?'} after {sil:.0f} s idle (abort on timeout)"
    return f"RST by {who[c.rst_by]} in {s.rst_state or '?'}"


def _story_fin(c: Conn, parts: list[str]) -> None:
    """Who closed first, a half-close, and who holds TIME_WAIT."""
    assert c.first_fin is not None
    who = _WHO
    d = c.first_fin
    other = c.sides[1 - d]
    after = other.bytes - c.peer_bytes_at_fin
    if after > 0:  # RFC 9293 §3.6: the side that got the FIN may keep sending (half-close)
        parts.append(f"half-close: {who[1 - d]} sent {_kb(after)} after the {who[d]}'s FIN")
    if other.fin_end is None:
        peer_state = other.state or "?"
        parts.append(f"{who[d]} closed first; {who[1 - d]} never closed ({peer_state})")
    elif c.sides[d].state == "TIME_WAIT" and other.state == "TIME_WAIT":
        parts.append("simultaneous close: both hold TIME_WAIT")
    else:
        parts.append(f"{who[d]} closed first -> {who[d]} holds TIME_WAIT")


def _story_still_open(c: Conn, parts: list[str]) -> None:
    """A row that ended without FIN or RST: open at the end, or ended by Zeek's timer; half-open suspicion."""
    if c.end == "inactivity":
        parts.append(f"still open, silent for {c.idle:.0f} s: Zeek's inactivity timeout ended the row")
    else:
        parts.append("still open at end of capture")
    o, r = c.o, c.r
    if o.t_last is not None and r.t_last is not None and abs(o.t_last - r.t_last) >= 5:
        d = 0 if o.t_last > r.t_last else 1
        x = c.sides[d]
        if x.rxmt or x.keepalive or x.ctl_rxmt:
            parts.append(
                f"half-open suspected: {_WHO[d]} kept sending for {abs(o.t_last - r.t_last):.0f} s "
                f"({x.rxmt + x.ctl_rxmt} retrans, {x.keepalive} keepalives) with no answer"
            )


def _story_extras(c: Conn, st: str) -> list[str]:
    """Counters worth a word: retransmissions, keepalives, zero windows, reordering, bad checksums."""
    extras = []
    rx = c.o.rxmt + c.r.rxmt
    if rx:
        extras.append(f"{rx} retrans")
    cr = c.o.ctl_rxmt + c.r.ctl_rxmt
    if cr and st not in ("S0", "SH"):
        extras.append(f"{cr} SYN/FIN retrans")
    for n, what in (
        (c.o.keepalive + c.r.keepalive, "keepalive"),
        (c.o.zw + c.r.zw, "zero-win"),
        (c.o.ooo + c.r.ooo, "out-of-order"),
    ):
        if n:
            extras.append(f"{n} {what}")
    chk = c.o.chk + c.r.chk
    if chk:
        extras.append(f"{chk} bad checksum{'s' if chk > 1 else ''} ignored")
    return extras


def _r6(x: float) -> float:
    """Microsecond rounding without ``round()`` (which costs microseconds per call in this hot loop)."""
    return int(x * 1e6 + (0.5 if x >= 0 else -0.5)) / 1e6


def _side_dict(s: Any) -> dict[str, Any]:
    return {
        "pkts": s.pkts,
        "ip_bytes": s.ipbytes,
        "bytes": s.size,
        "missed_bytes": s.missed,
        "retransmissions": s.rxmt,
        "control_retransmissions": s.ctl_rxmt,
        "out_of_order": s.ooo,
        "zero_windows": s.zw,
        "keepalives": s.keepalive,
        "window_probes": s.winprobe,
        "bad_checksums": s.chk,
        "window": s.win if s.win is not None else s.wsyn,
        "window_scaled": s.window_scaled,
        "window_max_scaled": s.window_max_scaled,
        "window_scale": s.wshift,
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
            if c.syn_last_t is not None:
                hs["rtt"] = _r6(c.ack_t - c.syn_last_t)
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
        "end": c.end,
        "continues": c.prev_n,
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


_QUIET = (
    '"retransmissions":0,"control_retransmissions":0,"out_of_order":0,"zero_windows":0,"keepalives":0,'
    '"window_probes":0,"bad_checksums":0,'
)


def _side_json(s: Any) -> str:
    """``json.dumps(_side_dict(s))`` without separators' spaces, written directly (hot: twice per connection)."""
    acc = s.acc  # Side.size, inlined
    size = acc - 1 if acc else 0
    if s.fin_cnt and size:
        size -= 1
    w, shift = s.win, s.wshift
    if w is None:
        w = s.wsyn
        wsc = "null" if w is None else w
    else:
        wsc = w << shift if shift else w
    wmax = s.wmax << shift if shift else s.wmax
    if s.wsyn is not None and s.wsyn > wmax:
        wmax = s.wsyn
    if s.rxmt or s.ctl_rxmt or s.ooo or s.zw or s.keepalive or s.winprobe or s.chk:
        mid = (
            f'"retransmissions":{s.rxmt},"control_retransmissions":{s.ctl_rxmt},"out_of_order":{s.ooo},'
            f'"zero_windows":{s.zw},"keepalives":{s.keepalive},"window_probes":{s.winprobe},'
            f'"bad_checksums":{s.chk},'
        )
    else:
        mid = _QUIET
    st = s.state
    return (
        f'{{"pkts":{s.pkts},"ip_bytes":{s.ipbytes},"bytes":{size},"missed_bytes":{s.missed},{mid}'
        f'"window":{"null" if w is None else w},"window_scaled":{wsc},"window_max_scaled":{wmax},'
        f'"window_scale":{"null" if shift is None else shift},"fin":{"false" if s.fin_end is None else "true"},'
        f'"final_state":{"null" if st is None else chr(34) + st + chr(34)}}}'
    )


class _TailCache(dict):  # type: ignore[type-arg]
    """``(side, from, to)`` -> the JSON text after the time of a state entry, built once per combination."""

    def __missing__(self, k: tuple[int, str, str]) -> str:
        v = self[k] = f',"{("orig", "resp")[k[0]]}","{k[1]}","{k[2]}"]'
        return v


_STATE_TAIL = _TailCache()
_STATE_FORMS: dict[tuple[tuple[int, str, str], ...], str] = {}


def _state_form(tr: list[tuple[float, int, str, str]]) -> str:
    """A %-format for a connection's ``states`` list: ``[%.6f,"orig","CLOSED","SYN_SENT"],...`` (cached by the
    sequence of (side, from, to); a capture has few distinct ones)."""
    form = ",".join("[%.6f" + _STATE_TAIL[d, a, b] for _t, d, a, b in tr)
    if len(_STATE_FORMS) < 4096:
        _STATE_FORMS[tuple([x[1:] for x in tr])] = form
    return form


def _conn_json_py(c: Conn, name: Callable[[int], str], salt: int = 0) -> str:
    """``json.dumps(conn_dict(c))`` written directly: the reference for the native ``conn_json`` (tests hold the
    two equal, and this equal to :func:`conn_dict`)."""
    who = ("orig", "resp")
    ts = c.ts
    if c.syn_t is not None and c.synack_t is not None:
        hs = f'{{"syn_to_synack":{c.synack_t - c.syn_t:.6f}'
        if c.ack_t is not None:
            hs += f',"synack_to_ack":{c.ack_t - c.synack_t:.6f}'
            if c.syn_last_t is not None:
                hs += f',"rtt":{c.ack_t - c.syn_last_t:.6f}'
        hs += "}"
    else:
        hs = "null"
    if c.rst_by is not None:
        s = c.sides[c.rst_by]
        rst = f'{{"by":"{who[c.rst_by]}","state":{_jv(s.rst_state)},"t":{s.rst_t or 0.0:.6f}}}'
    else:
        rst = "null"
    tw = ",".join(f'"{who[i]}"' for i in (0, 1) if c.sides[i].state == "TIME_WAIT")
    tr = c.transitions
    form = _STATE_FORMS.get(tuple([x[1:] for x in tr]))  # the same close story -> the same text around times
    if form is None:
        form = _state_form(tr)
    states = form % tuple([x[0] - ts for x in tr])
    ff = f'"{who[c.first_fin]}"' if c.first_fin is not None else "null"
    return (
        f'{{"n":{c.n},"uid":"{uid(c, salt)}","ts":{ts!r},"duration":{c.last - ts:.6f},'
        f'"orig_h":"{name(c.orig_ep >> 16)}","orig_p":{c.orig_ep & 0xFFFF},'
        f'"resp_h":"{name(c.resp_ep >> 16)}","resp_p":{c.resp_ep & 0xFFFF},'
        f'"conn_state":"{conn_state(c)}","history":"{c.history}","partial":{_jv(c.partial)},'
        f'"handshake":{hs},"first_fin":{ff},"time_wait":[{tw}],"rst":{rst},'
        f'"orig":{_side_json(c.o)},"resp":{_side_json(c.r)},"states":[{states}],'
        f'"story":"{story(c)}","packets":[{c.first_index},{c.last_index}],"end":"{c.end}",'
        f'"continues":{_jv(c.prev_n)}}}'
    )


class _ConnJson(Protocol):
    def __call__(self, c: Conn, name: Callable[[int], str], salt: int = 0) -> str: ...


def _pick_conn_json() -> _ConnJson:
    """The native row writer (``_rowjson.c``: the same bytes in ~2-4 µs instead of ~20 per connection) unless
    it was not built or ``TCPWISE_NATIVE=0`` asks for the Python reference."""
    rowjson = native.load("_rowjson")
    if rowjson is None:  # not built (no C compiler: setup.py declares it optional), or TCPWISE_NATIVE=0
        return _conn_json_py
    # It reads these two classes' slots directly and hands anything else (other types, values it does not
    # model) to the reference.
    rowjson.configure(Conn, Side, _conn_json_py)
    return rowjson.conn_json  # type: ignore[no-any-return]


conn_json = _pick_conn_json()


class JsonSink:
    """Streams ``{"connections": [...], ...}``: each connection is written as soon as it is finished. Nothing is
    written before the first connection or :meth:`close`."""

    def __init__(self, out: TextIO, name: Callable[[int], str], salt: int = 0) -> None:
        self.out = out
        self.name = name
        self.salt = salt
        self.n = 0

    def __call__(self, c: Conn) -> None:
        if not self.salt:  # uids differ between captures: seed them with the first finished connection's time
            self.salt = int(c.ts * 1e6) or 1
        self.out.write(('{"connections": [\n' if not self.n else ",\n") + conn_json(c, self.name, self.salt))
        self.n += 1

    def close(self, summary: dict[str, Any]) -> None:
        if not self.n:
            self.out.write('{"connections": [\n')
        self.out.write("\n],\n")
        self.out.write('"summary": ' + json.dumps(summary) + "}\n")

"""What ``tcpwise watch`` prints: table rows, JSON Lines, Zeek conn.log rows, and one connection as a Run.

- table: one line per finished socket, 80 columns by default (``--wide`` for full addresses): time, duration,
  pid/command, local > remote, and the story (who closed first and so who holds TIME_WAIT, resets with the state
  they hit, retransmissions). Colour only on a terminal and never with ``NO_COLOR``.
- json: the JSON Lines contract of docs/watch.md (:meth:`ConnRecord.to_dict`), then ``{"summary": ...}``.
- zeek: ``conn.log`` rows (header and footer from :class:`tcpwise.trace.zeek.ZeekWriter`); ``conn_state`` and a
  ``history`` derived from the state story of the one side we watch (byte and packet counts are not traced: ``-``).
- :func:`conn_run`: a record (and its local peer's, when both ends are on this host) as a
  :class:`tcpwise.events.Run`, drawn by the one set of renderers (``tcpwise.render``) like sim and trace.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from tcpwise.events import Event, Host, Run
from tcpwise.vocab import EventKind, TcpState
from tcpwise.watch.live import WatchSummary
from tcpwise.watch.record import ConnRecord

__all__ = ["TableWriter", "JsonWriter", "ZeekRows", "story", "endpoints", "conn_run", "zeek_state", "history"]


def _ep(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _dur(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f}µs"
    if s < 1:
        return f"{s * 1e3:.1f}ms" if s < 0.1 else f"{s * 1e3:.0f}ms"
    if s < 60:
        return f"{s:.2f}s" if s < 10 else f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def story(r: ConnRecord, reasons: bool = True) -> str:
    """A short line: how it ended, from this side's point of view (the table's last column)."""
    if r.role == "listener":
        head = "listening" if r.open else "listener closed"
    elif r.open:
        head = f"open: {r.final_state}"
    elif r.end_reason == "refused":
        head = "refused (RST to SYN)"
    elif r.end_reason == "reset":
        rs = r.resets[0] if r.resets else None
        head = f"RST {'sent' if rs.dir == 'sent' else 'rcvd'} in {rs.state}" if rs is not None else "reset"
        if rs is not None and rs.reason and reasons:
            head += f" ({rs.reason})"
    elif r.end_reason == "timeout":
        head = "timed out"
    elif r.end_reason == "aborted":
        head = f"aborted in {r.transitions[-1].from_state if r.transitions else '?'}"
    elif r.end_reason == "closed":
        head = f"gone after {r.transitions[-1].from_state if r.transitions else '?'}"
    elif r.simultaneous_close:
        head = "simultaneous close"
    elif r.closer == "local":
        head = "we closed → TIME_WAIT" if r.time_wait else "we closed → handoff"
    elif r.closer == "remote":
        head = "peer closed"
    else:
        head = r.end_reason
    extra = []
    n = r.retransmits + r.synack_retransmits
    if n:
        extra.append(f"{n} rtx")
    if r.resets and r.end_reason not in ("reset", "refused"):
        extra.append(f"{len(r.resets)} RST")
    if r.partial:
        extra.append("began before watch")
    return head + (f" +{', '.join(extra)}" if extra else "")


def endpoints(r: ConnRecord, width: int | None = None) -> str:
    """``laddr:lport>raddr:rport`` (``>:rport`` when both addresses are equal), fitted into ``width`` by
    shortening the addresses, never the ports."""
    if not r.rport:
        return _fit_ep(r.laddr, r.lport, width)
    if r.raddr == r.laddr:
        right = f">:{r.rport}"
        return _fit_ep(r.laddr, r.lport, None if width is None else width - len(right)) + right
    full = f"{_ep(r.laddr, r.lport)}>{_ep(r.raddr, r.rport)}"
    if width is None or len(full) <= width:
        return full
    half = (width - 1) // 2
    right_w = width - 1 - half
    return _fit_ep(r.laddr, r.lport, half) + ">" + _fit_ep(r.raddr, r.rport, right_w)


def _fit_ep(addr: str, port: int, width: int | None) -> str:
    full = _ep(addr, port)
    if width is None or len(full) <= width:
        return full
    tail = f":{port}"
    keep = max(width - len(tail) - 1, 1)
    return addr[:keep] + "…" + tail


def _use_color(out: TextIO, choice: str = "auto") -> bool:
    from tcpwise.term import use_color

    return use_color(choice, out)


class TableWriter:
    """Streaming rows; the header once. 80 columns unless ``wide``."""

    def __init__(self, out: TextIO = sys.stdout, wide: bool = False, color: str = "auto") -> None:
        self.out = out
        self.wide = wide
        self.color = _use_color(out, color)
        self.rows = 0
        self.ep_w = 27
        self.header()

    def header(self) -> None:
        ep = "local>remote" if self.wide else f"{'local>remote':<{self.ep_w}}"
        h = f"{'ended':<8} {'dur':>6} {'pid comm':<12} {ep} story"
        self.out.write(self._style(h, "1") + "\n")

    def _style(self, s: str, code: str) -> str:
        return f"\x1b[{code}m{s}\x1b[0m" if self.color else s

    def write(self, r: ConnRecord) -> None:
        ts = time.strftime("%H:%M:%S", time.localtime(r.end if r.end is not None else r.start))
        who = f"{r.pid} {r.comm}" if r.pid is not None else "?"
        if self.wide:
            line = f"{ts:<8} {_dur(r.duration):>6} {who:<22} {endpoints(r)} "
            st = story(r)
        else:
            line = f"{ts:<8} {_dur(r.duration):>6} {who[:12]:<12} {endpoints(r, self.ep_w):<{self.ep_w}} "
            st = story(r, reasons=False)
            room = 80 - len(line)
            if len(st) > room:
                st = st[: max(room - 1, 0)] + "…"
        if self.color:
            if r.end_reason in ("reset", "refused", "timeout"):
                st = self._style(st, "31")
            elif r.open:
                st = self._style(st, "33")
        self.out.write(line + st + "\n")
        self.out.flush()
        self.rows += 1

    def lost(self, n: int) -> None:
        sys.stderr.write(
            f"tcpwise: watch: {n} events lost (ring buffer full); some stories may be incomplete\n"
        )

    def close(self, s: WatchSummary) -> None:
        if s.source == "tracepoints":
            tail = f"{s.events} events, {s.lost} lost"
        else:
            tail = f"{s.events} samples of sock_diag every {s.interval:g} s"
        self.out.write(self._style(f"{self.rows} sockets, {tail}, {s.elapsed:.1f} s", "2") + "\n")


class JsonWriter:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def write(self, r: ConnRecord) -> None:
        self.out.write(r.to_json() + "\n")

    def lost(self, n: int) -> None:
        sys.stderr.write(f"tcpwise: watch: {n} events lost (ring buffer full)\n")

    def flush(self) -> None:
        """Called after each drain: lines reach a pipe in batches, not one write(2) per socket."""
        self.out.flush()

    def close(self, s: WatchSummary) -> None:
        self.out.write(json.dumps({"summary": s.to_dict()}, separators=(",", ":")) + "\n")
        self.out.flush()


def zeek_state(r: ConnRecord) -> str:
    """Zeek's conn_state from one side's story (we are the originator when we opened actively)."""
    states = set(r.states())
    orig = r.role == "client"
    if r.role not in ("client", "server"):
        return "OTH"
    if "ESTABLISHED" not in states:
        if r.end_reason in ("refused", "reset"):
            return "REJ" if orig else "RSTOS0"
        return "S0" if orig else "OTH"
    sent, recv = r.resets_sent, r.resets_received
    if sent or recv:
        we = "RSTO" if orig else "RSTR"
        they = "RSTR" if orig else "RSTO"
        return we if sent else they
    local_fin = r.closer == "local" or "LAST_ACK" in states
    remote_fin = r.closer == "remote" or r.time_wait or "CLOSING" in states
    if local_fin and remote_fin:
        return "SF"
    if local_fin:
        return "S2" if orig else "S3"
    if remote_fin:
        return "S3" if orig else "S2"
    return "S1"


def history(r: ConnRecord) -> str:
    """Zeek-style history letters from the state story: uppercase originator, lowercase responder."""
    orig = r.role == "client"
    me_up = orig
    out: list[str] = []

    def add(ch: str, mine: bool) -> None:
        c = ch.upper() if mine == me_up else ch.lower()
        if c not in out:
            out.append(c)

    for t in r.transitions:
        if t.to_state == "SYN_SENT":
            add("s", True)
        elif t.to_state == "SYN_RCVD":
            add("s", False)
            add("h", True)
        elif t.to_state == "ESTABLISHED":
            if orig:
                add("h", False)
            add("a", orig)
        elif t.to_state in ("FIN_WAIT_1", "LAST_ACK"):
            add("f", True)
        elif t.to_state in ("CLOSE_WAIT", "CLOSING", "TIME_WAIT"):
            add("f", False)
    for rs in r.resets:
        add("r", rs.dir == "sent")
    return "".join(out) or "-"


class ZeekRows:
    """conn.log rows as sockets end (and interim rows for long ones)."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        from tcpwise.trace.zeek import ZeekWriter, uid_of

        self.out = out
        self.head = ZeekWriter(out, name_of=str)
        self.uid_of = uid_of
        self.salt = int(time.time() * 1e6)
        self.n = 0
        self.uids: dict[tuple[str, int, str, int, float], str] = {}

    def _uid(self, r: ConnRecord) -> str:
        key = (r.laddr, r.lport, r.raddr, r.rport, r.start)
        u = self.uids.get(key)
        if u is None:
            self.n += 1
            u = self.uid_of(self.n, self.salt)
            if len(self.uids) > 100_000:
                self.uids.clear()
            self.uids[key] = u
        return u

    def row(self, r: ConnRecord) -> list[str]:
        orig = r.role != "server"
        o = (r.laddr, r.lport) if orig else (r.raddr, r.rport)
        p = (r.raddr, r.rport) if orig else (r.laddr, r.lport)
        dur = r.duration
        return [
            f"{r.start:.6f}",
            self._uid(r),
            o[0] or "-",
            str(o[1]),
            p[0] or "-",
            str(p[1]),
            "tcp",
            "-",
            f"{dur:.6f}" if dur > 0 else "-",
            "-",
            "-",
            zeek_state(r),
            "T" if orig else "F",
            "T" if not orig else "F",
            "0",
            history(r),
            "-",
            "-",
            "-",
            "-",
        ]

    def write(self, r: ConnRecord) -> None:
        if r.role == "listener":
            return  # conn.log is about connections
        self.head.start()  # the header goes out with the first row (or at close, for an empty log)
        self.out.write("\t".join(self.row(r)) + "\n")
        self.out.flush()

    def lost(self, n: int) -> None:
        sys.stderr.write(f"tcpwise: watch: {n} events lost (ring buffer full)\n")

    def close(self, s: WatchSummary) -> None:
        self.head.close()


def conn_run(r: ConnRecord, peer: ConnRecord | None = None) -> Run:
    """One connection as a Run: the local side's state changes (and its local peer's, when given), resets and
    retransmissions as notes, times relative to the first event."""
    a = Host("A", _ep(r.laddr, r.lport), r.role)
    b_role = peer.role if peer is not None else ("server" if r.role == "client" else "client")
    b = Host("B", _ep(r.raddr, r.rport), b_role)
    t0 = min([r.start] + ([peer.start] if peer is not None else []))
    events: list[Event] = []
    for host, rec in (("A", r), ("B", peer)):
        if rec is None:
            continue
        for t in rec.transitions:
            events.append(
                Event(
                    t.t - t0,
                    host,
                    EventKind.STATE,
                    from_state=TcpState(t.from_state),
                    to_state=TcpState(t.to_state),
                )
            )
        for rs in rec.resets:
            text = f"RST {rs.dir} in {rs.state}" + (f" ({rs.reason})" if rs.reason else "")
            text_zh = f"{rs.state} 状态下{'发出' if rs.dir == 'sent' else '收到'} RST" + (
                f"（{rs.reason}）" if rs.reason else ""
            )
            events.append(Event(rs.t - t0, host, EventKind.NOTE, text=text, text_zh=text_zh))
        if rec.time_wait:
            events.append(
                Event(
                    t=rec.transitions[-1].t - t0,
                    host=host,
                    kind=EventKind.NOTE,
                    text="TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN); its end is not traced",
                    text_zh="TIME_WAIT 持续 60 秒 (TCP_TIMEWAIT_LEN)；其结束不在跟踪范围内",
                )
            )
        elif rec.end_reason == "handoff":
            events.append(
                Event(
                    t=(rec.end or rec.start) - t0,
                    host=host,
                    kind=EventKind.NOTE,
                    text="handed to a timewait socket (FIN_WAIT_2 or TIME_WAIT): not traced further",
                    text_zh="交给了 timewait 套接字（FIN_WAIT_2 或 TIME_WAIT）：不再跟踪",
                )
            )
        if rec.retransmits or rec.synack_retransmits:
            events.append(
                Event(
                    t=(rec.end or rec.start) - t0,
                    host=host,
                    kind=EventKind.NOTE,
                    text=f"{rec.retransmits + rec.synack_retransmits} retransmissions",
                    text_zh=f"{rec.retransmits + rec.synack_retransmits} 次重传",
                )
            )
    events.sort(key=lambda e: e.t)
    who = f"{r.pid} {r.comm}" if r.pid is not None else "unknown process"
    summary: dict[str, Any] = {
        "text": f"{_ep(r.laddr, r.lport)} ({who}) > {_ep(r.raddr, r.rport)}: {story(r)}",
        "values": {"duration_s": round(r.duration, 6), "closer": r.closer, "end_reason": r.end_reason},
    }
    return Run(
        scenario="watch",
        title=f"{_ep(r.laddr, r.lport)} > {_ep(r.raddr, r.rport)}",
        world="watch",
        hosts=[a, b],
        events=events,
        summary=summary,
    )

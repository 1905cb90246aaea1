"""One traced connection as a :class:`tcpwise.events.Run`, drawn by the same renderers as the simulator.

Theory of operation: a first pass runs the normal tracker over the whole capture and keeps connection ``n``
(its 4-tuple, packet-number range and inferred state changes). A second pass re-reads only that packet range,
keeps the packets of that 4-tuple and decodes each one fully through the one codec
(:func:`tcpwise.wire.parse_packet`, so options such as MSS, window scale, SACK and timestamps appear). A capture
sees each packet at one point, so every packet becomes a ``send`` at its sender and a ``recv`` at its receiver
with the same timestamp; the tracker's inferred transitions become ``state`` events. Host A is the originator
(client), B the responder (server), as in the sim.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from tcpwise.errors import UsageError
from tcpwise.events import Event, Host, Run, SegmentInfo
from tcpwise.trace import linktypes as lt
from tcpwise.trace.decode import AddrTable
from tcpwise.trace.output import TraceResult, story, trace_file
from tcpwise.trace.reader import Capture, CaptureError, open_capture
from tcpwise.trace.tracker import Conn, ZeekTimers
from tcpwise.trace.zeek import conn_state
from tcpwise.vocab import EventKind, TcpState
from tcpwise.wire import IPPROTO_TCP, IpHeader, TcpSegment, WireError, parse_ip, parse_packet, parse_tcp

__all__ = ["connection_run", "draw_connection"]


def _l3_offset(linktype: int, data: bytes) -> int | None:
    """Where the IP header starts in one frame (the same rules as the batch decoder, one packet at a time)."""
    if linktype == lt.EN10MB:
        pos = 14
        if len(data) < 14:
            return None
        et = struct.unpack_from("!H", data, 12)[0]
        while et in lt.VLAN_TPIDS and len(data) >= pos + 4:
            et = struct.unpack_from("!H", data, pos + 2)[0]
            pos += 4
        return pos
    if linktype == lt.LINUX_SLL:
        return 16
    if linktype == lt.LINUX_SLL2:
        return 20
    if linktype in (lt.NULL, lt.LOOP):
        return 4
    return 0


def _packets_between(cap: Capture, first: int, last: int) -> Iterator[tuple[float, int, bytes, int]]:
    """``(ts, linktype, frame bytes, packet number)`` for packet numbers first..last, skipping whole batches.
    Damage after the last complete record ends the walk quietly: the first pass has already reported it."""
    try:
        yield from _between(cap, first, last)
    except CaptureError:
        return


def _between(cap: Capture, first: int, last: int) -> Iterator[tuple[float, int, bytes, int]]:
    for rb in cap.batches(4096):
        n = len(rb)
        if rb.first_index + n - 1 < first:
            continue
        if rb.first_index > last:
            return
        lo = max(0, first - rb.first_index)
        hi = min(n, last - rb.first_index + 1)
        for i in range(lo, hi):
            off, cl = int(rb.data_off[i]), int(rb.caplen[i])
            yield float(rb.ts[i]), int(rb.linktype[i]), rb.buf[off : off + cl].tobytes(), rb.first_index + i


def connection_run(
    path: str, n: int, checksums: str = "auto", inactivity: float = 300.0
) -> tuple[Run, TraceResult]:
    """Connection number ``n`` (1-based, the ``#`` column of ``tcpwise trace``) of ``path`` as a Run, with the
    trace's result (its warnings and any damage found in the file, which the caller reports)."""
    if n < 1:
        raise UsageError(f"--conn must be a connection number >= 1, got {n}")
    addrs = AddrTable()
    cap = open_capture(path)
    if cap.stream is not None:
        cap.close()
        raise UsageError(
            f"--conn reads {path} twice, and a pipe can be read once: save the capture first (tcpdump -w FILE)"
        )
    timers = ZeekTimers(inactivity=inactivity)
    res = trace_file(path, lambda c: None, addrs, want=n, timers=timers, checksums=checksums, cap=cap)
    c: Conn | None = res.wanted
    if c is None:
        damage = f"; the file is damaged ({res.error})" if res.error is not None else ""
        raise UsageError(
            f"no connection {n} in {path}: it has {res.connections} (see the # column of `tcpwise trace`){damage}"
        )

    orig_h, resp_h = addrs.name(c.orig_ep >> 16), addrs.name(c.resp_ep >> 16)
    orig_p, resp_p = c.orig_ep & 0xFFFF, c.resp_ep & 0xFFFF
    events: list[Event] = []
    t0 = c.ts
    trans = list(c.transitions)
    tpkt = list(c.trans_pkt)
    ti = 0
    names = ("A", "B")
    no_opts = 0  # packets drawn without their (malformed) TCP options
    with open_capture(path) as cap:
        for ts, linktype, data, idx in _packets_between(cap, c.first_index, c.last_index):
            off = _l3_offset(linktype, data)
            if off is None:
                continue
            got = _parse_lenient(data[off:])
            if got is None:
                continue
            hdr, seg, opts_ok = got
            if not opts_ok:
                no_opts += 1
            ports = (seg.sport, seg.dport)
            if ports == (orig_p, resp_p) and hdr.src == orig_h and hdr.dst == resp_h:
                d = 0
            elif ports == (resp_p, orig_p) and hdr.src == resp_h and hdr.dst == orig_h:
                d = 1
            else:
                continue
            t = ts - t0
            while ti < len(trans) and tpkt[ti] < idx:
                _state_event(events, trans[ti], t0, names)
                ti += 1
            # Windows as users read them (Wireshark's "calculated window size"): scaled once both SYNs negotiated
            # it (RFC 7323 §2.2); a SYN's own window is never scaled.
            shift = c.sides[d].wshift or 0
            win = seg.window if seg.flags & 0x02 else seg.window << shift
            info = SegmentInfo(
                src=hdr.src, dst=hdr.dst, sport=seg.sport, dport=seg.dport, seq=seg.seq, ack=seg.ack,
                flags=seg.flag_str, len=len(seg.payload), win=win, opts=seg.options_dict() or None,
            )  # fmt: skip
            events.append(Event(t=t, host=names[d], kind=EventKind.SEND, segment=info))
            events.append(Event(t=t, host=names[1 - d], kind=EventKind.RECV, segment=info))
            while ti < len(trans) and tpkt[ti] <= idx:  # the state changes this packet caused
                _state_event(events, trans[ti], t0, names)
                ti += 1
    while ti < len(trans):
        _state_event(events, trans[ti], t0, names)
        ti += 1
    if no_opts:
        res.warnings.append(
            f"{no_opts} packet(s) of connection #{n} drawn without their TCP options (malformed)"
        )
    st = conn_state(c)
    text = story(c)
    run = Run(
        scenario="trace",
        title=f"{path} #{n}: {orig_h}:{orig_p} > {resp_h}:{resp_p} ({st}, {c.history})",
        world="trace",
        params={"file": path, "conn": n},
        hosts=[Host("A", orig_h, "client"), Host("B", resp_h, "server")],
        events=events,
        summary={
            "text": f"Connection #{n}, Zeek conn_state {st}, history {c.history}: {text}.",
            "values": {
                "conn_state": st,
                "history": c.history,
                "orig_bytes": c.o.bytes,
                "resp_bytes": c.r.bytes,
                "orig_window_scale": c.o.wshift,
                "resp_window_scale": c.r.wshift,
            },
        },
    )
    return run, res


def _parse_lenient(l3: bytes) -> tuple[IpHeader, TcpSegment, bool] | None:
    """(IP header, TCP segment, options intact) of a packet the tracker counted, or None if it is not TCP/IP.

    The tracker reads the fixed header only, so a packet it counted must be drawn even when the codec refuses
    it whole: a snaplen-cut packet is padded to its IP length (the payload is unknown, the header fields are
    not); malformed TCP options (a length of 0 or 1, past the header) are dropped and the caller says so."""
    try:
        total = (
            struct.unpack_from("!H", l3, 2)[0] if l3[0] >> 4 == 4 else 40 + struct.unpack_from("!H", l3, 4)[0]
        )
    except (IndexError, struct.error):
        return None
    l3 = l3 + b"\0" * max(0, total - len(l3))
    try:
        hdr, seg = parse_packet(l3)
        return hdr, seg, True
    except WireError:
        pass
    try:
        hdr, payload = parse_ip(l3)
        tcp = bytearray(payload)
        if hdr.proto != IPPROTO_TCP or hdr.is_fragment or len(tcp) < 20:
            return None
        hl = (tcp[12] >> 4) * 4  # the data offset: the options end there
        tcp[20:hl] = bytes(max(0, hl - 20))  # all EOL: no options
        return hdr, parse_tcp(tcp), False
    except WireError:
        return None


def _state_event(
    events: list[Event], tr: tuple[float, int, str, str], t0: float, names: tuple[str, str]
) -> None:
    t, d, a, b = tr
    events.append(
        Event(t=t - t0, host=names[d], kind=EventKind.STATE, from_state=TcpState(a), to_state=TcpState(b))
    )


def draw_connection(
    path: str,
    n: int,
    fmt: str,
    absolute: bool = False,
    lang: str = "en",
    color: bool = False,
    checksums: str = "auto",
    inactivity: float = 300.0,
    width: int | None = 80,
) -> tuple[str, TraceResult]:
    """Render connection ``n`` of ``path`` with :func:`tcpwise.render.render` (text, svg, html, json, mermaid);
    returns the drawing and the trace result (the caller reports its warnings and any damage, exit 2). ``width``
    is the text diagram's column budget (None: no limit, as ``--wide`` gives when piped)."""
    run, res = connection_run(path, n, checksums=checksums, inactivity=inactivity)
    try:
        from tcpwise.render import render
    except ImportError:
        raise UsageError("drawing a connection needs tcpwise.render, which is not installed") from None
    out = render(run, fmt, absolute=absolute, lang=lang, color=color, width=width)
    if isinstance(out, bytes):
        raise UsageError(f"--format {fmt} is binary; use text, svg, html, json or mermaid with --conn")
    return out, res

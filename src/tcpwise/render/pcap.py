"""libpcap export of a run: the real bytes of every segment, openable in Wireshark/tshark.

Theory of operation
-------------------
Each ``send`` event becomes one record at its send time (a capture taken at the sender's interface): the event's
segment fields become a :class:`tcpwise.wire.TcpSegment`, its ``opts`` dict the TCP options, its ``payload`` hex
the payload bytes (zero bytes of ``len`` when the scenario did not keep them), and
:func:`tcpwise.wire.build_packet` adds the IPv4 or IPv6 header with valid IP and TCP checksums. Records are raw IP
(``LINKTYPE_RAW``), timestamps are run time in seconds counted from the Unix epoch (so Wireshark shows
1970-01-01 00:00:00 + t, and the file is byte-for-byte reproducible). A run with no ``send`` events (a receiver-side
view) exports its ``recv`` events instead.

Options are laid out as Linux lays out a SYN (MSS, SACK-permitted + timestamps, NOP + window scale; RFC 7323
Appendix A suggests the NOP alignment), so the export looks like a kernel capture. The header window field is
16 bits (RFC 9293 §3.1): a scaled window larger than that is written as 65535 — the schema does not say which
shift applies, so we do not guess one.
"""

from __future__ import annotations

import io
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.events import Run, SegmentInfo
from tcpwise.vocab import str_to_flags
from tcpwise.wire import (
    MssOption,
    NopOption,
    PcapWriter,
    SackOption,
    SackPermittedOption,
    TcpOption,
    TcpSegment,
    TimestampsOption,
    WindowScaleOption,
    WireError,
    build_packet,
)

__all__ = ["render_pcap", "to_tcp_segment", "options_from_dict"]


def options_from_dict(opts: dict[str, Any] | None) -> tuple[TcpOption, ...]:
    """The schema's ``opts`` dict (mss, ws, sackok, ts, sack) -> option values in Linux's on-the-wire order."""
    if not opts:
        return ()
    out: list[TcpOption] = []
    if "mss" in opts:
        out.append(MssOption(int(opts["mss"])))
    ts = opts.get("ts")
    if opts.get("sackok") and ts:
        out += [SackPermittedOption(), TimestampsOption(int(ts[0]), int(ts[1]))]
    elif ts:
        out += [NopOption(), NopOption(), TimestampsOption(int(ts[0]), int(ts[1]))]
    elif opts.get("sackok"):
        out += [NopOption(), NopOption(), SackPermittedOption()]
    if "ws" in opts:
        out += [NopOption(), WindowScaleOption(int(opts["ws"]))]
    if opts.get("sack"):
        out += [NopOption(), NopOption(), SackOption(tuple((int(a), int(b)) for a, b in opts["sack"]))]
    return tuple(out)


def _payload(seg: SegmentInfo) -> bytes:
    if seg.payload:
        try:
            data = bytes.fromhex(seg.payload)
        except ValueError:
            data = b""
        if len(data) == seg.len:
            return data
        # keep the length the segment claims: sequence numbers downstream depend on it
        return (data + bytes(seg.len))[: seg.len]
    return bytes(seg.len)


def to_tcp_segment(seg: SegmentInfo) -> TcpSegment:
    """A schema segment as a wire segment (checksum left to the emitter)."""
    return TcpSegment(
        sport=seg.sport,
        dport=seg.dport,
        seq=seg.seq,  # 32-bit already: SegmentInfo refuses anything else
        ack=seg.ack if "A" in seg.flags else 0,
        flags=str_to_flags(seg.flags),
        window=min(max(seg.win, 0), 0xFFFF),
        options=options_from_dict(seg.opts),
        payload=_payload(seg),
    )


def render_pcap(run: Run) -> bytes:
    """The pcap file as bytes. Raises :class:`UsageError` when a segment cannot be encoded (bad address etc.)."""
    kind = "send" if any(e.kind == "send" for e in run.events) else "recv"
    buf = io.BytesIO()
    writer = PcapWriter(buf)
    ident: dict[str, int] = {}
    for ev in run.events:
        if ev.kind != kind or ev.segment is None:
            continue
        seg = ev.segment
        # per-sender IP ID counter, as a host would number its datagrams (RFC 6864 allows any scheme with DF)
        ident[seg.src] = (ident.get(seg.src, 0) + 1) & 0xFFFF
        try:
            packet = build_packet(seg.src, seg.dst, to_tcp_segment(seg), ident=ident[seg.src])
        except (WireError, ValueError) as exc:
            raise UsageError(f"cannot encode the segment at t={ev.t} as a packet: {exc}") from None
        writer.write_packet(max(ev.t, 0.0), packet)
    return buf.getvalue()

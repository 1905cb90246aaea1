"""pcap/pcapng reading: byte orders, timestamp resolutions, link types, interfaces, snaplen, bad files."""

from __future__ import annotations

import struct

import pytest
from tracecaps import A6, B6, Conv, eth, eth_vlan, loop_be, null_le, pcapng, sll, sll2

from tcpwise.errors import UsageError
from tcpwise.trace.output import trace_file
from tcpwise.trace.reader import CaptureError, CaptureTruncated, open_capture
from tcpwise.trace.tracker import Conn
from tcpwise.trace.zeek import conn_state


def conv(v6: bool = False) -> Conv:
    cv = Conv(a=A6, b=B6) if v6 else Conv()
    return cv.handshake().c("PA", b"x" * 300).s("A").s("PA", b"y" * 700).c("FA").s("FA").c("A")


def summary(path: str) -> list[tuple[str, str, int, int]]:
    out: list[Conn] = []
    res = trace_file(path, out.append)
    assert res.error is None and not res.warnings
    return [(conn_state(c), c.history, c.o.bytes, c.r.bytes) for c in out]


EXPECT = [("SF", "ShADadFf", 300, 700)]


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize(
    "linktype,wrap",
    [
        (101, None),
        (1, eth),
        (1, eth_vlan),
        (1, lambda p: eth_vlan(p, 2)),
        (113, sll),
        (276, sll2),
        (0, null_le),
        (108, loop_be),
        (12, None),
    ],  # fmt: skip
)
def test_link_types(tmp_path, linktype: int, wrap: object, v6: bool) -> None:
    p = conv(v6).write(str(tmp_path / "l.pcap"), linktype=linktype, wrap=wrap)
    assert summary(p) == EXPECT


def test_nanosecond_and_big_endian_pcap(tmp_path) -> None:
    cv = conv()
    p = cv.write(str(tmp_path / "ns.pcap"), nanosecond=True)
    ts = [t for t, *_ in open_capture(p).packets()]
    assert ts == pytest.approx([t for t, _ in cv.pkts], abs=1e-6)
    # Rewrite the same file big-endian by hand: global header and record headers swapped.
    raw = open(p, "rb").read()
    magic, maj, mnr, zone, sig, snap, lt = struct.unpack_from("<IHHiIII", raw, 0)
    out = bytearray(struct.pack(">IHHiIII", magic, maj, mnr, zone, sig, snap, lt))
    off = 24
    while off < len(raw):
        s, f, cl, ol = struct.unpack_from("<IIII", raw, off)
        out += struct.pack(">IIII", s, f, cl, ol) + raw[off + 16 : off + 16 + cl]
        off += 16 + cl
    q = tmp_path / "be.pcap"
    q.write_bytes(bytes(out))
    assert summary(str(q)) == EXPECT
    assert [t for t, *_ in open_capture(str(q)).packets()] == pytest.approx(ts)


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_two_interfaces_with_resolutions(tmp_path, big_endian: bool) -> None:
    c4, c6 = conv(), conv(v6=True)
    pkts = [(0, t, eth(p)) for t, p in c4.pkts] + [(1, t + 0.0005, p) for t, p in c6.pkts]
    pkts.sort(key=lambda x: x[1])
    path = str(tmp_path / "m.pcapng")
    pcapng(path, [(1, 9), (101, 0x80 | 20)], pkts, big_endian=big_endian)  # ns and 2^-20 s ticks
    assert summary(path) == EXPECT * 2
    ts = [t for t, *_ in open_capture(path).packets()]
    assert ts == pytest.approx([t for _, t, _ in pkts], abs=2e-6)


def test_pcapng_simple_packet_blocks(tmp_path) -> None:
    path = str(tmp_path / "spb.pcapng")
    pcapng(path, [(101, None)], [(0, t, p) for t, p in conv().pkts], simple=True)
    assert summary(path) == EXPECT


def test_snaplen_truncated_packets_keep_byte_counts(tmp_path) -> None:
    from tcpwise.wire import PcapWriter

    path = tmp_path / "snap.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=1, snaplen=64)
        for t, p in conv().pkts:
            w.write_packet(t, eth(p))
    # Byte counts come from sequence numbers; but Zeek gives a payload cut by the snaplen no content, so each
    # ACK of it is a content gap: G for the client's 300 bytes, g for the server's 700 (missed_bytes 1000).
    out: list[Conn] = []
    res = trace_file(str(path), out.append)
    assert res.error is None and not res.warnings
    (c,) = out
    assert (conn_state(c), c.history, c.o.bytes, c.r.bytes) == ("SF", "ShADaGdFgf", 300, 700)
    assert (c.o.missed, c.r.missed) == (300, 700)


def test_real_loopback_capture() -> None:
    from pathlib import Path

    out: list[Conn] = []
    trace_file(str(Path(__file__).parent / "data" / "lo-small.pcap"), out.append)
    assert [conn_state(c) for c in out] == ["SF", "SF", "RSTR", "SF", "SF", "SF"]
    assert all(c.o.bytes == 500 and c.r.bytes == 3000 for c in out)


# -- bad files ---------------------------------------------------------------------------------------------------
def test_not_a_capture(tmp_path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("hello world, not a pcap")
    with pytest.raises(CaptureError, match="not a pcap or pcapng"):
        trace_file(str(p), lambda c: None)


def test_missing_and_empty(tmp_path) -> None:
    with pytest.raises(UsageError, match="cannot open"):
        trace_file(str(tmp_path / "nope.pcap"), lambda c: None)
    (tmp_path / "e.pcap").write_bytes(b"")
    with pytest.raises(CaptureError, match="empty"):
        trace_file(str(tmp_path / "e.pcap"), lambda c: None)


def test_unknown_link_type(tmp_path) -> None:
    p = conv().write(str(tmp_path / "u.pcap"), linktype=147)
    with pytest.raises(UsageError, match="unsupported link type 147"):
        trace_file(p, lambda c: None)


def test_truncated_file_delivers_complete_records_then_errors(tmp_path) -> None:
    p = conv().write(str(tmp_path / "t.pcap"))
    raw = open(p, "rb").read()
    (tmp_path / "t2.pcap").write_bytes(raw[:-30])
    out: list[Conn] = []
    res = trace_file(str(tmp_path / "t2.pcap"), out.append)
    assert isinstance(res.error, CaptureTruncated)
    assert "truncated" in str(res.error) and len(out) == 1
    (tmp_path / "t3.pcap").write_bytes(raw[:10])
    with pytest.raises(CaptureTruncated):
        trace_file(str(tmp_path / "t3.pcap"), out.append)


def test_corrupt_record_length(tmp_path) -> None:
    p = conv().write(str(tmp_path / "c.pcap"))
    raw = bytearray(open(p, "rb").read())
    struct.pack_into("<I", raw, 24 + 8, 0x7FFFFFFF)
    (tmp_path / "c2.pcap").write_bytes(bytes(raw))
    with pytest.raises(CaptureError, match="corrupt pcap record 1"):
        trace_file(str(tmp_path / "c2.pcap"), lambda c: None)


def test_bad_packet_inside_good_file_is_a_counted_warning(tmp_path) -> None:
    cv = conv()
    garbage = bytearray(cv.pkts[3][1])
    garbage[0] = 0x44  # IPv4 with IHL 4 words, below the minimum of 5
    cv.pkts.insert(4, (cv.pkts[3][0], bytes(garbage)))
    cv.pkts.insert(5, (cv.pkts[3][0], b"\x45\x00"))  # 2-byte "packet"
    p = cv.write(str(tmp_path / "w.pcap"))
    out: list[Conn] = []
    res = trace_file(p, out.append)
    assert res.error is None
    assert sum(res.stats.bad.values()) == 2 and len(res.warnings) >= 1
    assert [conn_state(c) for c in out] == ["SF"]


@pytest.mark.parametrize(
    "args", [["-F", "pcapng"], ["-F", "nsecpcap"], ["-s", "60"], ["-F", "pcapng", "-s", "54"]]
)
def test_same_story_from_editcap_conversions(tmp_path, args: list[str]) -> None:
    """Files written by Wireshark's own tools (pcapng, nanosecond pcap, snaplen cuts) give identical results."""
    import shutil
    import subprocess
    from pathlib import Path

    if not shutil.which("editcap"):
        pytest.skip("editcap (Debian tshark/wireshark-common) not installed")
    src = str(Path(__file__).parent / "data" / "lo-small.pcap")
    dst = str(tmp_path / "conv.cap")
    subprocess.run(["editcap", *args, src, dst], check=True, capture_output=True, timeout=30)

    cut = "-s" in args  # a snaplen cut turns acknowledged payloads into content gaps (g/G), as in Zeek

    def rows(p: str) -> list[tuple[object, ...]]:
        out: list[Conn] = []
        res = trace_file(p, out.append)
        assert res.error is None
        return [
            (conn_state(c), c.history.replace("g", "").replace("G", "") if cut else c.history, c.o.bytes,
             c.r.bytes, c.o.pkts, c.r.pkts, round(c.last - c.ts, 6))
            for c in out
        ]  # fmt: skip

    assert rows(dst) == rows(src)


def test_ipv6_extension_headers_go_through_the_codec(tmp_path) -> None:
    """A Destination Options header before TCP: decoded by tcpwise.wire on the slow path, same connection."""

    def with_dstopts(p: bytes) -> bytes:
        plen = struct.unpack_from("!H", p, 4)[0]
        hdr = bytearray(p[:40])
        struct.pack_into("!H", hdr, 4, plen + 8)
        hdr[6] = 60  # next header: Destination Options (RFC 8200 §4.6)
        ext = bytes([6, 0, 1, 4, 0, 0, 0, 0])  # next = TCP, length 0 (8 octets), PadN of 4
        return bytes(hdr) + ext + p[40:]

    cv = conv(v6=True)
    cv.pkts = [(t, with_dstopts(p)) if i % 2 else (t, p) for i, (t, p) in enumerate(cv.pkts)]
    path = cv.write(str(tmp_path / "ext.pcap"))
    assert summary(path) == EXPECT

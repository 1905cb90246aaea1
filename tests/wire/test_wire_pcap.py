"""pcap writer: exact header/record bytes, truncation, timestamps, and tshark reading our files cleanly."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tcpwise.vocab import ACK, FIN, PSH, SYN
from tcpwise.wire import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    MssOption,
    NopOption,
    PcapWriter,
    SackOption,
    SackPermittedOption,
    TcpSegment,
    TimestampsOption,
    WindowScaleOption,
    build_packet,
    ethernet_frame,
    write_pcap,
)


def test_global_and_record_header_bytes() -> None:
    f = io.BytesIO()
    w = PcapWriter(f)
    w.write_packet(1.25, b"\x45abc")
    data = f.getvalue()
    assert data[:24] == struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_RAW)
    assert data[24:40] == struct.pack("<IIII", 1, 250000, 4, 4)
    assert data[40:] == b"\x45abc" and w.count == 1


def test_nanosecond_magic_and_rounding() -> None:
    f = io.BytesIO()
    w = PcapWriter(f, nanosecond=True, linktype=LINKTYPE_ETHERNET)
    w.write_packet(0.9999999999, b"x")  # rounds up into the next second, never "0 s + 1e9 ns"
    w.write_packet_ns(3_000_000_007, b"y")
    data = f.getvalue()
    assert struct.unpack_from("<I", data, 0)[0] == 0xA1B23C4D
    assert struct.unpack_from("<I", data, 20)[0] == LINKTYPE_ETHERNET
    assert struct.unpack_from("<II", data, 24) == (1, 0)
    assert struct.unpack_from("<II", data, 24 + 17) == (3, 7)


def test_microsecond_rounding_and_snaplen() -> None:
    f = io.BytesIO()
    w = PcapWriter(f, snaplen=8)
    w.write_packet(2.0000004, b"0123456789")
    w.write_packet_ns(1_999_999_999, b"ab")
    data = f.getvalue()
    assert struct.unpack_from("<I", data, 16)[0] == 8
    assert struct.unpack_from("<IIII", data, 24) == (2, 0, 8, 10)  # cut to snaplen, original length kept
    assert data[40:48] == b"01234567"
    assert struct.unpack_from("<II", data, 48) == (2, 0)
    with pytest.raises(ValueError):
        w.write_packet(-1.0, b"")


def conversation(src: str, dst: str) -> list[TcpSegment]:
    """A complete, well-formed exchange: handshake with every SYN option, data, SACK-carrying ACK, FINs."""
    syn_opts = (
        MssOption(1460),
        SackPermittedOption(),
        TimestampsOption(100, 0),
        NopOption(),
        WindowScaleOption(7),
    )
    c, s = 1000, 5000
    return [
        TcpSegment(40000, 80, c, 0, SYN, 64240, syn_opts),
        TcpSegment(
            80, 40000, s, c + 1, SYN | ACK, 65160, syn_opts[:2] + (TimestampsOption(200, 100),) + syn_opts[3:]
        ),
        TcpSegment(40000, 80, c + 1, s + 1, ACK, 502, (NopOption(), NopOption(), TimestampsOption(101, 200))),
        TcpSegment(
            40000,
            80,
            c + 1,
            s + 1,
            PSH | ACK,
            502,
            (NopOption(), NopOption(), TimestampsOption(102, 200)),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ),  # fmt: skip
        TcpSegment(
            80, 40000, s + 1, c + 28, ACK, 509, (NopOption(), NopOption(), TimestampsOption(201, 102))
        ),
        TcpSegment(
            80,
            40000,
            s + 1,
            c + 28,
            PSH | ACK,
            509,
            (NopOption(), NopOption(), TimestampsOption(202, 102)),
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
        ),  # fmt: skip
        TcpSegment(
            40000,
            80,
            c + 28,
            s + 40,
            ACK,
            502,
            (
                NopOption(),
                NopOption(),
                TimestampsOption(103, 202),
                NopOption(),
                NopOption(),
                SackOption(((s + 50, s + 60),)),
            ),
        ),  # fmt: skip
        TcpSegment(
            40000, 80, c + 28, s + 40, FIN | ACK, 502, (NopOption(), NopOption(), TimestampsOption(104, 202))
        ),
        TcpSegment(
            80, 40000, s + 40, c + 29, FIN | ACK, 509, (NopOption(), NopOption(), TimestampsOption(203, 104))
        ),
        TcpSegment(
            40000, 80, c + 29, s + 41, ACK, 502, (NopOption(), NopOption(), TimestampsOption(105, 203))
        ),
    ]


def packets() -> list[tuple[float, bytes]]:
    out: list[tuple[float, bytes]] = []
    t = 0.0
    for a, b in (("198.18.0.1", "198.18.1.1"), ("fd00::1", "fd00::2")):
        for seg in conversation(a, b):
            t += 0.0015
            src, dst = (a, b) if seg.sport == 40000 else (b, a)
            out.append((t, build_packet(src, dst, seg)))
    return out


def test_write_pcap_helper(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    assert write_pcap(str(path), packets()) == 20
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"  # little-endian a1b2c3d4


@pytest.mark.parametrize("ethernet", [False, True], ids=["raw", "ethernet"])
def test_tshark_reads_cleanly(tmp_path: Path, ethernet: bool) -> None:
    """tshark with checksum validation on finds every checksum good and no malformed/expert warnings."""
    if shutil.which("tshark") is None:
        # Skipped on a developer box without it; under CI (make test installs tshark) a missing tool is a failure.
        if os.environ.get("CI"):
            pytest.fail("tshark is missing under CI (make sysdeps installs it)")
        pytest.skip("tshark not installed")
    path = tmp_path / "conv.pcap"
    with path.open("wb") as f:
        w = PcapWriter(f, linktype=LINKTYPE_ETHERNET if ethernet else LINKTYPE_RAW, nanosecond=ethernet)
        for ts, pkt in packets():
            w.write_packet(ts, ethernet_frame(pkt) if ethernet else pkt)
    cmd = ["tshark", "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
           "-o", "tcp.analyze_sequence_numbers:TRUE",
           "-T", "fields", "-E", "separator=|", "-e", "frame.number", "-e", "tcp.checksum.status",
           "-e", "_ws.expert.severity", "-e", "_ws.expert.message", "-e", "_ws.malformed"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 20
    for line in lines:
        num, status, severity, message, malformed = line.split("|")
        assert status == "1", f"frame {num}: TCP checksum status {status!r} (1 = good): {message}"
        assert not malformed, f"frame {num}: malformed: {message}"
        # Chat-level notes (SYN/FIN/"connection established") are fine; warnings and errors are not.
        # _ws.expert.severity is a bit field: 0x00200000 chat, 0x00400000 note, 0x00600000 warning, 0x00800000 error
        for sev in filter(None, severity.split(",")):
            assert int(sev, 0) < 0x00600000, f"frame {num}: expert {sev}: {message}"

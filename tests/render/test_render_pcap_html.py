"""pcap export (validated by tshark and by our own parser) and the HTML page."""

from __future__ import annotations

import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from render_fixtures import close_run, series_run

from tcpwise.events import Event, Host, Run, SegmentInfo
from tcpwise.render import render
from tcpwise.wire import parse_packet

TSHARK = shutil.which("tshark")


def _records(data: bytes) -> list[tuple[float, bytes]]:
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and linktype == 101  # µs timestamps, raw IP
    out, off = [], 24
    while off < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[off : off + 16])
        assert incl == orig
        out.append((sec + usec / 1e6, data[off + 16 : off + 16 + incl]))
        off += 16 + incl
    return out


def test_pcap_has_one_record_per_send_with_real_bytes() -> None:
    run = close_run()
    data = render(run, "pcap")
    assert isinstance(data, bytes)
    recs = _records(data)
    sends = [e for e in run.events if e.kind == "send"]
    assert len(recs) == len(sends) == 11
    for (ts, pkt), ev in zip(recs, sends, strict=True):
        assert ts == pytest.approx(ev.t, abs=1e-6)
        ip, tcp = parse_packet(pkt, verify=True)  # raises on a bad checksum
        s = ev.segment
        assert s is not None
        assert (tcp.sport, tcp.dport, tcp.seq, tcp.window, tcp.flag_str, len(tcp.payload)) == (
            s.sport,
            s.dport,
            s.seq,
            s.win,
            s.flags,
            s.len,
        )
    syn = parse_packet(recs[0][1])[1]
    assert (syn.mss, syn.wscale, syn.sack_permitted, syn.timestamps) == (1460, 7, True, (1, 0))
    data_seg = parse_packet(recs[3][1])[1]
    assert data_seg.payload == bytes.fromhex("ab" * 100)


def test_pcap_ipv6_and_zero_filled_payload() -> None:
    s = SegmentInfo("fd00:0::1", "fd00:1::1", 40000, 80, 7, 9, "PA", 5, 1000)
    run = Run(
        "v6",
        hosts=[Host("A", "fd00:0::1"), Host("B", "fd00:1::1")],
        events=[Event(1.5, "A", "send", segment=s)],
    )
    ((ts, pkt),) = _records(render(run, "pcap"))  # type: ignore[arg-type]
    ip, tcp = parse_packet(pkt, verify=True)
    assert ts == 1.5 and pkt[0] >> 4 == 6 and tcp.payload == bytes(5)


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (make test installs it)")
def test_tshark_reads_the_pcap_without_malformed_or_checksum_errors(tmp_path: Path) -> None:
    f = tmp_path / "close.pcap"
    f.write_bytes(render(close_run(), "pcap"))  # type: ignore[arg-type]
    prefs = ["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
    fields = subprocess.run(
        [
            TSHARK,
            "-n",
            "-r",
            str(f),
            *prefs,
            "-T",
            "fields",
            "-e",
            "tcp.checksum.status",
            "-e",
            "ip.checksum.status",
            "-e",
            "tcp.flags.str",
            "-e",
            "_ws.malformed",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert len(fields) == 11
    assert all(line.split("\t")[:2] == ["1", "1"] for line in fields), fields  # 1 = Good
    assert all(line.split("\t")[3] == "" for line in fields)
    expert = subprocess.run(
        [TSHARK, "-n", "-r", str(f), *prefs, "-q", "-z", "expert"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for bad in ("Errors (", "Malformed", "Checksum"):
        assert bad not in expert, expert
    # the test can fail: corrupt one TCP checksum byte and tshark must complain
    raw = bytearray(f.read_bytes())
    raw[24 + 16 + 36] ^= 0xFF
    f.write_bytes(bytes(raw))
    expert = subprocess.run(
        [TSHARK, "-n", "-r", str(f), *prefs, "-q", "-z", "expert"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "Bad checksum" in expert


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.bad: list[str] = []

    VOID = {"meta", "link", "br", "img", "input", "hr", "line", "rect", "path", "circle", "polyline"}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.bad.append(tag)
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collect:
    p = _Collect()
    p.feed(html)
    assert not p.bad and not p.stack, (p.bad, p.stack)
    return p


def test_html_page_has_diagram_checks_narrative_timeline_parameters() -> None:
    html = render(close_run(fail=True), "html")
    assert isinstance(html, str)
    p = _parse(html)
    text = " ".join(p.text)
    assert "svg" in p.tags and p.tags.count("tr") > 10
    assert "TIME_WAIT lasts 60 s after the last FIN" in text and "✗" in text
    assert "A closes first" in text
    assert "State timeline" in text
    assert "60.210 s" in text
    assert "drop_last_ack" in text and "time_wait_s" in text
    assert 'data-js="pending"' in html and "http" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_html_in_chinese() -> None:
    html = render(close_run(), "html", lang="zh")
    assert isinstance(html, str)
    assert '<html lang="zh-CN"' in html
    for needle in (
        "检查",
        "说明",
        "状态时间线",
        "参数",
        "A 先关闭",
        "A 只有在收到 B 的 FIN 之后才进入 TIME_WAIT",
    ):
        assert needle in html, needle


def test_html_series_run() -> None:
    html = render(series_run(), "html")
    assert isinstance(html, str)
    _parse(html)
    assert "<polyline" in html and "Time series" in html


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (make test installs it)")
def test_tshark_accepts_the_pcap_of_every_catalogue_scenario(tmp_path: Path) -> None:
    from tcpwise.scenarios import catalogue, run_scenario

    # one file, one tshark start: the scenarios' records back to back, 1000 s apart (their 4-tuples repeat, so
    # tshark's sequence analysis may comment, but checksums and dissection must be clean)
    merged = bytearray()
    counts: dict[str, int] = {}
    for i, sc in enumerate(catalogue()):
        run = run_scenario(sc.id)
        data = render(run, "pcap")
        assert isinstance(data, bytes)
        recs = _records(data)
        counts[sc.id] = len(recs)
        if not merged:
            merged += data[:24]
        for ts, pkt in recs:
            t = ts + 1000 * i
            merged += (
                struct.pack("<IIII", int(t), round((t - int(t)) * 1e6) % 1_000_000, len(pkt), len(pkt)) + pkt
            )
    f = tmp_path / "all.pcap"
    f.write_bytes(bytes(merged))
    total = sum(counts.values())
    assert total > 0, counts
    prefs = ["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
    fields = subprocess.run(
        [TSHARK, "-n", "-r", str(f), *prefs, "-T", "fields", "-e", "tcp.checksum.status", "-e", "ip.checksum.status",
         "-e", "_ws.malformed"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(fields) == total
    bad = [(i, line) for i, line in enumerate(fields) if line.split("\t") != ["1", "1", ""]]
    assert not bad, bad[:5]

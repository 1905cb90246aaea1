"""`tcpwise trace --jobs N`: the parallel path must write exactly the bytes of the single-process path.

The mixed captures interleave every kind of connection the hand-built tests cover (clean close, resets, refused
and unanswered SYNs, mid-stream starts, keepalives, zero windows, half-close, retransmissions, 4-tuple reuse,
IPv6) over a few hundred reused port pairs, with idle gaps longer than the 5 s linger, and are read in small
batches so that expiry, reuse and the end-of-capture flush all happen many times in each worker.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from tracecaps import A6, B6, Conv, write_pcap

from tcpwise.cli import main
from tcpwise.trace.cli import _summary
from tcpwise.trace.decode import AddrTable
from tcpwise.trace.output import JsonSink, trace_file
from tcpwise.trace.parallel import trace_parallel
from tcpwise.trace.zeek import ZeekWriter

REAL = str(Path(__file__).parent / "data" / "lo-small.pcap")


def _conv(rng: random.Random, i: int, nports: int) -> Conv:
    v6 = i % 7 == 3
    cv = Conv(
        a=A6 if v6 else "198.18.0.1",
        b=B6 if v6 else "198.18.1.1",
        cport=20000 + i % nports,
        sport=80 if i % 5 else 5432,
        isn_c=rng.randrange(1 << 32),
        isn_s=rng.randrange(1 << 32),
        t0=1_700_000_000.0 + rng.uniform(0, nports * 2.0),
        dt=rng.choice((0.0005, 0.01, 0.3)),
    )
    k = i % 11
    if k == 0:
        cv.handshake().c("PA", b"q" * 10).s("PA", b"r" * 20).c("FA").s("FA").c("A")
    elif k == 1:
        cv.handshake().c("PA", b"q").s("R")
    elif k == 2:
        cv.c("S")
        cv.c("S", seq=cv.nxt[0] - 1, gap=1.0)
    elif k == 3:
        cv.c("S").s("RA")
    elif k == 4:
        cv.c("PA", b"mid").s("A").c("PA", b"stream")
    elif k == 5:
        cv.handshake().c("PA", b"hi").s("A")
        cv.c("A", seq=cv.nxt[0] - 1, gap=7.5).s("A")
    elif k == 6:
        cv.handshake().c("PA", b"x").s("A").c("FA").s("FA").c("A")
        cv.nxt = [rng.randrange(1 << 32), rng.randrange(1 << 32)]
        cv.handshake().c("PA", b"again").c("R")
    elif k == 7:
        cv.handshake().c("PA", b"a" * 100).s("A", win=0).c("PA", b"b", seq=cv.nxt[0], adv=False).s("A")
    elif k == 8:
        cv.handshake().c("FA").s("A").s("PA", b"late data").s("FA").c("A")
    elif k == 9:
        cv.handshake().c("PA", b"open forever")
    else:
        cv.handshake().c("PA", b"z" * 50)
        cv.c("PA", b"z" * 50, seq=cv.nxt[0] - 50)  # retransmission
        cv.c("PA", b"y" * 20, seq=cv.nxt[0] + 30).s("A").c("FA").s("RA")  # after a hole
    return cv


def _mixed(path: Path, n: int, nports: int, seed: int) -> str:
    rng = random.Random(seed)
    pkts = []
    for i in range(n):
        pkts.extend(_conv(rng, i, nports).pkts)
    pkts.sort(key=lambda p: p[0])
    write_pcap(str(path), pkts)
    return str(path)


def _single(path: str, fmt: str, batch: int) -> str:
    out = io.StringIO()
    addrs = AddrTable()
    if fmt == "json":
        js = JsonSink(out, addrs.name)
        js.close(_summary(trace_file(path, js, addrs, batch=batch)))
    else:
        zw = ZeekWriter(out, addrs.name)
        trace_file(path, zw.write, addrs, batch=batch)
        zw.close()
    return out.getvalue()


def _par(path: str, fmt: str, jobs: int, batch: int) -> str:
    out = io.StringIO()
    trace_parallel(path, fmt, out, jobs, _summary, batch=batch)
    return out.getvalue()


def _no_clock(text: str) -> str:
    """Zeek's #open/#close lines carry the wall-clock time of the run."""
    return "".join(ln for ln in text.splitlines(True) if not ln.startswith(("#open", "#close")))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> str:
    return _mixed(tmp_path_factory.mktemp("jobs") / "mixed.pcap", 600, 150, 1)


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> str:
    return _mixed(tmp_path_factory.mktemp("jobs") / "many.pcap", 4000, 700, 2)


@pytest.mark.parametrize("fmt", ["json", "zeek"])
@pytest.mark.parametrize("jobs,batch", [(2, 37), (3, 200), (2, 65536)])
def test_mixed_capture_same_bytes(mixed: str, fmt: str, jobs: int, batch: int) -> None:
    want = _single(mixed, fmt, batch)
    assert want.count("\n") >= 300  # overlapping conversations on one port pair merge: fewer than 600
    assert _no_clock(_par(mixed, fmt, jobs, batch)) == _no_clock(want)


@pytest.mark.parametrize("fmt", ["json", "zeek"])
def test_thousands_of_connections_same_bytes(many: str, fmt: str) -> None:
    want = _single(many, fmt, 1000)
    got = _par(many, fmt, 2, 1000)
    assert _no_clock(got) == _no_clock(want)
    if fmt == "json":
        import json

        d = json.loads(got)
        assert d["summary"]["connections"] >= 2500  # some conversations share a port pair
        assert [c["n"] for c in sorted(d["connections"], key=lambda c: c["n"])] == list(
            range(1, d["summary"]["connections"] + 1)
        )


@pytest.mark.parametrize("fmt", ["json", "zeek"])
def test_real_capture_cli_same_bytes(tmp_path, fmt: str) -> None:
    outs = []
    for j in (1, 2):
        p = tmp_path / f"out{j}"
        assert main(["trace", REAL, "--format", fmt, "--jobs", str(j), "-o", str(p)]) == 0
        outs.append(_no_clock(p.read_text()))
    assert outs[0] == outs[1] and len(outs[0]) > 1000


def test_hand_built_corner_cases_same_bytes(tmp_path) -> None:
    """Each conversation kind alone, and all of them on one port pair one after another (reuse)."""
    rng = random.Random(5)
    for k in range(11):
        p = str(tmp_path / f"k{k}.pcap")
        write_pcap(p, _conv(rng, k, 1000).pkts)
        for fmt in ("json", "zeek"):
            assert _no_clock(_par(p, fmt, 2, 3)) == _no_clock(_single(p, fmt, 3)), (k, fmt)
    p = _mixed(tmp_path / "one-pair.pcap", 40, 1, 9)
    assert _par(p, "json", 2, 5) == _single(p, "json", 5)


def test_empty_capture_same_bytes(tmp_path) -> None:
    p = str(tmp_path / "empty.pcap")
    write_pcap(p, [])
    assert _par(p, "json", 2, 10) == _single(p, "json", 10)


def test_truncated_capture_same_output_and_exit_2(tmp_path, capsys) -> None:
    raw = Path(REAL).read_bytes()
    p = tmp_path / "cut.pcap"
    p.write_bytes(raw[: len(raw) - 100])
    got = []
    for j in (1, 2):
        assert main(["trace", str(p), "--format", "json", "--jobs", str(j)]) == 2
        cap = capsys.readouterr()
        got.append((cap.out, cap.err))
    assert got[0] == got[1] and "truncated" in got[0][1] and got[0][1].count("\n") == 1


@pytest.mark.parametrize("data,msg", [(b"not a capture at all" * 10, "not a pcap"), (b"", "")])
def test_bad_file_one_line_exit_2(tmp_path, capsys, data: bytes, msg: str) -> None:
    p = tmp_path / "bad.pcap"
    p.write_bytes(data)
    got = []
    for j in (1, 2):
        assert main(["trace", str(p), "--format", "zeek", "--jobs", str(j)]) == 2
        cap = capsys.readouterr()
        got.append((_no_clock(cap.out), cap.err))
    assert got[0] == got[1]
    err = got[0][1].strip()
    assert err.startswith("tcpwise: error:") and "\n" not in err and msg in err


def test_jobs_out_of_range_is_usage_error(capsys) -> None:
    assert main(["trace", REAL, "--format", "json", "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err


def test_skipped_packet_warnings_same_with_jobs(tmp_path, capsys) -> None:
    """Bad packets in a good file: every worker decodes every packet, the warning is counted once."""
    rng = random.Random(3)
    pkts = [p for i in range(30) for p in _conv(rng, i, 30).pkts]
    pkts.sort(key=lambda p: p[0])
    bad = b"\x45\x00\x00\x14" + b"\x00" * 8  # IPv4 header cut short
    pkts[5:5] = [(pkts[5][0], bad), (pkts[5][0], b"\x4f" + b"\x00" * 30)]
    p = str(tmp_path / "warn.pcap")
    write_pcap(p, pkts)
    got = []
    for j in (1, 2):
        assert main(["trace", p, "--format", "json", "--jobs", str(j)]) == 0
        cap = capsys.readouterr()
        got.append((cap.out, cap.err))
    assert got[0] == got[1]
    assert "warning" in got[0][1] and '"skipped": {}' not in got[0][0]

"""What users read: scaled windows in every view, the table at 80/100 columns and --wide, Parquet for analysts."""

from __future__ import annotations

import io
import json
import re

import pytest
from tracecaps import Conv

from tcpwise.cli import main
from tcpwise.trace.decode import AddrTable
from tcpwise.trace.output import conn_dict, trace_file
from tcpwise.trace.table import MAX_WAITING, TableSink, human_window
from tcpwise.trace.tracker import Conn
from tcpwise.wire import WindowScaleOption


def scaled_conv(c_shift: int | None = 7, s_shift: int | None = 9) -> Conv:
    """SYN offers shift 7, SYN+ACK 9 (RFC 7323 §2.2); later windows are raw values to be scaled."""
    cv = Conv()
    cv.c("S", win=64240, opts=(WindowScaleOption(c_shift),) if c_shift is not None else ())
    cv.s("SA", win=65160, opts=(WindowScaleOption(s_shift),) if s_shift is not None else ())
    cv.c("A", win=502).c("PA", b"q" * 10, win=502).s("PA", b"r" * 100, win=300).c("A", win=501)
    return cv


def _one(cv: Conv, tmp_path) -> tuple[Conn, dict]:
    a = AddrTable()
    out: list[Conn] = []
    trace_file(cv.write(str(tmp_path / "w.pcap")), out.append, a)
    (c,) = out
    return c, conn_dict(c, a.name)


def test_json_carries_scaled_windows_alongside_raw(tmp_path) -> None:
    _c, d = _one(scaled_conv(), tmp_path)
    o, r = d["orig"], d["resp"]
    assert (o["window"], o["window_scale"], o["window_scaled"]) == (501, 7, 501 << 7)
    assert (r["window"], r["window_scale"], r["window_scaled"]) == (300, 9, 300 << 9)
    assert o["window_max_scaled"] == max(64240, 502 << 7)  # the SYN's 64240 counts unscaled
    assert r["window_max_scaled"] == max(65160, 300 << 9)


@pytest.mark.parametrize("c_shift,s_shift", [(7, None), (None, 9)])
def test_scaling_needs_both_syns(c_shift, s_shift, tmp_path) -> None:
    _c, d = _one(scaled_conv(c_shift, s_shift), tmp_path)
    assert d["orig"]["window_scale"] == 0 and d["orig"]["window_scaled"] == 501


def test_without_the_handshake_the_scale_is_unknown(tmp_path) -> None:
    cv = Conv().c("PA", b"mid", win=700).s("A", win=800)
    _c, d = _one(cv, tmp_path)
    assert d["orig"]["window_scale"] is None and d["orig"]["window_scaled"] == 700


def test_conn_diagram_shows_scaled_windows(tmp_path, capsys) -> None:
    p = scaled_conv().write(str(tmp_path / "w.pcap"))
    assert main(["trace", p, "--conn", "1", "--wide"]) == 0  # 80 columns would shorten the labels
    out = capsys.readouterr().out
    assert f"win={501 << 7}" in out and f"win={300 << 9}" in out  # data segments: scaled
    assert "win=64240" in out  # the SYN's own window: as sent
    assert "win=501 " not in out and "win=300 " not in out


def test_table_window_column(tmp_path, capsys) -> None:
    p = scaled_conv().write(str(tmp_path / "w.pcap"))
    assert main(["trace", p, "--wide"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert f"{human_window(502 << 7)}/{human_window(300 << 9)}" in line  # largest window each way


def test_human_window() -> None:
    assert [human_window(n) for n in (0, 1023, 1024, 65535, 10 << 20, 3 << 19, None)] == [
        "0", "1023", "1.0k", "64k", "10M", "1.5M", "-",
    ]  # fmt: skip


# -- the table in a terminal -----------------------------------------------------------------------------------------
def _table(conns: list[Conn], width: int, wide: bool) -> str:
    a = AddrTable()
    buf = io.StringIO()
    t = TableSink(buf, a.name, width=width, wide=wide)
    for c in conns:
        t(c)
    t.close(len(conns), 0)
    return buf.getvalue()


def _conns(tmp_path, n: int = 3) -> list[Conn]:
    out: list[Conn] = []
    pkts = []
    for i in range(n):
        cv = Conv(cport=40000 + i, t0=1_700_000_000 + i)
        cv.handshake().c("PA", b"q" * 500).s("PA", b"r" * 3000).s("FA").c("FA").s("A")
        pkts.extend(cv.pkts)
    from tracecaps import write_pcap

    write_pcap(str(tmp_path / "t.pcap"), pkts)
    trace_file(str(tmp_path / "t.pcap"), out.append)
    return out


@pytest.mark.parametrize("width", [80, 100])
def test_story_wraps_in_a_narrow_terminal_never_cut(width: int, tmp_path) -> None:
    conns = _conns(tmp_path)
    text = _table(conns, width, wide=False)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= width
    words = " ".join(ln.strip() for ln in lines)
    assert "server closed first -> server holds TIME_WAIT" in words  # every word of the story is there
    assert re.search(r"3\.0 kB", text)  # a number and its unit stay together


def test_wide_keeps_one_line_per_connection(tmp_path) -> None:
    conns = _conns(tmp_path)
    lines = _table(conns, 80, wide=True).splitlines()
    assert len(lines) == 1 + len(conns) + 1  # header, rows, summary
    assert all("holds TIME_WAIT" in ln for ln in lines[1:-1])


def test_rows_come_out_in_number_order_and_streaming(tmp_path) -> None:
    conns = _conns(tmp_path, 5)
    text = _table(list(reversed(conns)), 200, wide=True)
    nums = [int(ln.split()[0]) for ln in text.splitlines()[1:-1]]
    assert nums == [1, 2, 3, 4, 5]


def test_waiting_rows_are_capped(tmp_path, monkeypatch) -> None:
    """A long-lived #1 must not make the table hold every later row: beyond MAX_WAITING they are printed."""
    monkeypatch.setattr("tcpwise.trace.table.MAX_WAITING", 2)
    conns = _conns(tmp_path, 5)
    a = AddrTable()
    buf = io.StringIO()
    t = TableSink(buf, a.name, width=200, wide=True)
    t.sample = None  # column widths fixed from the first row: print immediately
    t.cols = (3, 35, 5, 10, 8, 6, 8)
    for c in conns[1:]:
        t(c)
    assert len(buf.getvalue().splitlines()) >= 2  # rows 2.. printed while #1 is still open
    assert MAX_WAITING == 10_000


# -- Parquet ----------------------------------------------------------------------------------------------------------
def test_parquet_has_the_conn_log_columns_and_tcpwise_ones(tmp_path, capsys) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from tcpwise.trace.parquet import COLUMNS

    cv = Conv().handshake().c("PA", b"q").s("PA", b"r").s("FA").c("FA").s("A")
    cv.nxt = [900_000, 700_000]
    cv.c("S", gap=10).s("RA", seq=0)
    p = cv.write(str(tmp_path / "c.pcap"))
    out = tmp_path / "c.parquet"
    assert main(["trace", p, "--format", "parquet", "-o", str(out)]) == 0
    assert main(["trace", p, "--format", "json"]) == 0
    js = json.loads(capsys.readouterr().out)["connections"]
    t = pq.read_table(str(out))
    assert t.column_names == [c for c, _ in COLUMNS]
    rows = t.to_pylist()
    assert [r["conn_state"] for r in rows] == ["SF", "REJ"]
    assert [r["uid"] for r in rows] == [c["uid"] for c in js]  # the same uids as the other formats
    sf, rej = rows
    assert (sf["closer"], sf["time_wait"], sf["reset_origin"]) == ("resp", "resp", None)
    assert sf["handshake_rtt"] == pytest.approx(0.002, abs=1e-6) and sf["orig_bytes"] == 1
    assert rej["reset_origin"] == "resp" and rej["duration"] == pytest.approx(0.001, abs=1e-6)
    assert str(t.schema.field("ts").type) == "timestamp[us, tz=UTC]"


def test_parquet_needs_an_output_file(tmp_path, capsys) -> None:
    p = Conv().handshake().write(str(tmp_path / "c.pcap"))
    assert main(["trace", p, "--format", "parquet"]) == 2
    assert "-o FILE.parquet" in capsys.readouterr().err


def test_parquet_without_pyarrow_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *a, **kw):  # type: ignore[no-untyped-def]
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    p = Conv().handshake().write(str(tmp_path / "c.pcap"))
    assert main(["trace", p, "--format", "parquet", "-o", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'tcpwise[parquet]'" in err and "\n" not in err.strip()
    assert not (tmp_path / "x.parquet").exists()


def test_planted_unscaled_window_turns_red(tmp_path, monkeypatch) -> None:
    """Plant the old behaviour (raw windows only): the scaled-window expectation must fail."""
    from tcpwise.trace.tracker import Side

    monkeypatch.setattr(Side, "window_scaled", property(lambda s: s.win))
    _c, d = _one(scaled_conv(), tmp_path)
    assert d["orig"]["window_scaled"] != 501 << 7


def test_planted_cut_story_turns_red(tmp_path, monkeypatch) -> None:
    """Plant a table that cuts the story at the width (what rich did): the never-cut check must fail."""
    real = TableSink._print

    def cutting(self, row):  # type: ignore[no-untyped-def]
        before = self.out.tell()
        real(self, row)
        text = self.out.getvalue()[before:]
        self.out.seek(before)
        self.out.truncate()
        self.out.write("\n".join(ln[: self.width] for ln in text.splitlines()[:1]) + "\n")

    monkeypatch.setattr(TableSink, "_print", cutting)
    words = " ".join(ln.strip() for ln in _table(_conns(tmp_path), 80, wide=False).splitlines())
    assert "server holds TIME_WAIT" not in words


@pytest.mark.parametrize("bad_len", [0, 1, 255])
def test_conn_draws_packets_whose_options_are_malformed(bad_len, tmp_path, capsys) -> None:
    """The tracker counts a SYN whose option list is malformed (it reads the fixed header only); the diagram
    must draw it too — without the options, and saying so — not silently show a connection without its SYN."""
    from tcpwise.wire import MssOption

    conv = (
        Conv().c("S", opts=(MssOption(1460),)).s("SA", opts=(MssOption(1460),)).c("A").c("FA").s("FA").c("A")
    )
    t, syn = conv.pkts[0]
    b = bytearray(syn)
    assert b[40:42] == b"\x02\x04"  # MSS right after the 20-byte IPv4 and TCP headers
    b[41] = bad_len
    conv.pkts[0] = (t, bytes(b))
    path = conv.write(str(tmp_path / "c.pcap"))
    assert main(["trace", path, "--conn", "1", "--format", "json", "-C"]) == 0
    out, err = capsys.readouterr()
    sends = [e for e in json.loads(out)["events"] if e["kind"] == "send"]
    assert [e["segment"]["flags"] for e in sends] == ["S", "SA", "A", "FA", "FA", "A"]
    assert sends[0]["segment"].get("opts") is None and sends[1]["segment"]["opts"]
    assert "1 packet(s) of connection #1 drawn without their TCP options (malformed)" in err

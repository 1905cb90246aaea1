"""Zeek conn_state / history on hand-built captures: one capture per documented conn_state value, plus the
history repeat rules, byte accounting, keepalives, reuse and the inferred RFC 9293 state story."""

from __future__ import annotations

import pytest
from tracecaps import Conv

from tcpwise.trace.decode import AddrTable
from tcpwise.trace.output import conn_dict, conn_json, trace_file
from tcpwise.trace.tracker import Conn, ZeekTimers
from tcpwise.trace.zeek import conn_state


def run(conv: Conv, tmp_path, name: str = "c.pcap") -> list[Conn]:
    out: list[Conn] = []
    trace_file(conv.write(str(tmp_path / name)), out.append)
    return sorted(out, key=lambda c: c.n)


def one(conv: Conv, tmp_path) -> Conn:
    conns = run(conv, tmp_path)
    assert len(conns) == 1
    return conns[0]


def sf() -> Conv:
    return (
        Conv().handshake().c("PA", b"GET / HTTP/1.0\r\n\r\n").s("A").s("PA", b"x" * 100).c("A")
        .c("FA").s("FA").c("A")
    )  # fmt: skip


CASES = {
    "S0": (lambda: Conv().c("S").c("S", seq=1000, gap=1.0), "S"),
    "REJ": (lambda: Conv().c("S").s("RA", seq=0), "Sr"),
    "S1": (lambda: Conv().handshake().c("PA", b"hi").s("A"), "ShADa"),
    "SF": (sf, "ShADadFf"),
    "S2": (lambda: Conv().handshake().c("FA").s("A"), "ShAFa"),
    "S3": (lambda: Conv().handshake().s("FA").c("A"), "ShAf"),
    "RSTO": (lambda: Conv().handshake().c("PA", b"x").c("R"), "ShADR"),
    "RSTR": (lambda: Conv().handshake().c("PA", b"x").s("R"), "ShADr"),
    "RSTOS0": (lambda: Conv().c("S").c("R"), "SR"),
    "RSTRH": (lambda: Conv().s("SA").s("R"), "^hr"),
    "SH": (lambda: Conv().c("S").c("F"), "SF"),
    "SHR": (lambda: Conv().s("SA").s("F"), "^hf"),
    "OTH": (lambda: Conv().c("PA", b"mid-stream").s("A"), "Da"),
}


@pytest.mark.parametrize("state", sorted(CASES))
def test_conn_state_each_documented_value(state: str, tmp_path) -> None:
    build, history = CASES[state]
    c = one(build(), tmp_path)
    assert conn_state(c) == state
    assert c.history == history


def test_sf_counts_and_close_story(tmp_path) -> None:
    c = one(sf(), tmp_path)
    d = conn_dict(c, AddrTable().name)
    assert (d["orig_h"], d["orig_p"], d["resp_h"], d["resp_p"]) == ("198.18.0.1", 40000, "198.18.1.1", 80)
    assert d["orig"]["bytes"] == 18 and d["resp"]["bytes"] == 100
    assert d["orig"]["pkts"] == 6 and d["resp"]["pkts"] == 4
    assert d["first_fin"] == "orig" and d["time_wait"] == ["orig"]
    states = [(h, a, b) for _, h, a, b in d["states"]]
    assert states == [
        ("orig", "CLOSED", "SYN_SENT"),
        ("resp", "LISTEN", "SYN_RCVD"),
        ("orig", "SYN_SENT", "ESTABLISHED"),
        ("resp", "SYN_RCVD", "ESTABLISHED"),
        ("orig", "ESTABLISHED", "FIN_WAIT_1"),
        ("resp", "ESTABLISHED", "CLOSE_WAIT"),
        ("orig", "FIN_WAIT_1", "FIN_WAIT_2"),
        ("resp", "CLOSE_WAIT", "LAST_ACK"),
        ("orig", "FIN_WAIT_2", "TIME_WAIT"),
        ("resp", "LAST_ACK", "CLOSED"),
    ]
    assert "client closed first -> client holds TIME_WAIT" in d["story"]


def test_server_close_first_puts_time_wait_on_server(tmp_path) -> None:
    c = one(Conv().handshake().c("PA", b"q").s("PA", b"r").s("FA").c("A").c("FA").s("A"), tmp_path)
    assert conn_state(c) == "SF"
    assert c.r.state == "TIME_WAIT" and c.o.state == "CLOSED"
    assert c.first_fin == 1


def test_simultaneous_close_both_closing_then_time_wait(tmp_path) -> None:
    cv = Conv().handshake()
    fin_c, fin_s = cv.nxt[0], cv.nxt[1]
    cv.c("FA").s("FA", ack=fin_c)  # the server's FIN does not acknowledge the client's: it crossed it
    cv.c("A", ack=fin_s + 1).s("A", ack=fin_c + 1)
    c = one(cv, tmp_path)
    seq_o = [b for _, d, _a, b in c.transitions if d == 0]
    seq_r = [b for _, d, _a, b in c.transitions if d == 1]
    assert seq_o[-3:] == ["FIN_WAIT_1", "CLOSING", "TIME_WAIT"]
    assert seq_r[-3:] == ["FIN_WAIT_1", "CLOSING", "TIME_WAIT"]
    assert "CLOSE_WAIT" not in seq_r
    assert conn_state(c) == "SF"


def test_retransmissions_scale_1_10_100_and_are_not_double_counted(tmp_path) -> None:
    cv = Conv().handshake()
    seq = cv.nxt[0]
    cv.c("PA", b"abcd")
    for _ in range(12):
        cv.c("PA", b"abcd", seq=seq)
    cv.s("A")
    c = one(cv, tmp_path)
    assert c.o.rxmt == 12
    assert c.o.bytes == 4
    assert c.history == "ShADTTa"  # T at the 1st and the 10th retransmission


def test_zero_window_scale_and_window_probe(tmp_path) -> None:
    cv = Conv().handshake().c("PA", b"x" * 10)
    for _ in range(100):
        cv.s("A", win=0)
    c = one(cv, tmp_path)
    assert c.r.zw == 100
    assert c.history == "ShADawww"  # w at 1, 10, 100


def test_keepalive_probes_are_not_retransmissions(tmp_path) -> None:
    cv = Conv().handshake().c("PA", b"hello").s("A")
    probe = cv.nxt[0] - 1
    for _ in range(3):
        cv.c("A", seq=probe, gap=75.0).s("A")
    c = one(cv, tmp_path)
    assert c.o.keepalive == 3 and c.o.rxmt == 0
    assert "3 keepalive" in conn_dict(c, AddrTable().name)["story"]


def test_gap_counts_missed_bytes_and_out_of_order_fill(tmp_path) -> None:
    cv = Conv().handshake()
    s0 = cv.nxt[0]
    cv.c("PA", b"B" * 10, seq=s0 + 10).c("PA", b"A" * 10, seq=s0)  # reordered: second half first
    cv.c("PA", b"D" * 10, seq=s0 + 30)  # [20, 30) never seen
    cv.s(
        "A", ack=s0 + 40
    )  # ... but acknowledged: a content gap (Zeek counts gaps only when an ACK reveals them)
    c = one(cv, tmp_path)
    assert c.o.ooo == 1 and c.o.rxmt == 0  # tcpwise: the fill is reordering, not a re-send
    assert c.o.bytes == 40 and c.o.missed == 10
    assert c.history == "ShADTaG"  # Zeek: the fill ends below LastSeq (T); the ACK reveals the gap (G)


def test_reuse_new_syn_after_close_is_a_new_connection(tmp_path) -> None:
    cv = sf()
    cv.nxt = [900_000, 700_000]
    cv.handshake().c("R")
    conns = run(cv, tmp_path)
    assert [conn_state(c) for c in conns] == ["SF", "RSTO"]
    assert conns[0].key == conns[1].key


def test_rst_story_names_state(tmp_path) -> None:
    c = one(Conv().handshake().c("FA").s("A").s("R"), tmp_path)
    d = conn_dict(c, AddrTable().name)
    assert d["rst"]["by"] == "resp" and d["rst"]["state"] == "CLOSE_WAIT"
    assert conn_state(c) == "RSTR"


def test_fast_json_equals_dict(tmp_path) -> None:
    import json

    cv = sf()
    cv.nxt = [900_000, 700_000]
    cv.handshake().c("PA", b"z").s("R")
    a = AddrTable()
    out: list[Conn] = []
    trace_file(cv.write(str(tmp_path / "x.pcap")), out.append, a)
    for c in out:
        assert json.loads(conn_json(c, a.name)) == conn_dict(c, a.name)


def test_ipv6_connection(tmp_path) -> None:
    from tracecaps import A6, B6

    a = AddrTable()
    out: list[Conn] = []
    cv = Conv(a=A6, b=B6).handshake().c("PA", b"v6").s("FA").c("FA").s("A")
    trace_file(cv.write(str(tmp_path / "6.pcap")), out.append, a)
    d = conn_dict(out[0], a.name)
    assert d["orig_h"] == "fd00::1" and d["resp_h"] == "fd00:1::1"
    assert d["conn_state"] == "SF" and d["orig"]["bytes"] == 2


def test_half_open_story_rst_after_long_silence(tmp_path) -> None:
    cv = Conv().handshake().c("PA", b"hi").s("A")
    cv.c("PA", b"again", gap=3600.0).s("R", gap=0.0005)
    first, second = run(cv, tmp_path)  # Zeek's inactivity timeout (5 min) ends the first row
    assert first.end == "inactivity" and conn_state(first) == "S1"
    assert conn_state(second) == "RSTRH" and second.prev_n == first.n
    story = conn_dict(second, AddrTable().name)["story"]
    assert story.startswith("continues #1 (Zeek's inactivity timeout ended that row)")
    assert (
        "RST by server answering the client after 3600 s of silence: it no longer knew the connection"
        in story
    )
    # One row when the inactivity timeout is off: the same story inside it.
    out: list[Conn] = []
    trace_file(str(tmp_path / "c.pcap"), out.append, timers=ZeekTimers(inactivity=0))
    assert len(out) == 1 and conn_state(out[0]) == "RSTR"
    assert "no longer knew the connection (half-open)" in conn_dict(out[0], AddrTable().name)["story"]


def test_idle_abort_is_not_called_half_open(tmp_path) -> None:
    cv = Conv().handshake().c("PA", b"hi").s("A")
    cv.s("RA", gap=60.0)
    d = conn_dict(one(cv, tmp_path), AddrTable().name)
    assert "abort on timeout" in d["story"] and "half-open" not in d["story"]


def test_half_open_suspected_when_one_side_retransmits_unanswered(tmp_path) -> None:
    cv = Conv().handshake().c("PA", b"q").s("A")
    seq = cv.nxt[0]
    cv.c("PA", b"data")
    for i in range(6):
        cv.c("PA", b"data", seq=seq, gap=0.2 * 2**i)
    d = conn_dict(one(cv, tmp_path), AddrTable().name)
    assert "half-open suspected: client kept sending" in d["story"]


def test_half_close_story(tmp_path) -> None:
    cv = Conv().handshake().c("PA", b"req").c("FA").s("A").s("PA", b"r" * 500).c("A").s("FA").c("A")
    c = one(cv, tmp_path)
    story = conn_dict(c, AddrTable().name)["story"]
    assert "half-close: server sent 500 B after the client's FIN" in story
    assert conn_state(c) == "SF" and c.o.state == "TIME_WAIT"

"""The kinds of real-world traffic where tcpwise used to disagree with Zeek (issue 11), one hand-built capture each.

Every expected conn.log row below is derived from Zeek's own rules, cited by the function and file they live in
(docs/trace.md has the full list): the timers of scripts/base/init-bare.zeek (tcp_attempt_delay 5 s,
tcp_close_delay 5 s, tcp_inactivity_timeout 5 min), TCPSessionAdapter.cc (UpdateStateMachine, IsReuse,
update_history, update_last_seq, ConnectionClosed, the Attempt/Expire timers), TCP_Endpoint.cc (Size, DidRxmit,
Gap, ChecksumError), TCP_Reassembler.cc (gaps revealed by ACKs, only while both sides are established or cleanly
closing), TCP.cc (ValidateChecksum: a bad checksum stops the packet after the 'C' letter) and
scripts/base/protocols/conn/main.zeek (conn_state; duration/bytes set only when duration > 0). Each test states
the derivation next to the expectation; the rows are read back from `tcpwise trace --format zeek`.

Raw IPv4 packets built by tracecaps have 20-byte IP and 20-byte TCP headers, so ip_bytes = 40 + payload.
"""

from __future__ import annotations

import pytest
from tracecaps import Conv

from tcpwise.cli import main
from tcpwise.trace import tracker as tracker_mod
from tcpwise.trace.zeek import FIELDS

T0 = 1_700_000_000.0


def zeek_rows(cv: Conv, tmp_path, capsys, *extra: str) -> list[dict[str, str]]:
    path = cv.write(str(tmp_path / "c.pcap"))
    rc = main(["trace", path, "--format", "zeek", *extra])
    out = capsys.readouterr().out
    assert rc == 0
    rows = [
        dict(zip(FIELDS, ln.split("\t"), strict=True)) for ln in out.splitlines() if not ln.startswith("#")
    ]
    return sorted(rows, key=lambda r: float(r["ts"]))


def pick(row: dict[str, str], *names: str) -> tuple[str, ...]:
    return tuple(row[n] for n in names)


COLS = ("conn_state", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "orig_bytes",
        "resp_bytes", "missed_bytes")  # fmt: skip


# -- rows end by Zeek's timers; a 4-tuple can have several rows -------------------------------------------------------
def test_one_sided_capture_is_an_S0_row_then_an_SH_row(tmp_path, capsys) -> None:
    """Only the client's direction was captured. SYN at 0 s arms AttemptTimer (tcp_attempt_delay 5 s); the client's
    ACK and data do not move a SYN_SENT endpoint (UpdateSYN_SentState), and the responder stays INACTIVE, so at
    5 s the timer removes the connection: S0 (main.zeek: os SYN_SENT, rs INACTIVE). Its history is S, then A for
    the pure ACK, D for data (update_history); bytes = max(LastSeq, AckSeq) - ISN - SYN octet = 20 (Size);
    duration = 3.0 (LastTime = the last packet before removal). The data at 6 s starts a new connection: not a
    SYN, source port not a likely server port, so no flip (WantConnection); the client goes PARTIAL, its FIN
    CLOSED with a silent peer (close complete) -> SH (os CLOSED, rs inactive). Bytes 10 (partial start = seq-1,
    FIN octet excluded); the last pure ACK still counts as a packet and extends LastTime (only one side closed)."""
    cv = Conv(t0=T0, dt=0.05)
    cv.c("S")
    cv.s("SA", keep=False)  # the capture only saw the client's direction
    cv.c("A").c("PA", b"a" * 10)
    cv.c("PA", b"b" * 10, gap=2.85)  # t = 3.05
    cv.c("PA", b"c" * 10, gap=3.0)  # t = 6.05: after the attempt timer fired at 5.05
    cv.c("FA", gap=2.0).c("A", ack=cv.nxt[1] + 1, gap=0.05)
    r1, r2 = zeek_rows(cv, tmp_path, capsys)
    assert pick(r1, *COLS) == ("S0", "SAD", "4", "180", "0", "0", "20", "0", "0")
    assert float(r1["duration"]) == pytest.approx(3.0, abs=1e-6)
    assert pick(r2, *COLS) == ("SH", "DFA", "3", "130", "0", "0", "10", "0", "0")
    assert float(r2["ts"]) == pytest.approx(T0 + 6.05, abs=1e-6) and float(r2["duration"]) == pytest.approx(
        2.05
    )
    assert r1["uid"] != r2["uid"]


def test_retrying_a_refused_port_is_one_REJ_row_per_attempt(tmp_path, capsys) -> None:
    """SYN answered by RST+ACK: the responder goes RESET from INACTIVE (UpdateInactiveState), rs RESET with os
    SYN_SENT is REJ. The responder's RST closes it (did_close), so IsReuse calls the next SYN a new connection
    (IsClosed() -> reuse), even with the same ISN: three attempts, three REJ rows of 1/1 packets."""
    cv = Conv(t0=T0)
    for i in range(3):
        cv.nxt[0] = 1000 + (i % 2) * 5000  # attempts 1 and 3 even reuse the ISN
        cv.c("S", gap=1.0).s("RA", seq=0)
    rows = zeek_rows(cv, tmp_path, capsys)
    assert [pick(r, *COLS) for r in rows] == [("REJ", "Sr", "1", "40", "1", "40", "0", "0", "0")] * 3


def test_retransmitting_flow_after_a_long_silence_starts_a_new_row(tmp_path, capsys) -> None:
    """An established connection goes silent for 400 s, beyond tcp_inactivity_timeout (300 s): InactivityTimer
    removes it (S1: both ESTABLISHED). The client then re-sends data: a new, partial connection (OTH: orig
    PARTIAL, resp INACTIVE); each re-send ends at or below LastSeq with payload, so update_last_seq calls DidRxmit:
    T at the 1st (and would at the 10th) occurrence. With --inactivity-timeout 0 it stays one row."""
    cv = Conv(t0=T0).handshake().c("PA", b"q" * 20).s("A")
    seq = cv.nxt[0]
    cv.c("PA", b"x" * 100, gap=400.0)
    for k in range(3):
        cv.c("PA", b"x" * 100, seq=seq, gap=0.2 * 2**k)
    r1, r2 = zeek_rows(cv, tmp_path, capsys)
    assert pick(r1, *COLS) == ("S1", "ShADa", "3", "140", "2", "80", "20", "0", "0")
    assert pick(r2, *COLS) == ("OTH", "DT", "4", "560", "0", "0", "100", "0", "0")
    (one,) = zeek_rows(cv, tmp_path, capsys, "--inactivity-timeout", "0")
    assert pick(one, "conn_state", "history", "orig_pkts") == ("S1", "ShADaT", "7")


def test_four_tuple_reused_after_a_rst_is_a_new_row(tmp_path, capsys) -> None:
    """RSTO (os RESET after ESTABLISHED). A SYN after the RST finds the connection closed (the RST's sender
    did_close): IsReuse -> a new row, here a clean SF."""
    cv = Conv(t0=T0).handshake().c("PA", b"hi").c("R")
    cv.nxt = [900_000, 700_000]
    cv.c("S", gap=2.0).s("SA").c("A").c("FA").s("FA").c("A")
    r1, r2 = zeek_rows(cv, tmp_path, capsys)
    assert pick(r1, "conn_state", "history") == ("RSTO", "ShADR")
    assert pick(r2, "conn_state", "history", "orig_pkts", "resp_pkts") == ("SF", "ShAFf", "4", "2")


def test_close_delay_late_packets_join_within_5s_else_start_a_row(tmp_path, capsys) -> None:
    """After both FINs the close is complete (ConnectionClosed): ConnDeleteTimer removes the row tcp_close_delay
    (5 s) after LastTime, and LastTime no longer moves once both sides closed — so the final ACK and a
    retransmitted FIN 1 s later count as packets of row 1 but not in its duration (main.zeek: duration ends
    before the trailing packets). The same FIN again 7 s later comes after the removal: a new connection whose
    first packet is the server's FIN+ACK: WantConnection flips it (source port 80 is a likely server port), the
    responder goes CLOSED from INACTIVE -> SHR (rs CLOSED, os inactive); '^' for the flip."""
    cv = Conv(t0=T0).handshake().c("PA", b"q").s("PA", b"r")
    fin_s = cv.nxt[1]
    cv.s("FA").c("FA").s("A")
    cv.s("FA", seq=fin_s, adv=False, gap=1.0)
    cv.s("FA", seq=fin_s, adv=False, gap=7.0)
    r1, r2 = zeek_rows(cv, tmp_path, capsys)
    assert pick(r1, "conn_state", "history", "orig_pkts", "resp_pkts") == ("SF", "ShADdfFa", "4", "5")
    assert float(r1["duration"]) == pytest.approx(0.006, abs=1e-6)  # SYN at +0.001 .. client FIN at +0.007
    assert pick(r2, "conn_state", "history", "orig_pkts", "resp_pkts", "duration") == (
        "SHR",
        "^f",
        "0",
        "1",
        "-",
    )


# -- RST after both FINs -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("who,letter", [("c", "R"), ("s", "r")])
def test_rst_after_both_fins_stays_SF(who: str, letter: str, tmp_path, capsys) -> None:
    """UpdateClosedState: a RST from a CLOSED endpoint whose peer is CLOSED too changes nothing, so conn_state
    stays SF; update_history still records the R/r."""
    cv = Conv(t0=T0).handshake().c("PA", b"q").s("PA", b"r").c("FA").s("FA").c("A")
    getattr(cv, who)("R")
    (row,) = zeek_rows(cv, tmp_path, capsys)
    assert pick(row, "conn_state", "history") == ("SF", "ShADdFf" + letter)


# -- history letters: retransmissions, gaps -----------------------------------------------------------------------------
def test_retransmission_letters_next_to_fins_and_on_the_responder_side(tmp_path, capsys) -> None:
    """update_last_seq: a segment with payload ending at or below LastSeq is a retransmission (DidRxmit) -> T for
    the originator, t for the responder. A FIN re-sent with its data is one; a bare FIN re-sent is not (no
    payload), and neither adds another F (same FIN sequence number, update_history)."""
    cv = Conv(t0=T0).handshake().c("PA", b"q" * 5).s("A")
    s_seq = cv.nxt[1]
    cv.s("PA", b"r" * 50)
    cv.s("PA", b"r" * 50, seq=s_seq, gap=0.2)  # responder re-sends its data: t
    cv.c("A")
    c_seq = cv.nxt[0]
    cv.c("FPA", b"bye", adv=True)
    cv.c("FPA", b"bye", seq=c_seq, gap=0.2)  # the FIN with its data again: T, no second F
    cv.s("FA")
    fin_s = cv.nxt[1] - 1
    cv.s("FA", seq=fin_s, adv=False, gap=0.2)  # a bare FIN again: neither t nor f
    cv.c("A")
    (row,) = zeek_rows(cv, tmp_path, capsys)
    assert pick(row, "conn_state", "history") == ("SF", "ShADadtFTf")


def test_content_gap_in_the_middle(tmp_path, capsys) -> None:
    """The middle segment of three was never captured; the server's ACK covers it: TCP_Reassembler::Undelivered
    reports a gap of 10 bytes (both sides established) -> G (originator's stream) and missed_bytes 10. The third
    segment still counts in bytes (LastSeq)."""
    cv = Conv(t0=T0).handshake()
    cv.c("PA", b"1" * 10).c("PA", b"2" * 10, keep=False).c("PA", b"3" * 10).s("A")
    (row,) = zeek_rows(cv, tmp_path, capsys)
    assert pick(row, "conn_state", "history", "orig_bytes", "missed_bytes") == ("S1", "ShADaG", "30", "10")


def test_content_gap_where_the_capture_ends_mid_stream(tmp_path, capsys) -> None:
    """The capture lost the server's last data segment but kept the client's ACK of it (the capture ended in the
    middle of the stream): the ACK reveals a 200-byte gap in the responder's stream -> g, missed_bytes 200, and
    resp_bytes 300 from AckSeq (Size takes max(LastSeq, AckSeq))."""
    cv = Conv(t0=T0).handshake().c("PA", b"get").s("PA", b"r" * 100).c("A")
    cv.s("PA", b"s" * 200, keep=False).c("A")
    (row,) = zeek_rows(cv, tmp_path, capsys)
    assert pick(row, "conn_state", "history", "resp_bytes", "missed_bytes") == ("S1", "ShADdg", "300", "200")


def test_gap_after_a_rst_is_not_a_history_letter(tmp_path, capsys) -> None:
    """Gaps count only while both sides are established or cleanly closing (TCP_Reassembler is_clean): an ACK in
    a RST that jumps past unseen data adds neither g nor missed bytes."""
    cv = Conv(t0=T0).handshake().s("PA", b"r" * 10)
    cv.c("RA", ack=cv.nxt[1] + 500)
    (row,) = zeek_rows(cv, tmp_path, capsys)
    assert pick(row, "conn_state", "history", "missed_bytes") == ("RSTO", "ShAdR", "0")


# -- checksums ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "csum,mode,expect",
    [
        ("bad", "auto", ("OTH", "C", "0", "0", "-")),  # TCP.cc ValidateChecksum: only the letter, 0 packets
        ("bad", "verify", ("OTH", "C", "0", "0", "-")),
        ("bad", "ignore", ("S0", "S", "1", "40", "-")),  # zeek -C
        ("offload", "auto", ("S0", "S", "1", "40", "-")),  # the pseudo-header sum of checksum offload
        ("offload", "verify", ("OTH", "C", "0", "0", "-")),  # Zeek itself does not know offload
    ],
)
def test_syn_with_a_bad_checksum(csum: str, mode: str, expect: tuple[str, ...], tmp_path, capsys) -> None:
    cv = Conv(t0=T0).c("S", csum=csum)
    (row,) = zeek_rows(cv, tmp_path, capsys, "--checksums", mode)
    assert pick(row, "conn_state", "history", "orig_pkts", "orig_ip_bytes", "duration") == expect
    assert float(row["ts"]) == pytest.approx(T0 + 0.001)


def test_bad_checksum_mid_connection_is_ignored_then_the_good_copy_counts(tmp_path, capsys) -> None:
    cv = Conv(t0=T0).handshake()
    s0 = cv.nxt[0]
    cv.c("PA", b"x" * 10, csum="bad").c("PA", b"x" * 10, seq=s0).s("A").c("FA").s("FA").c("A")
    (row,) = zeek_rows(cv, tmp_path, capsys, "-C")
    assert pick(row, "history", "orig_pkts") == ("ShADTaFf", "6")  # -C: the corrupt copy is data, then T
    (row,) = zeek_rows(cv, tmp_path, capsys)
    assert pick(row, "history", "orig_pkts") == ("ShACDaFf", "5")  # C (not counted), then the good copy: D


def test_bad_ipv4_header_checksum_drops_the_packet_with_a_warning(tmp_path, capsys) -> None:
    cv = Conv(t0=T0).handshake()
    t, p = cv.pkts[2]
    bad = bytearray(p)
    bad[10] ^= 0xFF  # IPv4 header checksum (IP.cc: bad_IP_checksum -> the packet goes no further)
    cv.pkts[2] = (t, bytes(bad))
    path = cv.write(str(tmp_path / "c.pcap"))
    assert main(["trace", path, "--format", "zeek"]) == 0
    cap = capsys.readouterr()
    (row,) = [ln.split("\t") for ln in cap.out.splitlines() if not ln.startswith("#")]
    assert dict(zip(FIELDS, row, strict=True))["history"] == "Sh"
    assert "1 packet(s) skipped: bad IPv4 header checksum" in cap.err
    assert main(["trace", path, "--format", "zeek", "-C"]) == 0
    assert "ShA" in capsys.readouterr().out


# -- the checks above can fail --------------------------------------------------------------------------------------------
def test_planted_bug_in_the_reuse_rule_turns_the_refused_retries_red(tmp_path, capsys, monkeypatch) -> None:
    """Plant the old behaviour (no new row on a SYN after a RST): the REJ-per-attempt expectation must fail."""
    monkeypatch.setattr(tracker_mod.Tracker, "_is_reuse", lambda self, c, d, seq, fl: False)
    cv = Conv(t0=T0)
    for _ in range(2):
        cv.c("S", gap=1.0).s("RA", seq=0)
    rows = zeek_rows(cv, tmp_path, capsys)
    assert len(rows) != 2 or rows[0]["orig_pkts"] != "1"


def test_planted_bug_in_rst_after_fins_turns_red(tmp_path, capsys, monkeypatch) -> None:
    """Plant the old RST rule (a RST in CLOSED always resets): the SF expectation must fail."""
    real = tracker_mod.Tracker._zeek_state

    def buggy(self, c, d, s, p, fl, seq, pl, ts):  # type: ignore[no-untyped-def]
        if s.z == tracker_mod.CLOSED and fl & 0x04:
            s.zprev, s.z = s.z, tracker_mod.RESET
            return False
        return real(self, c, d, s, p, fl, seq, pl, ts)

    monkeypatch.setattr(tracker_mod.Tracker, "_zeek_state", buggy)
    cv = Conv(t0=T0).handshake().c("FA").s("FA").c("A").c("R")
    (row,) = zeek_rows(cv, tmp_path, capsys)
    assert row["conn_state"] != "SF"

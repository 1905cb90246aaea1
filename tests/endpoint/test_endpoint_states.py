"""State-machine tests for the sans-IO endpoint, grouped by RFC 9293 state (smoltcp habit: test_<state>_<case>).

Time only moves through the Pair's virtual clock; every number asserted here is a consequence of RFC 9293,
RFC 6298, RFC 5961 or a Linux default that the test names.
"""

from __future__ import annotations

import pathlib

import pytest
from ep_helpers import B_ADDR, Pair, established

from tcpwise.endpoint import (
    LINUX,
    RFC,
    TRANSITIONS,
    ConnectError,
    ConnectionError,
    Endpoint,
    EndpointConfig,
    LocalProtocolError,
    RttEstimator,
    TimerFired,
    isn_rfc6528,
    linux_retrans_timeout,
)
from tcpwise.endpoint.transitions import IllegalTransition, check
from tcpwise.vocab import ACK, FIN, PSH, RST, SYN, TcpState, TimerName, Trigger
from tcpwise.wire.segment import TcpSegment

S = TcpState
SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "tcpwise"


# ---------------------------------------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------------------------------------
def test_transition_table_covers_every_state() -> None:
    sources = {s for (s, _) in TRANSITIONS}
    targets = set(TRANSITIONS.values())
    assert sources | targets == set(TcpState)
    # every state can reach CLOSED except through the table (no dead ends)
    assert all(s in sources for s in TcpState if s is not S.CLOSED)


def test_illegal_transition_is_a_bug() -> None:
    with pytest.raises(IllegalTransition):
        check(S.CLOSED, Trigger.CONNECT, S.TIME_WAIT)
    check(S.CLOSED, Trigger.CONNECT, S.SYN_SENT)  # the legal edge passes


def test_trigger_must_be_a_trigger() -> None:
    # A typo in a cause cannot be written: the vocabulary refuses it before the table is even consulted.
    with pytest.raises(ValueError):
        Trigger("conect()")


def test_state_is_read_only_outside_the_one_writer() -> None:
    ep = Endpoint(LINUX, "a", 1, "b", 2, 100, 0.0)
    with pytest.raises(AttributeError):
        ep.state = S.ESTABLISHED  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------
# Opening (§3.5)
# ---------------------------------------------------------------------------------------------------------
def test_handshake_segments_and_states() -> None:
    p, c, s = established()
    syn, synack, ack = p.sent()[:3]
    assert syn.flag_str == "S" and syn.seq == c.iss and syn.mss == 1460 and syn.timestamps is not None
    assert synack.flag_str == "SA" and synack.seq == s.iss and synack.ack == (c.iss + 1) & 0xFFFFFFFF
    assert ack.flag_str == "A" and ack.ack == (s.iss + 1) & 0xFFFFFFFF
    assert c.ts_ok and s.ts_ok


def test_syn_sent_rst_with_acceptable_ack_is_refused() -> None:
    p = Pair()
    c = p.a.connect(B_ADDR, 81, 0.0)  # nobody listens on 81: B's stack answers RST,ACK (§3.10.7.1)
    p.advance(1.0)
    assert c.state is S.CLOSED and c.error == "ECONNREFUSED"
    assert p.flags("B") == ["RA"]


def test_syn_sent_bad_ack_gets_rst() -> None:
    ep = Endpoint.active(LINUX, "a", 1000, "b", 80, 5000, 0.0)
    ep.segments_to_send(0.0)
    ep.receive(TcpSegment(80, 1000, 1, 12345, ACK, 100), 0.1)
    out = ep.segments_to_send(0.1)
    assert [s.flag_str for s in out] == ["R"] and out[0].seq == 12345 and ep.state is S.SYN_SENT


def test_syn_sent_retransmits_with_backoff_and_gives_up_like_linux() -> None:
    """Linux 6.x: tcp_syn_linear_timeouts=4 keeps the first retransmissions 1 s apart, then backs off, and adds
    four retries to tcp_syn_retries=6 (SYNs measured in the lab at 0, 1, 2, 3, 4, 5, 7, 11, 19 s); ETIMEDOUT at
    131 s. Without linear timeouts (older kernels): 0, 1, 3, ..., 63 s and 127 s (tcp_model_timeout)."""
    p = Pair()
    p.filter = lambda sender, seg: sender != "A"  # black hole A -> B
    c = p.a.connect(B_ADDR, 80, 0.0)
    p.advance(200.0)
    times = [t for (t, n, s) in p.log if n == "A"]
    assert times == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0, 35.0, 67.0]
    assert c.state is S.CLOSED and c.error == "ETIMEDOUT"
    assert [t for t, _ in p.evs("A", ConnectionError)] == [131.0]
    old = LINUX.with_(syn_linear_timeouts=0)
    p = Pair(old, old)
    p.filter = lambda sender, seg: sender != "A"
    c = p.a.connect(B_ADDR, 80, 0.0)
    p.advance(200.0)
    assert [t for (t, n, s) in p.log if n == "A"] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0]
    assert [t for t, _ in p.evs("A", ConnectionError)] == [127.0]


def test_simultaneous_open_four_segments_rfc_six_linux() -> None:
    """RFC 793 Figure 8: SYNs cross, SYN-ACKs cross, done (4). Linux also ACKs each SYN-ACK (6), measured in the lab."""
    for cfg, want in ((RFC, ["S", "S", "SA", "SA"]), (LINUX, ["A", "A", "S", "S", "SA", "SA"])):
        p = Pair(cfg, cfg)
        a = p.a.connect(B_ADDR, 6000, 0.0, sport=5000)
        b = p.b.connect("198.18.0.1", 5000, 0.0, sport=6000)
        p.advance(1.0)
        assert a.state is S.ESTABLISHED and b.state is S.ESTABLISHED
        assert sorted(p.flags()) == want


def test_isn_rfc6528_differs_per_tuple_and_moves_with_time() -> None:
    k = b"k" * 32
    a = isn_rfc6528(k, "a", 1, "b", 2, 0.0)
    assert a != isn_rfc6528(k, "a", 3, "b", 2, 0.0)
    assert (isn_rfc6528(k, "a", 1, "b", 2, 1.0) - a) & 0xFFFFFFFF == 250_000  # 4 us clock (RFC 9293 §3.4.1)


# ---------------------------------------------------------------------------------------------------------
# ESTABLISHED: data, windows, RFC 5961
# ---------------------------------------------------------------------------------------------------------
def test_established_data_both_ways() -> None:
    p, c, s = established()
    c.send(b"hello", p.now)
    s.send(b"world!", p.now)
    p.flush("A")
    p.flush("B")
    p.advance(p.now + 1)
    assert s.recv() == b"hello" and c.recv() == b"world!"


def test_established_segments_respect_mss() -> None:
    p, c, s = established(LINUX.with_(mss=500), LINUX)
    c.send(bytes(1200), p.now)
    p.flush("A")
    p.advance(p.now + 1)
    # Both ends use timestamps (the Linux default): every segment carries 12 bytes of option, which the sender
    # takes from the MSS (RFC 6691 §2; Linux mss_cache 1448 for MSS 1460).
    assert [len(x.payload) for x in p.sent("A") if x.payload] == [488, 488, 224]
    assert s.recv() == bytes(1200)


def test_segments_fill_the_mss_without_timestamps() -> None:
    p, c, s = established(LINUX.with_(mss=500, timestamps=False), LINUX)
    c.send(bytes(1200), p.now)
    p.flush("A")
    p.advance(p.now + 1)
    assert [len(x.payload) for x in p.sent("A") if x.payload] == [500, 500, 200]
    assert s.recv() == bytes(1200)


def test_established_in_window_rst_gets_challenge_ack() -> None:
    """RFC 5961 §3.2: a RST whose seq is in the window but not exactly RCV.NXT is answered with an ACK."""
    p, c, s = established()
    rst = TcpSegment(80, c.lport, (c.rcv_nxt + 10) & 0xFFFFFFFF, 0, RST, 0)
    c.receive(rst, p.now)
    out = c.segments_to_send(p.now)
    assert c.state is S.ESTABLISHED and [x.flag_str for x in out] == ["A"]
    c.receive(rst.with_(seq=c.rcv_nxt), p.now)  # exact: reset
    assert c.state is S.CLOSED and c.error == "ECONNRESET"


def test_established_out_of_window_rst_is_ignored() -> None:
    p, c, s = established()
    c.receive(TcpSegment(80, c.lport, (c.rcv_nxt + 10**6) & 0xFFFFFFFF, 0, RST, 0), p.now)
    assert c.state is S.ESTABLISHED and c.segments_to_send(p.now) == []


def test_established_syn_gets_challenge_ack_not_reset() -> None:
    """RFC 5961 §4.2: any SYN in a synchronized state gets a challenge ACK."""
    p, c, s = established()
    c.receive(TcpSegment(80, c.lport, c.rcv_nxt, 0, SYN, 1000), p.now)
    assert c.state is S.ESTABLISHED and [x.flag_str for x in c.segments_to_send(p.now)] == ["A"]


def test_challenge_ack_rate_limited() -> None:
    p, c, s = established(LINUX.with_(challenge_ack_limit=3))
    for _ in range(10):
        c.receive(TcpSegment(80, c.lport, c.rcv_nxt, 0, SYN, 1000), p.now)
    assert len(c.segments_to_send(p.now)) == 3


def test_ack_beyond_snd_max_is_answered_and_ignored_rfc() -> None:
    """RFC 9293 §3.10.7.4 fifth step / RFC 5961 §5: an ACK for data never sent -> send ACK, drop."""
    p, c, s = established(RFC, RFC)
    una = c.snd_una
    c.receive(TcpSegment(80, c.lport, c.rcv_nxt, (c.snd_max + 1000) & 0xFFFFFFFF, ACK, 1000), p.now)
    assert c.snd_una == una and [x.flag_str for x in c.segments_to_send(p.now)] == ["A"]


def test_ack_beyond_snd_max_is_answered_linux_too() -> None:
    """Linux 6.18 (measured in the lab, ack-unsent-data): the same as RFC 9293 — an ACK back, the segment and its
    text dropped."""
    p, c, s = established()
    una, nxt = c.snd_una, c.rcv_nxt
    c.receive(
        TcpSegment(80, c.lport, c.rcv_nxt, (c.snd_max + 1000) & 0xFFFFFFFF, ACK | PSH, 1000, (), b"x"), p.now
    )
    out = c.segments_to_send(p.now)
    assert c.snd_una == una and c.rcv_nxt == nxt and [x.flag_str for x in out] == ["A"] and out[0].ack == nxt


def test_unacceptable_segment_gets_ack() -> None:
    p, c, s = established()
    c.receive(
        TcpSegment(80, c.lport, (c.rcv_nxt - 5000) & 0xFFFFFFFF, c.snd_nxt, ACK, 1000, payload=b"x"), p.now
    )
    assert [x.flag_str for x in c.segments_to_send(p.now)] == ["A"] and c.readable == 0


def test_out_of_order_data_is_reassembled() -> None:
    p, c, s = established()
    base = s.rcv_nxt
    s.receive(TcpSegment(c.lport, 80, (base + 3) & 0xFFFFFFFF, s.snd_nxt, ACK, 1000, payload=b"def"), p.now)
    assert s.readable == 0
    s.receive(TcpSegment(c.lport, 80, base, s.snd_nxt, ACK, 1000, payload=b"abc"), p.now)
    assert s.recv() == b"abcdef"


def test_rto_estimator_follows_rfc6298() -> None:
    r = RttEstimator(1.0, 0.2, 120.0)
    assert r.current() == 1.0  # §2.1
    r.sample(0.5)  # §2.2: SRTT=R, RTTVAR=R/2, RTO=SRTT+4*RTTVAR
    assert r.srtt == 0.5 and r.rttvar == 0.25 and r.current() == pytest.approx(1.5)
    r.sample(0.5)  # §2.3
    assert r.rttvar == pytest.approx(0.75 * 0.25) and r.srtt == pytest.approx(0.5)
    r.back_off()
    assert r.current() == pytest.approx(2 * (0.5 + 4 * 0.1875))
    for _ in range(20):
        r.back_off()
    assert r.current() == 120.0  # §2.5 maximum (Linux TCP_RTO_MAX)


def test_linux_retrans_timeout_model() -> None:
    assert linux_retrans_timeout(15, 0.2) == pytest.approx(924.6)
    assert linux_retrans_timeout(6, 1.0) == pytest.approx(127.0)


def test_established_retransmits_until_retries2_linux() -> None:
    """A silent peer: data is retransmitted with doubling RTO capped at 120 s, and the connection gives up after
    tcp_retries2=15's 924.6 s budget (tcp_model_timeout with TCP_RTO_MIN)."""
    p, c, s = established()
    t0 = p.now
    p.filter = lambda sender, seg: sender != "B"  # B -> A lost: A's data never acknowledged
    c.send(b"x" * 100, p.now)
    p.flush("A")
    p.advance(t0 + 2000)
    times = [t for (t, n, seg) in p.log if n == "A" and seg.payload]
    gaps = [round(b - a, 3) for a, b in zip(times, times[1:], strict=False)]
    assert all(g2 >= g1 for g1, g2 in zip(gaps, gaps[1:], strict=False)) and max(gaps) == pytest.approx(120.0)
    ((t_err, ev),) = p.evs("A", ConnectionError)
    assert ev.errno == "ETIMEDOUT"  # type: ignore[attr-defined]
    assert t_err - times[0] == pytest.approx(924.6, abs=0.5) or t_err - times[0] >= 924.6
    assert t_err - times[0] < 924.6 + 120


def test_user_timeout_gives_up_early() -> None:
    """TCP_USER_TIMEOUT: Linux counts it from the first RTO retransmission (retrans_stamp; the tail loss probe
    before it does not count) and clamps the RTO to it: ETIMEDOUT 30 s after that retransmission."""
    p, c, s = established(LINUX.with_(user_timeout=30.0))
    t0 = p.now
    p.filter = lambda sender, seg: sender != "B"
    c.send(b"x" * 100, p.now)
    p.flush("A")
    p.advance(t0 + 100)
    ((t_err, ev),) = p.evs("A", ConnectionError)
    sends = [t for (t, n, seg) in p.log if n == "A" and seg.payload]  # data, loss probe, first RTO, ...
    assert t_err - sends[2] == pytest.approx(30.0)


def test_user_timeout_rfc_counts_from_the_data() -> None:
    """RFC 5482: how long transmitted data may stay unacknowledged: ETIMEDOUT 30 s after the data was sent."""
    p, c, s = established(RFC.with_(user_timeout=30.0), RFC)
    t0 = p.now
    p.filter = lambda sender, seg: sender != "B"
    c.send(b"x" * 100, p.now)
    p.flush("A")
    p.advance(t0 + 100)
    ((t_err, ev),) = p.evs("A", ConnectionError)
    assert t_err - t0 == pytest.approx(30.0)


def test_rfc_profile_counts_retransmissions() -> None:
    cfg = RFC.with_(retries2=3)
    p, c, s = established(cfg, cfg)
    p.filter = lambda sender, seg: sender != "B"
    c.send(b"x", p.now)
    p.flush("A")
    p.advance(p.now + 500)
    assert len([x for x in p.sent("A") if x.payload]) == 4  # original + 3 retransmissions
    assert c.error == "ETIMEDOUT"


def test_zero_window_persist_probe_then_window_opens() -> None:
    p, c, s = established(LINUX, LINUX.with_(rcv_buf=1000))
    c.send(bytes(3000), p.now)
    p.flush("A")
    p.advance(p.now + 5)
    assert s.readable == 1000 and c.snd_wnd == 0
    probes = [x for x in p.sent("A") if not x.payload and x.seq == (c.snd_una - 1) & 0xFFFFFFFF]
    assert probes, "zero-window probes (SEG.SEQ = SND.UNA - 1) are sent"
    s.recv()  # the application reads: window update
    p.flush("B")
    p.advance(p.now + 20)
    got = s.recv()
    while s.readable:
        got += s.recv()
        p.flush("B")
        p.advance(p.now + 5)
    assert c.snd_una == c.snd_max


def test_keepalive_detects_dead_peer_at_time_plus_intvl_times_probes() -> None:
    """Linux keepalive: probes at time, time+intvl, ...; ETIMEDOUT at time + intvl*probes after the last ACK."""
    cfg = LINUX.with_(keepalive=True, keepalive_time=60.0, keepalive_intvl=10.0, keepalive_probes=3)
    p, c, s = established(cfg)
    t_last = p.now - p.delay  # A last heard from B when the SYN-ACK arrived... use c.last_rcv
    t_last = c.last_rcv
    p.filter = lambda sender, seg: sender != "B"  # B is gone
    p.advance(t_last + 1000)
    ((t_err, ev),) = p.evs("A", ConnectionError)
    assert t_err - t_last == pytest.approx(60 + 10 * 3)
    probes = [x for x in p.sent("A") if x.flag_str == "A" and x.seq == (c.snd_max - 1) & 0xFFFFFFFF]
    assert len(probes) == 3


def test_keepalive_probe_answered_keeps_connection() -> None:
    cfg = LINUX.with_(keepalive=True, keepalive_time=60.0, keepalive_intvl=10.0, keepalive_probes=3)
    p, c, s = established(cfg)
    p.advance(p.now + 1000)
    assert c.state is S.ESTABLISHED and len([x for x in p.sent("B") if x.flag_str == "A"]) >= 10


# ---------------------------------------------------------------------------------------------------------
# Closing (§3.6)
# ---------------------------------------------------------------------------------------------------------
def test_close_four_way_and_time_wait_length() -> None:
    p, c, s = established(LINUX.with_(time_wait=5.0))
    c.close(p.now)
    p.flush("A")
    p.advance(p.now + 0.5)
    assert c.state is S.FIN_WAIT_2 and s.state is S.CLOSE_WAIT
    s.close(p.now)
    p.flush("B")
    p.advance(p.now + 0.2)
    assert c.state is S.TIME_WAIT and s.state is S.CLOSED
    t_tw = c.timers.deadline(TimerName.TIME_WAIT)
    p.advance(t_tw + 0.01)
    assert c.state is S.CLOSED


def test_time_wait_restarts_on_retransmitted_fin() -> None:
    p, c, s = established(LINUX.with_(time_wait=60.0))
    c.close(p.now)
    p.flush("A")
    p.advance(p.now + 0.5)
    s.close(p.now)
    drop_last_ack = {"n": 1}

    def lose_one_ack(sender: str, seg: TcpSegment) -> bool:
        if sender == "A" and seg.flag_str == "A" and drop_last_ack["n"]:
            drop_last_ack["n"] = 0
            return False
        return True

    p.filter = lose_one_ack
    p.flush("B")
    p.advance(p.now + 0.11)
    first_deadline = c.timers.deadline(TimerName.TIME_WAIT)
    p.advance(p.now + 5)
    assert s.state is S.CLOSED and s.error is None
    assert (
        c.timers.deadline(TimerName.TIME_WAIT) > first_deadline
    )  # restarted by the retransmitted FIN (§3.10.7.4)


def test_fin_wait_2_orphan_timeout_is_fin_timeout_not_time_wait() -> None:
    p, c, s = established(LINUX.with_(fin_timeout=30.0, time_wait=60.0))
    c.close(p.now)
    p.flush("A")
    p.advance(p.now + 0.2)
    assert c.state is S.FIN_WAIT_2
    t = p.now
    p.advance(t + 29)
    assert c.state is S.FIN_WAIT_2
    p.advance(t + 31)
    assert c.state is S.CLOSED


def test_fin_wait_2_after_shutdown_has_no_orphan_timeout() -> None:
    p, c, s = established(LINUX.with_(fin_timeout=30.0))
    c.shutdown(p.now)
    p.flush("A")
    p.advance(p.now + 1000)
    assert c.state is S.FIN_WAIT_2  # not orphaned: the application may still read


def test_half_close_data_after_shutdown_is_received() -> None:
    p, c, s = established()
    c.shutdown(p.now)
    p.flush("A")
    p.advance(p.now + 0.2)
    s.send(b"more data", p.now)
    p.flush("B")
    p.advance(p.now + 0.2)
    assert s.state is S.CLOSE_WAIT and c.recv() == b"more data"
    with pytest.raises(LocalProtocolError):
        c.send(b"x", p.now)


def test_simultaneous_close_goes_through_closing() -> None:
    p, c, s = established()
    c.close(p.now)
    s.close(p.now)
    p.flush("A")
    p.flush("B")
    p.advance(p.now + 0.3)
    assert c.state is S.TIME_WAIT and s.state is S.TIME_WAIT


def test_abort_sends_rst_and_leaves_no_time_wait() -> None:
    p, c, s = established()
    c.abort(p.now)
    p.flush("A")
    p.advance(p.now + 0.2)
    assert c.state is S.CLOSED and p.flags("A")[-1] == "RA"
    assert s.state is S.CLOSED and s.error == "ECONNRESET"


def test_close_with_unread_data_sends_rst_linux() -> None:
    p, c, s = established()
    c.send(b"unread", p.now)
    p.flush("A")
    p.advance(p.now + 0.2)
    s.close(p.now)  # B never read: Linux resets instead of FIN
    p.flush("B")
    p.advance(p.now + 0.2)
    assert p.flags("B")[-1] == "RA" and c.error == "ECONNRESET"


def test_data_after_close_is_answered_with_rst_linux() -> None:
    p, c, s = established()
    s.close(p.now)
    p.flush("B")
    p.advance(p.now + 0.2)
    assert s.state is S.FIN_WAIT_2 and c.state is S.CLOSE_WAIT
    c.send(b"heartbeat", p.now)
    p.flush("A")
    p.advance(p.now + 0.2)
    # Linux answers with the stateless reset (<SEQ=SEG.ACK><CTL=RST>, measured in the lab), and tcp_reset: a RST
    # in CLOSE_WAIT reports EPIPE (the next write says "Broken pipe").
    rst = p.sent("B")[-1]
    assert rst.flag_str == "R" and rst.seq == s.snd_max and rst.options == () and rst.window == 0
    assert s.state is S.CLOSED and c.error == "EPIPE"


def test_time_wait_zero_acks_then_forgets() -> None:
    p, c, s = established(LINUX.with_(time_wait=0.0))
    c.close(p.now)
    p.flush("A")
    p.advance(p.now + 0.2)
    s.close(p.now)
    p.flush("B")
    p.advance(p.now + 0.2)
    assert c.state is S.CLOSED and s.state is S.CLOSED and p.flags("A")[-1] == "A"


# ---------------------------------------------------------------------------------------------------------
# Listener: SYN queue, accept queue, syncookies; stack: ports, TIME_WAIT reuse
# ---------------------------------------------------------------------------------------------------------
def test_accept_queue_overflow_drops_final_ack() -> None:
    p = Pair(LINUX, LINUX.with_(syncookies=0))
    lst = p.b.listen(80, backlog=1)
    clients = [p.a.connect(B_ADDR, 80, 0.0)]
    p.advance(0.5)
    # Two more at once: both SYNs fit the SYN queue (backlog + 1 = 2 entries), but backlog 1 -> 2 fit in the
    # accept queue (Linux: full when > backlog), which already holds one: the third's final ACK is dropped.
    clients += [p.a.connect(B_ADDR, 80, p.now) for _ in range(2)]
    p.advance(1.0)
    assert len(lst.accept_queue) == 2
    assert all(c.state is S.ESTABLISHED for c in clients)  # the client cannot tell
    assert lst.stats["ListenOverflows"] >= 1
    assert len(lst.syn_queue) == 1  # the third stays SYN_RCVD and retransmits its SYN-ACK
    p.advance(3.0)
    assert len([x for x in p.sent("B") if x.flag_str == "SA"]) > 3


def test_small_backlog_with_syncookies_sends_cookies() -> None:
    """Linux: with syncookies the SYN queue is full beyond `backlog` requests (backlog + 1 fit); further SYNs
    get cookies (inet_csk_reqsk_queue_is_full compares with >; measured on Linux 6.18)."""
    p = Pair()
    lst = p.b.listen(80, backlog=1)
    for _ in range(3):
        p.a.connect(B_ADDR, 80, 0.0)
    p.advance(0.5)
    assert (
        lst.stats["SyncookiesSent"] == 1 and len(lst.accept_queue) == 2 and lst.stats["ListenOverflows"] == 1
    )


def test_syn_queue_full_without_cookies_drops_syn() -> None:
    # Without cookies: beyond backlog + 1 entries (TCPReqQFullDrop) ...
    cfg = LINUX.with_(syncookies=0)
    p = Pair(LINUX, cfg)
    lst = p.b.listen(80, backlog=2)
    p.filter = lambda sender, seg: sender != "A" or seg.flag_str == "S"  # clients never complete
    for _ in range(5):
        p.a.connect(B_ADDR, 80, 0.0)
    p.advance(0.2)
    assert len(lst.syn_queue) == 3 and lst.stats["TCPReqQFullDrop"] == 2
    # ... or once less than a quarter of tcp_max_syn_backlog would be left (ListenDrops only): 8 - 2 + 1 = 7 fit.
    cfg = LINUX.with_(syncookies=0, max_syn_backlog=8)
    p = Pair(LINUX, cfg)
    lst = p.b.listen(80)
    p.filter = lambda sender, seg: sender != "A" or seg.flag_str == "S"
    for _ in range(9):
        p.a.connect(B_ADDR, 80, 0.0)
    p.advance(0.2)
    assert len(lst.syn_queue) == 7 and lst.stats["ListenDrops"] == 2 and lst.stats["TCPReqQFullDrop"] == 0


def test_syncookies_complete_handshake_without_state() -> None:
    cfg = LINUX.with_(syncookies=2)
    p = Pair(LINUX, cfg)
    lst = p.b.listen(80)
    c = p.a.connect(B_ADDR, 80, 0.0)
    p.advance(0.5)
    assert lst.stats["SyncookiesSent"] == 1 and lst.stats["SyncookiesRecv"] == 1
    s = p.b.accept(80)
    assert s is not None and s.state is S.ESTABLISHED and c.state is S.ESTABLISHED
    c.send(b"hi", p.now)
    p.flush("A")
    p.advance(p.now + 0.5)
    assert s.recv() == b"hi"


def test_ephemeral_port_exhaustion_is_eaddrnotavail() -> None:
    p = Pair()
    p.a.port_range = (40000, 40002)
    p.b.listen(80)
    for _ in range(3):
        c = p.a.connect(B_ADDR, 80, p.now)
        p.advance(p.now + 0.3)
        c.close(p.now)
        p.flush("A")
        p.advance(p.now + 0.3)
        s = p.b.accept(80)
        s.close(p.now)  # type: ignore[union-attr]
        p.flush("B")
        p.advance(p.now + 1)
    assert p.a.state_counts() == {"TIME_WAIT": 3}
    with pytest.raises(ConnectError) as ei:
        p.a.connect(B_ADDR, 80, p.now)
    assert ei.value.errno == "EADDRNOTAVAIL"


def test_tw_reuse_takes_over_time_wait_port_for_outgoing() -> None:
    cfg = LINUX.with_(tw_reuse=1)
    p = Pair(cfg, LINUX)
    p.a.port_range = (40000, 40000)
    p.b.listen(80)
    c = p.a.connect(B_ADDR, 80, 0.0)
    p.advance(0.3)
    c.close(p.now)
    p.flush("A")
    p.advance(p.now + 1.0)
    s_old = p.b.accept(80)
    assert s_old is not None
    s_old.close(p.now)
    p.flush("B")
    p.advance(p.now + 2.0)
    assert c.state is S.TIME_WAIT
    c2 = p.a.connect(B_ADDR, 80, p.now)  # 1 s later: tw_reuse allows it (timestamps on)
    p.advance(p.now + 0.5)
    assert c2.state is S.ESTABLISHED and p.a.counters["TWReused"] == 1


def test_tw_reuse_needs_timestamps() -> None:
    cfg = LINUX.with_(tw_reuse=1, timestamps=False)
    p = Pair(cfg, LINUX.with_(timestamps=False))
    p.a.port_range = (40000, 40000)
    p.b.listen(80)
    c = p.a.connect(B_ADDR, 80, 0.0)
    p.advance(0.3)
    c.close(p.now)
    p.flush("A")
    p.advance(p.now + 2.0)
    s_old = p.b.accept(80)
    s_old.close(p.now)  # type: ignore[union-attr]
    p.flush("B")
    p.advance(p.now + 2.0)
    with pytest.raises(ConnectError):
        p.a.connect(B_ADDR, 80, p.now)


def test_time_wait_yields_to_new_syn_on_server() -> None:
    """Server-side TIME_WAIT accepts a new SYN with a higher timestamp (RFC 6191; Linux TCP_TW_SYN)."""
    p = Pair()
    p.b.listen(80)
    c = p.a.connect(B_ADDR, 80, 0.0, sport=5555)
    p.advance(0.3)
    s = p.b.accept(80)
    s.close(p.now)  # type: ignore[union-attr]
    p.flush("B")
    p.advance(p.now + 0.3)
    c.close(p.now)
    p.flush("A")
    p.advance(p.now + 0.3)
    assert s.state is S.TIME_WAIT  # type: ignore[union-attr]
    p.a.conns.clear()  # the client forgets (e.g. it was never in TIME_WAIT: it was the passive closer)
    c2 = p.a.connect(B_ADDR, 80, p.now + 5, sport=5555)
    p.advance(p.now + 6)
    assert c2.state is S.ESTABLISHED and p.b.counters["TWKilledBySyn"] == 1


def test_endpoint_config_names_match_sysctls() -> None:
    from tcpwise.endpoint.config import SYSCTL_OF

    assert set(SYSCTL_OF) <= set(EndpointConfig.field_names())


def test_send_on_closed_raises_local_error() -> None:
    ep = Endpoint(LINUX, "a", 1, "b", 2, 100, 0.0)
    with pytest.raises(LocalProtocolError):
        ep.send(b"x", 0.0)


def test_fin_flag_constants() -> None:
    assert (FIN, SYN, RST, ACK) == (1, 2, 4, 16)


def test_ack_echoes_the_latest_in_order_timestamp() -> None:
    """RFC 7323 §4.3: TS.Recent follows in-order segments, so a late ACK echoes a recent TSval (not the SYN's)."""
    p, c, s = established(LINUX, LINUX)
    p.advance(p.now + 5)
    c.send(b"x" * 100, p.now)
    p.flush("A")
    p.advance(p.now + 1)
    data = [x for t, name, x in p.log if name == "A" and x.payload][-1]
    ack = [x for t, name, x in p.log if name == "B" and not x.payload][-1]
    assert data.timestamps is not None and ack.timestamps is not None
    assert ack.timestamps[1] == data.timestamps[0]


def _bulk_with_losses(drop_nth: set[int]):  # type: ignore[no-untyped-def]
    """A sends 40 segments' worth; the data segments numbered in ``drop_nth`` (first transmission) are lost."""
    p, c, s = established(LINUX.with_(mss=1000, timestamps=False), LINUX.with_(rcv_buf=1 << 20))
    seen: list[int] = []

    def lose(sender: str, seg: TcpSegment) -> bool:
        if sender != "A" or not seg.payload:
            return True
        if seg.seq in seen:
            return True  # a retransmission gets through
        seen.append(seg.seq)
        return len(seen) not in drop_nth

    p.filter = lose
    c.send(bytes(40_000), p.now)
    p.flush("A")
    p.advance(p.now + 5)
    return p, c, s


def test_newreno_repairs_two_holes_in_one_window_without_a_timeout() -> None:
    """RFC 6582: the partial ACK after the first retransmission names the second hole, which is resent at once."""
    p, c, s = _bulk_with_losses({3, 6})
    assert s.recv() == bytes(40_000)
    assert not [e for _, e in p.evs("A", TimerFired) if e.name == "rto"]


def test_limited_transmit_gives_three_duplicates_in_a_small_window() -> None:
    """RFC 3042: the 2nd and 3rd data segments are lost from an initial window of 3 (cwnd 3 x MSS)."""
    p, c, s = established(LINUX.with_(mss=1000, timestamps=False), LINUX)
    c.cwnd = 3000
    seen: list[int] = []

    def lose(sender: str, seg: TcpSegment) -> bool:
        if sender == "A" and seg.payload and seg.seq not in seen:
            seen.append(seg.seq)
            return len(seen) != 1
        return True

    p.filter = lose
    c.send(bytes(10_000), p.now)
    p.flush("A")
    p.advance(p.now + 5)
    assert s.recv() == bytes(10_000)
    assert not [e for _, e in p.evs("A", TimerFired) if e.name == "rto"]

"""The tracker's derivations on hand-made tracepoint sequences (the orders the kernel produces them in)."""

from __future__ import annotations

import socket

import pytest

from tcpwise.linux.tasks import TaskInfo
from tcpwise.watch import tracker as tr
from tcpwise.watch.metrics import WatchMetrics
from tcpwise.watch.record import ConnRecord
from tcpwise.watch.tracker import (
    CLOSE,
    CLOSING,
    CW,
    EST,
    FW1,
    FW2,
    LA,
    LISTEN,
    SYN_RECV,
    SYN_SENT,
    Filter,
    Tracker,
)

IDS = {"state": 1, "send_reset": 2, "receive_reset": 3, "retransmit": 4, "retransmit_synack": 5, "destroy": 6}
LO = b"\x7f\x00\x00\x01"
SOFTIRQ = 0x10
MS = 1_000_000


class FakeTasks:
    """tid -> (tgid, comm, netns) without /proc."""

    def __init__(self, table: dict[int, TaskInfo]) -> None:
        self.table = table

    def get(self, tid: int, now_ns: int) -> TaskInfo | None:
        return self.table.get(tid)


def state(sk: int, old: int, new: int, sport: int, dport: int, pid: int = 100, flags: int = 0) -> tuple:  # type: ignore[type-arg]
    return (1, flags, 0, pid, sk, old, new, sport, dport, socket.AF_INET, 6, LO, LO, b"\0" * 16, b"\0" * 16)


def sent_rst(sk: int, st: int, reason: int = 11, pid: int = 100, flags: int = 0) -> tuple:  # type: ignore[type-arg]
    return (2, flags, 0, pid, sk, st, reason, b"", b"")


def recv_rst(sk: int, pid: int = 0) -> tuple:  # type: ignore[type-arg]
    return (3, SOFTIRQ, 0, pid, sk, 0, 0, socket.AF_INET)


def rtx(sk: int, st: int) -> tuple:  # type: ignore[type-arg]
    return (4, SOFTIRQ, 0, 0, sk, st, 0, 0, socket.AF_INET)


def destroy(sk: int, flags: int = SOFTIRQ, pid: int = 0) -> tuple:  # type: ignore[type-arg]
    return (6, flags, 0, pid, sk, 0, 0, socket.AF_INET)


def run(
    events: list[tuple], tasks: dict[int, TaskInfo] | None = None, filt: Filter | None = None, **kw
) -> list[ConnRecord]:  # type: ignore[type-arg, no-untyped-def]
    out: list[ConnRecord] = []
    t = Tracker(IDS, out.append, wall_offset=0.0, tasks=FakeTasks(tasks or {}), filt=filt, **kw)  # type: ignore[arg-type]
    recs = [(i * MS, e) for i, e in enumerate(events)]
    t.feed(recs)
    t.advance(len(events) * MS + 100 * MS)
    t.flush()
    return out


C, S = 0xC0, 0x50  # client and server socket addresses
CP, SP = 40000, 80


def handshake() -> list[tuple]:  # type: ignore[type-arg]
    return [
        state(C, CLOSE, SYN_SENT, 0, SP),
        state(C, SYN_SENT, EST, CP, SP),
        state(S, LISTEN, SYN_RECV, SP, CP, flags=SOFTIRQ, pid=999),
        state(S, SYN_RECV, EST, SP, CP, flags=SOFTIRQ, pid=999),
    ]


def by_port(recs: list[ConnRecord], lport: int) -> ConnRecord:
    got = [r for r in recs if r.lport == lport]
    assert len(got) == 1, got
    return got[0]


def test_client_closes_first_and_the_peer_fin_decides_time_wait() -> None:
    # The client's FIN is ACKed alone (orphaned socket: handed to a FIN_WAIT_2 timewait socket at once); the
    # server's FIN comes later: TIME_WAIT from that moment.
    ev = handshake() + [
        state(C, EST, FW1, CP, SP),
        state(S, EST, CW, SP, CP, flags=SOFTIRQ),
        state(C, FW1, FW2, CP, SP, flags=SOFTIRQ),
        state(C, FW2, CLOSE, CP, SP, flags=SOFTIRQ),
        destroy(C),
        state(S, CW, LA, SP, CP, pid=200),
        state(S, LA, CLOSE, SP, CP, flags=SOFTIRQ),
        destroy(S),
    ]
    recs = run(ev, {100: TaskInfo((100, "client", 5)), 200: TaskInfo((200, "server", 5))})
    c, s = by_port(recs, CP), by_port(recs, SP)
    assert c.states() == ["CLOSED", "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert c.closer == "local" and c.time_wait is True and c.end_reason == "fin"
    assert c.transitions[-1].t == pytest.approx(9e-3)  # when the server sent its FIN
    assert s.states() == ["LISTEN", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert s.closer == "remote" and s.time_wait is False
    assert (c.pid, c.comm, s.pid, s.comm) == (100, "client", 200, "server")
    assert s.netns == 5  # from its own close() in process context


def test_handoff_without_a_local_peer_is_reported_as_unknown() -> None:
    ev = [
        state(C, CLOSE, SYN_SENT, 0, SP),
        state(C, SYN_SENT, EST, CP, SP),
        state(C, EST, FW1, CP, SP),
        state(C, FW1, FW2, CP, SP, flags=SOFTIRQ),
        state(C, FW2, CLOSE, CP, SP, flags=SOFTIRQ),
    ]
    ev[-1] = state(C, FW2, CLOSE, CP, SP, flags=SOFTIRQ)
    out: list[ConnRecord] = []
    t = Tracker(IDS, out.append, wall_offset=0.0, tasks=FakeTasks({}))  # type: ignore[arg-type]
    t.feed([(0, ev[0]), (1, ev[1]), (2, ev[2]), (3 * MS, ev[3]), (3 * MS + 5000, ev[4])])
    t.advance(500 * MS)
    (c,) = out
    assert c.end_reason == "handoff" and c.time_wait is None
    assert c.states()[-1] == "FIN_WAIT_2"


def test_fin_wait_2_held_for_a_while_then_closed_means_time_wait() -> None:
    out: list[ConnRecord] = []
    t = Tracker(IDS, out.append, wall_offset=0.0, tasks=FakeTasks({}))  # type: ignore[arg-type]
    t.feed(
        [
            (0, state(C, CLOSE, SYN_SENT, 0, SP)),
            (1, state(C, SYN_SENT, EST, CP, SP)),
            (2, state(C, EST, FW1, CP, SP)),
            (3, state(C, FW1, FW2, CP, SP, flags=SOFTIRQ)),
            (50 * MS, state(C, FW2, CLOSE, CP, SP, flags=SOFTIRQ)),  # the peer's FIN, much later
        ]
    )
    t.advance(200 * MS)
    (c,) = out
    assert c.states()[-2:] == ["FIN_WAIT_2", "TIME_WAIT"] and c.time_wait is True


def test_simultaneous_close_goes_through_closing_to_time_wait() -> None:
    ev = handshake() + [
        state(C, EST, FW1, CP, SP),
        state(S, EST, FW1, SP, CP),
        state(C, FW1, CLOSING, CP, SP, flags=SOFTIRQ),
        state(S, FW1, CLOSING, SP, CP, flags=SOFTIRQ),
        state(C, CLOSING, CLOSE, CP, SP, flags=SOFTIRQ),
        state(S, CLOSING, CLOSE, SP, CP, flags=SOFTIRQ),
    ]
    recs = run(ev)
    for r in recs:
        assert r.simultaneous_close and r.closer == "local" and r.time_wait is True
        assert r.states()[-3:] == ["FIN_WAIT_1", "CLOSING", "TIME_WAIT"]


def test_abortive_close_reset_is_attributed_to_the_state_before_close() -> None:
    # tcp_close with SO_LINGER {1,0}: the state becomes CLOSE first, then the RST is sent (state CLOSE).
    ev = handshake() + [
        state(S, EST, CLOSE, SP, CP, pid=200),
        recv_rst(C),
        state(C, EST, CLOSE, CP, SP, flags=SOFTIRQ),
        sent_rst(S, CLOSE, pid=200),
    ]
    recs = run(ev, filt=None, reset_reasons={11: "TCP_ABORT_ON_CLOSE"})
    s, c = by_port(recs, SP), by_port(recs, CP)
    assert [(r.dir, r.state, r.reason) for r in s.resets] == [("sent", "ESTABLISHED", "TCP_ABORT_ON_CLOSE")]
    assert [(r.dir, r.state) for r in c.resets] == [("received", "ESTABLISHED")]
    assert s.end_reason == c.end_reason == "reset" and s.closer == c.closer == "none"


def test_refused_retransmits_and_reused_socket_addresses() -> None:
    ev = [
        state(C, CLOSE, SYN_SENT, 0, 9),
        recv_rst(C),
        state(C, SYN_SENT, CLOSE, 41000, 9, flags=SOFTIRQ),
        # the same kernel address, reused at once for a new connection
        state(C, CLOSE, SYN_SENT, 0, SP),
        rtx(C, SYN_SENT),
        rtx(C, SYN_SENT),
        state(C, SYN_SENT, CLOSE, 41001, SP, flags=SOFTIRQ),
    ]
    recs = run(ev)
    assert [r.end_reason for r in recs] == ["refused", "timeout"]
    assert recs[1].retransmits == 2 and recs[0].retransmits == 0


def test_netns_of_a_server_socket_comes_from_its_loopback_peer() -> None:
    ev = handshake() + [
        state(C, EST, CLOSE, CP, SP),
        sent_rst(C, CLOSE),
        recv_rst(S),
        state(S, EST, CLOSE, SP, CP, flags=SOFTIRQ),
    ]
    recs = run(ev, {100: TaskInfo((100, "c", 77))})
    assert {r.netns for r in recs} == {77}
    only = run(ev, {100: TaskInfo((100, "c", 77))}, filt=Filter(netns=78))
    assert only == []


def test_softirq_context_never_names_a_process() -> None:
    ev = handshake()
    recs = run(ev, {999: TaskInfo((999, "bystander", 1))})
    s = by_port(recs, SP)
    assert s.pid is None and s.open  # the server socket only had softirq events: unknown, honestly


def test_metrics_count_derived_transitions_with_bounded_labels() -> None:
    m = WatchMetrics(top=1, min_count=1)
    ev = handshake() + [
        state(C, EST, FW1, CP, SP),
        state(S, EST, CW, SP, CP, flags=SOFTIRQ),
        state(S, CW, LA, SP, CP),
        state(C, FW1, FW2, CP, SP, flags=SOFTIRQ),
        state(C, FW2, CLOSE, CP, SP, flags=SOFTIRQ),
        state(S, LA, CLOSE, SP, CP, flags=SOFTIRQ),
    ]
    run(ev, metrics=m)
    snap = m.snapshot()
    assert snap["transitions"][("FIN_WAIT_2", "TIME_WAIT")] == 1
    assert ("FIN_WAIT_2", "CLOSED") not in snap["transitions"]  # the hand-off is not an end
    assert snap["duration_count"] == 2
    assert len(snap["peers"]) <= 1 and sum(snap["peers"].values()) + snap["other_peers"] == 2


def test_a_tracker_that_ignores_the_peer_fin_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TIME_WAIT check can fail: plant a tracker that never looks at the local peer."""
    ev = handshake() + [
        state(C, EST, FW1, CP, SP),
        state(S, EST, CW, SP, CP, flags=SOFTIRQ),
        state(C, FW1, FW2, CP, SP, flags=SOFTIRQ),
        state(C, FW2, CLOSE, CP, SP, flags=SOFTIRQ),
        state(S, CW, LA, SP, CP),
        state(S, LA, CLOSE, SP, CP, flags=SOFTIRQ),
    ]
    assert by_port(run(ev), CP).time_wait is True
    monkeypatch.setattr(tr.Tracker, "_peer_fin", lambda self, c, t: None)
    monkeypatch.setattr(tr.Tracker, "_fin_wait_2_end", _no_peer_fin_wait_2_end)
    assert by_port(run(ev), CP).time_wait is not True


def _no_peer_fin_wait_2_end(self: Tracker, c: tr.Conn, t: int) -> None:
    c.trans.pop()
    c.time_wait = None
    c.end_reason = "handoff"


def test_interim_records_for_long_connections_only() -> None:
    out: list[ConnRecord] = []
    t = Tracker(IDS, out.append, wall_offset=0.0, tasks=FakeTasks({}))  # type: ignore[arg-type]
    t.feed([(0, e) for e in handshake()])
    t.feed([(90 * 1000 * MS, state(0xD0, CLOSE, SYN_SENT, 0, 81))])  # a young one, 90 s later
    long_ = t.open_records(min_age_ns=60 * 1000 * MS)
    assert sorted(r.lport for r in long_) == [SP, CP] and all(r.open for r in long_)
    assert out == []  # interim rows are not the final records

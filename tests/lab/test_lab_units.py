"""Lab pieces that need no root: nft rule text, sysctl mapping, frame parsing, the agent on loopback."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time

import pytest

from tcpwise.endpoint.config import LINUX
from tcpwise.lab.capture import parse_frame
from tcpwise.lab.executor import socket_opts_for, sysctls_for
from tcpwise.lab.nft import flags_expr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_flags_expr_is_exact_equality() -> None:
    assert flags_expr("A") == "tcp flags == ack"
    assert flags_expr("FA") == "tcp flags == fin | ack"
    assert flags_expr("SA") == "tcp flags == syn | ack"
    with pytest.raises(ValueError, match="SFRPAUEC"):
        flags_expr("X")


def test_sysctls_follow_endpoint_config() -> None:
    cfg = LINUX.with_(fin_timeout=5.0, timestamps=False, tw_reuse=1, keepalive_time=30.0)
    sc = sysctls_for(cfg)
    assert sc["net.ipv4.tcp_fin_timeout"] == "5"
    assert sc["net.ipv4.tcp_timestamps"] == "0"
    assert sc["net.ipv4.tcp_tw_reuse"] == "1"
    assert sc["net.ipv4.tcp_keepalive_time"] == "30"
    assert not any(k.endswith("time_wait") for k in sc)  # TCP_TIMEWAIT_LEN is compiled in: no sysctl
    assert socket_opts_for(cfg.with_(keepalive=True))["keepalive"] is True


def test_parse_frame_ipv4_and_ipv6() -> None:
    from tcpwise.wire.ip import build_packet
    from tcpwise.wire.segment import MssOption, TcpSegment

    for src, dst, etype in (("198.18.0.1", "198.18.1.1", b"\x08\x00"), ("fd00::1", "fd00:1::1", b"\x86\xdd")):
        seg = TcpSegment(
            sport=40000, dport=80, seq=1000, ack=0, flags=0x02, window=64240, options=(MssOption(1460),)
        )
        frame = b"\x02" * 6 + b"\x04" * 6 + etype + build_packet(src, dst, seg)
        info = parse_frame(frame)
        assert info is not None
        assert (info.src, info.dst, info.sport, info.dport, info.seq, info.flags, info.len, info.win) == (
            src,
            dst,
            40000,
            80,
            1000,
            "S",
            0,
            64240,
        )
        assert info.opts == {"mss": 1460}
    assert parse_frame(b"\x00" * 10) is None  # truncated
    assert parse_frame(b"\x02" * 12 + b"\x08\x06" + b"\x00" * 28) is None  # ARP


def _agent() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tcpwise.lab.agent"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,  # unbuffered: select() on the pipe then tells the truth about unread lines
        env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")},
    )


def _until(p: subprocess.Popen[bytes], call: str, timeout: float = 5.0) -> list[dict[str, object]]:
    """Read reports until one with ``call`` (or the ready line, for call="ready")."""
    assert p.stdout is not None
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not select.select([p.stdout], [], [], max(0.0, end - time.monotonic()))[0]:
            break
        line = p.stdout.readline()
        if not line:
            break
        rep = json.loads(line)
        seen.append(rep)
        if rep.get("call") == call or (call == "ready" and rep.get("ready")):
            return seen
    raise AssertionError(f"agent never reported {call!r}: {seen}")


def test_agent_connect_send_eof_close_on_loopback() -> None:
    """The agent's socket steps against a plain server on 127.0.0.1 (no namespace needed)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    p = _agent()
    try:
        assert p.stdin is not None
        _until(p, "ready")

        def cmd(**kw: object) -> None:
            p.stdin.write((json.dumps(kw) + "\n").encode())  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]

        cmd(op="connect", sock="c", to="127.0.0.1", port=port, on_eof="close")
        reps = _until(p, "connected")
        assert reps[-1]["kstate"] == 1  # tcp_info says ESTABLISHED (include/net/tcp_states.h)
        conn, _ = srv.accept()
        cmd(op="send", sock="c", data=b"hello".hex())
        assert _until(p, "send")[-1]["nbytes"] == 5
        assert conn.recv(10) == b"hello"
        conn.sendall(b"hi")
        conn.shutdown(socket.SHUT_WR)  # server FIN: the agent reads EOF and, with on_eof=close, closes
        reps = _until(p, "close")
        calls = [(r["call"], r.get("nbytes")) for r in reps]
        assert ("recv", 2) in calls and ("eof", None) in calls
        eof = next(r for r in reps if r["call"] == "eof")
        assert eof["kstate"] == 8  # CLOSE_WAIT at the moment the application read EOF
        assert conn.recv(10) == b""  # the agent's FIN arrived
        cmd(op="close", sock="nope")
        assert _until(p, "error")[-1]["errno"] == "EBADF"
        cmd(op="accept", port=9)
        assert _until(p, "accept")[-1]["errno"] == "EINVAL"
        conn.close()
    finally:
        p.kill()
        p.wait()
        srv.close()


@pytest.mark.parametrize(
    "argv", [["lab", "run", "close"], ["lab", "conform"], ["lab", "demo", "time-wait"], ["lab", "clean"]]
)
def test_every_lab_command_needs_root_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    from tcpwise.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tcpwise: error:") and "root" in err[0]


def test_unknown_or_not_lab_scenario_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from tcpwise.cli import main
    from tcpwise.scenarios import catalogue

    assert main(["lab", "run", "no-such-scenario"]) == 2
    assert main(["lab", "run", "old-duplicate"]) == 2  # the kernel cannot play it: one line with the reason
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot run in the lab: the story needs" in err[-1] and "(lab-capable: " in err[-1]
    assert "old-duplicate" not in err[-1].split("lab-capable:")[1]
    assert len([s for s in catalogue() if s.lab]) >= 22


def test_conform_refuses_a_named_scenario_the_lab_cannot_run_as_lab_run_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``lab conform old-duplicate`` exited 0 with "0/1 scenarios conform" while ``lab run`` refused it."""
    from tcpwise.cli import main

    assert main(["lab", "conform", "old-duplicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "tcpwise: error: scenario 'old-duplicate' cannot run in the lab"
    )


@pytest.mark.parametrize("cmd", [["lab", "run", "close"], ["lab", "conform", "close"]], ids=" ".join)
@pytest.mark.parametrize("value", ["nan", "inf", "1e309", "0", "1e-12", "-1", "3601"])
def test_max_duration_is_finite_and_long_enough_to_run_something(cmd: list[str], value: str) -> None:
    """nan, inf and 1e309 were accepted by lab run; 0 and 1e-12 ran nothing and passed."""
    from tcpwise.cli import main

    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--max-duration", value])
    assert exc.value.code == 2


def test_a_run_that_observed_no_check_does_not_pass() -> None:
    from tcpwise.events import Check, Run
    from tcpwise.lab.conform import nothing_observed

    run = Run(scenario="close")
    assert not nothing_observed(run)  # no checks at all: nothing to claim either way
    run.checks = [Check("a", False, observed=False), Check("b", False, observed=False)]
    assert run.ok and nothing_observed(run)  # run.ok alone would call it a pass
    run.checks.append(Check("c", True))
    assert not nothing_observed(run)


def test_lab_run_cut_before_anything_happened_says_so_and_exits_1() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpwise.cli",
            "lab",
            "run",
            "close",
            "--max-duration",
            "0.1",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")},
    )
    assert r.returncode == 1, r.stderr
    assert "Nothing was checked: the lab run stopped at 0.1 s" in r.stderr.strip().splitlines()[-1]
    doc = json.loads(r.stdout)
    assert doc["summary"]["ok"] is False and doc["summary"]["text"].startswith("Nothing was checked")


def _story(events: list) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    return [(e.conn, e.from_state, e.to_state) for e in events]


def test_state_recorder_implies_where_each_socket_was_born() -> None:
    """sock_diag polls become state events: a listener from CLOSED, a passive open from LISTEN (with or without
    its SYN-queue entry seen), an active open from CLOSED, a vanished socket to CLOSED."""
    from tcpwise.lab.observe import StateRecorder

    rec = StateRecorder("b", {"198.18.0.1": "a"})
    lst = ("198.18.0.2", 80, "0.0.0.0", 0)
    acc = ("198.18.0.2", 80, "198.18.0.1", 40000)
    act = ("198.18.0.2", 50000, "198.18.0.1", 22)
    assert _story(rec.diff(0.0, {lst: "LISTEN"})) == [("b:80 (listen)", "CLOSED", "LISTEN")]
    assert _story(rec.diff(1.0, {lst: "LISTEN", acc: "ESTABLISHED", act: "SYN_SENT"})) == [
        ("b:80>a:40000", "LISTEN", "ESTABLISHED"),
        ("b:50000>a:22", "CLOSED", "SYN_SENT"),
    ]
    got = rec.diff(2.0, {lst: "LISTEN", acc: "TIME_WAIT"})
    assert _story(got) == [
        ("b:80>a:40000", "ESTABLISHED", "TIME_WAIT"),
        ("b:50000>a:22", "SYN_SENT", "CLOSED"),
    ]
    assert [e.t for e in got] == [2.0, 2.0] and rec.last == {lst: "LISTEN", acc: "TIME_WAIT"}
    assert _story(rec.diff(3.0, {lst: "LISTEN", acc: "TIME_WAIT"})) == []  # no change, no event


def test_traced_records_count_only_for_connections_the_hosts_own_sock_diag_saw() -> None:
    """The tracepoints see every namespace: a concurrent run's connection credited to this host by its listener
    (same address and port) must not become a second connection of this host; this host's own traced
    connection replaces the polled states inside its life and keeps the SYN-queue entry before it."""
    from types import SimpleNamespace as NS

    from tcpwise.events import Event
    from tcpwise.lab.observe import StateRecorder, merge_traced
    from tcpwise.vocab import EventKind, TcpState

    rec = StateRecorder("B", {"198.18.0.1": "A"})

    def st(t: float, conn: str, a: str, b: str) -> Event:
        return Event(t, "B", EventKind.STATE, from_state=TcpState(a), to_state=TcpState(b), conn=conn)

    own = "B:80>A:40000"
    polled = [
        st(0.05, own, "LISTEN", "SYN_RCVD"),
        st(0.16, own, "SYN_RCVD", "ESTABLISHED"),
        st(3.61, own, "ESTABLISHED", "CLOSED"),
    ]

    def record(rport: int, times: list[tuple[float, str, str]]) -> NS:
        trans = [NS(t=100.0 + t, from_state=a, to_state=b) for t, a, b in times]
        return NS(laddr="198.18.0.2", lport=80, raddr="198.18.0.1", rport=rport, transitions=trans)

    life = [(0.15, "LISTEN", "SYN_RCVD"), (0.15, "SYN_RCVD", "ESTABLISHED"), (3.6, "ESTABLISHED", "CLOSED")]
    traced = {"B": [record(40000, life), record(41111, life)]}
    got = merge_traced(polled, traced, {"B": rec}, 100.0)
    assert {e.conn for e in got} == {own}
    assert sorted((round(e.t, 2), e.from_state, e.to_state) for e in got) == [
        (0.05, "LISTEN", "SYN_RCVD"),  # sock_diag's SYN-queue entry, before the traced life
        (0.15, "LISTEN", "SYN_RCVD"),
        (0.15, "SYN_RCVD", "ESTABLISHED"),
        (3.6, "ESTABLISHED", "CLOSED"),
        (3.61, "ESTABLISHED", "CLOSED"),  # after the traced life: kept (the executor's state chain folds it)
    ]


def test_polled_syn_queue_entries_take_the_time_of_their_syn() -> None:
    """Three SYNs within one poll interval: the polled entries all carry the poll's time (and the dump's hash
    order); each is moved to the arrival of the latest SYN delivered for it before the poll, so connections
    appear in wire order. A retransmitted SYN (the first dropped on a full queue) is the one that counts."""
    from tcpwise.events import Event, SegmentInfo
    from tcpwise.lab.observe import syn_queue_at_syn
    from tcpwise.vocab import EventKind, TcpState

    def syn(t: float, conn: str, flags: str = "S") -> Event:
        seg = SegmentInfo(src="A", dst="B", sport=1, dport=80, seq=0, ack=0, flags=flags, len=0, win=64240)
        return Event(t, "B", EventKind.RECV, segment=seg, conn=conn)

    def entry(t: float, conn: str) -> Event:
        return Event(
            t, "B", EventKind.STATE, from_state=TcpState.LISTEN, to_state=TcpState.SYN_RCVD, conn=conn
        )

    evs = [
        syn(0.4501, "B:80>A:3"),
        syn(0.4502, "B:80>A:1"),
        syn(0.4503, "B:80>A:2"),
        syn(0.4504, "B:80>A:1", "SA"),  # not a SYN that makes an entry
        entry(0.4530, "B:80>A:1"),
        entry(0.4530, "B:80>A:2"),
        entry(0.4530, "B:80>A:3"),
        syn(1.4501, "B:80>A:4"),  # dropped: the queue was full
        syn(3.4501, "B:80>A:4"),
        entry(3.4520, "B:80>A:4"),
        syn(9.0, "B:80>A:4"),  # after the poll: not this entry's SYN
    ]
    got = {e.conn: e.t for e in syn_queue_at_syn(evs) if e.kind == "state"}
    assert got == {"B:80>A:1": 0.4502, "B:80>A:2": 0.4503, "B:80>A:3": 0.4501, "B:80>A:4": 3.4501}

"""``doctor --watch``: CLOSE_WAIT leak vs churn with rates, TIME_WAIT rate against the port range.

Unit tests build watch records and a snapshot by hand; kernel tests make the conditions with real processes
(loopback addresses of their own, or a namespace with a narrow ip_local_port_range) and run the real CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tcpwise.doctor import watchdiag
from tcpwise.doctor.collect import Snapshot
from tcpwise.doctor.findings import Finding
from tcpwise.doctor.fixtures import ACCEPT_CLOSE, CLIENTS, SERVER_NO_CLOSE, Child, Netns, env_pythonpath
from tcpwise.linux.procfs import ProcInfo
from tcpwise.watch.record import ConnRecord, Transition

SYSCTLS = {"net.ipv4.ip_local_port_range": "40000 40099", "net.ipv4.tcp_tw_reuse": "2"}


def rec(lport: int, rport: int, states: list[str], t0: float, dt: float = 0.01, **kw: object) -> ConnRecord:
    trans = tuple(
        Transition(t0 + i * dt, a, b) for i, (a, b) in enumerate(zip(states, states[1:], strict=False))
    )
    base: dict[str, object] = dict(
        laddr="127.0.0.1",
        lport=lport,
        raddr="127.0.0.9",
        rport=rport,
        family=4,
        netns=1,
        pid=None,
        comm=None,
        role="server",
        start=t0,
        end=None if kw.get("open") else trans[-1].t,
        transitions=trans,
        closer="remote",
        simultaneous_close=False,
        time_wait=False,
        resets=(),
        retransmits=0,
        synack_retransmits=0,
        end_reason="fin",
        open=False,
        partial=False,
    )
    base.update(kw)
    return ConnRecord(**base)  # type: ignore[arg-type]


def empty_snap(procs: dict[int, ProcInfo] | None = None) -> Snapshot:
    return Snapshot(
        socks=[], procs=procs or {}, owners={}, counters={}, sockstat={}, sysctls=dict(SYSCTLS), taken=100.0
    )


SERVER_OPEN = ["LISTEN", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT"]


def test_entered_and_never_left_is_a_leak_with_its_rate() -> None:
    s = watchdiag.WatchSample(
        [rec(80, 5000 + i, SERVER_OPEN, 100 + i, open=True, pid=7, comm="api") for i in range(20)], 10.0
    )
    out = watchdiag.analyze(s, empty_snap({7: ProcInfo(7, "api", 30, 1024, [])}), [])
    (f,) = out
    assert f.id == "close-wait-leak" and f.pid == 7
    assert f.evidence["watch"]["verdict"] == "leak" and f.evidence["watch"]["entered_per_s"] == 2.0
    assert "Leak in api (pid 7) toward peer 127.0.0.9" in f.message


def test_entered_and_left_at_the_same_rate_is_churn() -> None:
    closes = SERVER_OPEN + ["LAST_ACK", "CLOSED"]
    s = watchdiag.WatchSample(
        [rec(80, 5000 + i, closes, 100 + i, pid=7, comm="api") for i in range(20)], 10.0
    )
    static = Finding("close-wait-leak", "warn", 7, "api holds 12 sockets in CLOSE_WAIT", {}, "")
    out = watchdiag.analyze(s, empty_snap(), [static])
    (f,) = out
    assert f is static and f.severity == "info" and "churn, not a leak" in f.message
    assert f.evidence["watch"]["median_s_in_close_wait"] == pytest.approx(0.01)


def test_time_wait_rate_against_the_port_range() -> None:
    closes_first = ["CLOSED", "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    recs = [
        rec(40000 + i, 443, closes_first, 100 + i * 0.05, role="client", closer="local", time_wait=True)
        for i in range(40)
    ]
    out = watchdiag.analyze(watchdiag.WatchSample(recs, 2.0), empty_snap(), [])
    (f,) = out
    ev = f.evidence
    assert f.id == "timewait-rate" and f.severity == "crit"
    assert ev["closed_first_per_s"] == 20.0 and ev["steady_state_ports"] == 1200
    assert ev["exhausted_in_s"] == 5  # 100 free ports at 20/s (nothing in TIME_WAIT yet)
    assert "port exhaustion toward 127.0.0.9:443 in ~5 s" in f.message
    assert "already lets connect() reuse" in f.advice  # tcp_tw_reuse=2 covers 127.0.0.0/8


def test_a_verdict_that_ignores_departures_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The churn check can fail: plant a verdict that never looks at how many left."""
    closes = SERVER_OPEN + ["LAST_ACK", "CLOSED"]
    s = watchdiag.WatchSample([rec(80, 5000 + i, closes, 100 + i, pid=7) for i in range(20)], 10.0)
    monkeypatch.setattr(watchdiag, "_verdict", lambda g: "leak" if g.entered >= 2 else "churn")
    (f,) = watchdiag.analyze(s, empty_snap(), [])
    assert f.evidence["watch"]["verdict"] != "churn"


def doctor_watch_while(action, *args: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """Run ``tcpwise doctor --json ...`` and call ``action()`` once its tracepoints are on."""
    from tcpwise.linux import tracefs

    p = subprocess.Popen(
        [sys.executable, "-m", "tcpwise.cli", "doctor", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_pythonpath(),
    )
    try:
        deadline = time.monotonic() + 20
        root = tracefs.find_tracefs()

        def recording() -> bool:
            # The instance exists a moment before its events are on: wait for tracing_on, or what the clients do
            # first (the leaky server's connections) may happen before the ring buffer records anything.
            for name, *_ in tracefs.list_instances(root):
                if f"-{p.pid}-" in name:
                    try:
                        with open(os.path.join(root, "instances", name, "tracing_on")) as f:
                            return f.read().strip() == "1"
                    except OSError:
                        return False
            return False

        while not recording():
            assert time.monotonic() < deadline and p.poll() is None, "doctor --watch did not start its watch"
            time.sleep(0.05)
        action()
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode in (0, 1), err
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.kernel
def test_doctor_watch_tells_leak_from_churn() -> None:
    with Child(SERVER_NO_CLOSE, "127.0.0.93") as leaky, Child(ACCEPT_CLOSE, "127.0.0.94", 15) as closer:

        def clients() -> None:
            with Child(CLIENTS, "127.0.0.93", leaky.info["port"], 15, "close"):
                pass
            with Child(CLIENTS, "127.0.0.94", closer.info["port"], 15, "close"):
                time.sleep(0.3)

        doc = doctor_watch_while(clients, "--watch", "3")
    assert doc["watch"]["source"] == "tracepoints" and doc["watch"]["lost"] == 0
    leak = [f for f in doc["findings"] if f["id"] == "close-wait-leak" and f["pid"] == leaky.pid]
    assert leak and leak[0]["evidence"]["watch"]["verdict"] == "leak"
    assert leak[0]["evidence"]["watch"]["entered"] == 15 and leak[0]["evidence"]["watch"]["left"] == 0
    churn = [f for f in doc["findings"] if f["pid"] == closer.pid]
    assert churn and churn[0]["id"] == "close-wait-churn" and churn[0]["evidence"]["watch"]["left"] == 15


RATE_CLIENT = """
import socket, sys, threading, time
ls = socket.socket(); ls.bind(("127.0.0.1", 8443)); ls.listen(128)
def serve():
    while True:
        s, _ = ls.accept()
        s.recv(10); s.close()
threading.Thread(target=serve, daemon=True).start()
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:  # ~25 connections/s, the client closes first: TIME_WAIT here
    c = socket.create_connection(("127.0.0.1", 8443)); c.close(); time.sleep(0.04)
"""


@pytest.mark.kernel
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespace)")
def test_doctor_watch_predicts_port_exhaustion_in_a_narrow_range() -> None:
    with Netns(sysctls={"net.ipv4.ip_local_port_range": "40000 40199"}) as ns:
        load: list[subprocess.Popen[bytes]] = []
        argv = ["ip", "netns", "exec", ns.name, sys.executable, "-c", RATE_CLIENT, "4"]
        try:
            doc = doctor_watch_while(
                lambda: load.append(subprocess.Popen(argv)), "--netns", ns.name, "--watch", "2.5"
            )
        finally:
            for p in load:
                p.wait(30)
    (f,) = [x for x in doc["findings"] if x["id"] == "timewait-rate"]
    ev = f["evidence"]
    assert ev["dst"] == "127.0.0.1:8443" and ev["ephemeral_range"] == [40000, 40199]
    assert 10 <= ev["closed_first_per_s"] <= 30
    assert f["severity"] == "crit" and ev["exhausted_in_s"] is not None and "port exhaustion" in f["message"]
    assert "already lets connect() reuse" in f["advice"]  # tcp_tw_reuse=2 covers loopback


@pytest.mark.kernel
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_doctor_watch_stopped_by_a_signal_leaves_no_instance(sig: int) -> None:
    """``timeout 5 tcpwise doctor --watch 30`` (SIGTERM) or a closed terminal (SIGHUP): the watch's tracefs
    instance is removed and the exit is 128 + the signal. SIGHUP's default action left it recording."""
    from tcpwise.linux import tracefs

    if os.geteuid() != 0:
        pytest.skip("needs root (tracepoints)")
    root = tracefs.find_tracefs()
    p = subprocess.Popen(
        [sys.executable, "-m", "tcpwise.cli", "doctor", "--json", "--watch", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_pythonpath(),
    )

    def mine() -> list[str]:
        return [name for name, *_ in tracefs.list_instances(root) if f"tcpwise-doctor-{p.pid}-" in name]

    try:
        deadline = time.monotonic() + 20
        while not mine():
            assert time.monotonic() < deadline and p.poll() is None, "doctor --watch did not start its watch"
            time.sleep(0.05)
        p.send_signal(sig)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert mine() == []

"""The watched story equals what the test did — real sockets, real kernel, the test's own namespace.

A child process (tests/watch/story_child.py) runs scripted connections inside a namespace created here; each
scenario states what both sides must live through. The watch runs over the tracepoints with the namespace
filter, so traffic of other tests on this host (other namespaces) never enters the records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from watch_helpers import Netns, Watched, watch_while

pytestmark = pytest.mark.kernel

SCENARIOS = (
    "client-close",
    "server-close",
    "rst-established",
    "refused",
    "rst-close-wait",
    "abort-unread",
    "simultaneous",
    "retransmit",
)

CLIENT_OPEN = ["CLOSED", "SYN_SENT", "ESTABLISHED"]
SERVER_OPEN = ["LISTEN", "SYN_RCVD", "ESTABLISHED"]
ACTIVE_CLOSE = ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
PASSIVE_CLOSE = ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]

# scenario -> (client story, server story): states, closer, time_wait, resets (dir, state), min retransmits
EXPECTED: dict[str, tuple[tuple[list[str], str, bool | None, list[tuple[str, str]], int], ...]] = {
    "client-close": (
        (CLIENT_OPEN + ACTIVE_CLOSE, "local", True, [], 0),
        (SERVER_OPEN + PASSIVE_CLOSE, "remote", False, [], 0),
    ),
    "server-close": (
        (CLIENT_OPEN + PASSIVE_CLOSE, "remote", False, [], 0),
        (SERVER_OPEN + ACTIVE_CLOSE, "local", True, [], 0),
    ),
    "rst-established": (
        (CLIENT_OPEN + ["CLOSED"], "none", False, [("received", "ESTABLISHED")], 0),
        (SERVER_OPEN + ["CLOSED"], "none", False, [("sent", "ESTABLISHED")], 0),
    ),
    "rst-close-wait": (
        (
            CLIENT_OPEN + ["FIN_WAIT_1", "FIN_WAIT_2", "CLOSED"],
            "local",
            False,
            [("received", "FIN_WAIT_2")],
            0,
        ),
        (SERVER_OPEN + ["CLOSE_WAIT", "CLOSED"], "remote", False, [("sent", "CLOSE_WAIT")], 0),
    ),
    "abort-unread": (
        (CLIENT_OPEN + ["CLOSED"], "none", False, [("sent", "ESTABLISHED")], 0),
        (SERVER_OPEN + ["CLOSED"], "none", False, [("received", "ESTABLISHED")], 0),
    ),
    "simultaneous": (
        (CLIENT_OPEN + ["FIN_WAIT_1", "CLOSING", "TIME_WAIT"], "local", True, [], 1),
        (SERVER_OPEN + ACTIVE_CLOSE, "local", True, [], 0),
    ),
    "retransmit": (
        (CLIENT_OPEN + PASSIVE_CLOSE, "remote", False, [], 1),
        (SERVER_OPEN + ACTIVE_CLOSE, "local", True, [], 0),
    ),
}


def _check_side(rec, want, what: str) -> None:  # type: ignore[no-untyped-def]
    states, closer, tw, resets, rtx = want
    assert rec.states() == states, f"{what}: states {rec.states()} != {states}"
    assert rec.closer == closer, f"{what}: closer {rec.closer} != {closer}"
    assert rec.time_wait == tw, f"{what}: time_wait {rec.time_wait} != {tw}"
    assert [(r.dir, r.state) for r in rec.resets] == resets, f"{what}: resets {rec.resets}"
    assert rec.retransmits >= rtx, f"{what}: retransmits {rec.retransmits} < {rtx}"
    times = [t.t for t in rec.transitions]
    assert times == sorted(times), f"{what}: transition times out of order"
    assert not rec.open and not rec.partial


def _check_stories(w: Watched, ports: dict[str, dict[str, int]], ns: Netns, child_pid: int | None) -> None:
    for name, (want_client, want_server) in EXPECTED.items():
        p = ports[name]
        client = w.one(p["client"], p["server"])
        server = w.one(p["server"], p["client"])
        _check_side(client, want_client, f"{name} client")
        _check_side(server, want_server, f"{name} server")
        for rec in (client, server):
            assert rec.netns == ns.inode
            if child_pid is not None:
                assert rec.pid == child_pid, f"{name}: pid {rec.pid} != {child_pid}"
        assert client.role == "client" and server.role == "server"
    p = ports["refused"]
    refused = w.one(p["client"], p["server"])
    assert refused.states() == ["CLOSED", "SYN_SENT", "CLOSED"]
    assert refused.end_reason == "refused"
    assert [(r.dir, r.state) for r in refused.resets] == [("received", "SYN_SENT")]
    assert not w.by_ports(p["server"], p["client"]), "nothing listened on the refused port"


def test_watched_stories_equal_what_the_child_did(netns: Netns) -> None:
    got: dict[str, dict[str, int]] = {}
    w = watch_while(netns.inode, lambda: got.update(netns.run_child(*SCENARIOS)))
    _check_stories(w, got, netns, None)
    pids = {r.pid for r in w.records}
    assert len(pids) == 1 and None not in pids, f"one child process owns every socket: {pids}"
    assert w.summary.lost == 0
    # listeners are sockets too: each scenario's listener, CLOSED > LISTEN > CLOSED
    listeners = [r for r in w.records if r.role == "listener"]
    assert listeners and all(r.states() == ["CLOSED", "LISTEN", "CLOSED"] for r in listeners)


def test_a_wrong_story_is_caught(netns: Netns, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a tracker that forgets the hand-off to TIME_WAIT breaks the client-close story."""
    from tcpwise.watch import tracker

    monkeypatch.setattr(
        tracker.Tracker, "_fin_wait_2_end", lambda self, c, t: setattr(c, "end_reason", "fin")
    )
    got: dict[str, dict[str, int]] = {}
    w = watch_while(netns.inode, lambda: got.update(netns.run_child("client-close", "server-close")))
    with pytest.raises(AssertionError, match="states"):
        p = got["client-close"]
        _check_side(w.one(p["client"], p["server"]), EXPECTED["client-close"][0], "client-close client")


def test_netns_filter_shows_only_that_namespace(netns_pair: tuple[Netns, Netns]) -> None:
    a, b = netns_pair
    got: dict[str, dict[str, dict[str, int]]] = {}

    def both() -> None:
        tb = threading.Thread(
            target=lambda: got.setdefault("b", b.run_child("client-close", "rst-established"))
        )
        tb.start()
        got["a"] = a.run_child("client-close", "rst-established")
        tb.join(60)

    w = watch_while(a.inode, both)
    assert w.records, "namespace A's connections were seen"
    assert all(r.netns == a.inode for r in w.records), {r.netns for r in w.records}
    pa = got["a"]
    for name in ("client-close", "rst-established"):
        w.one(pa[name]["client"], pa[name]["server"])
        w.one(pa[name]["server"], pa[name]["client"])
    conns = [r for r in w.records if r.role != "listener"]
    assert len(conns) == 4, [(r.lport, r.rport) for r in conns]
    # and B's watch would see B's: the same run, filtered the other way round, proves the filter is not a no-op
    from tcpwise.watch.tracker import Filter

    assert not any(Filter(netns=b.inode).match(r) for r in w.records)


# Listens on 0.0.0.0:8080 in its namespace (every container's service port) and never accepts: a client in
# another namespace connects over a veth and resets, so the server side lives and dies in softirq context
# (the handshake completes in the accept queue, the RST removes it), where no task names the namespace and it
# must be inferred from the listeners on the port.
_LISTEN_8080 = """
import socket, sys
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", 8080))
ls.listen(16)
print("ready", flush=True)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    print("done", flush=True)
"""
_CONNECT = """
import socket, struct, sys
for _ in range(int(sys.argv[1])):
    c = socket.create_connection((sys.argv[2], 8080), timeout=5)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
"""


def _listener(ns: Netns) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, sys.executable, "-c", _LISTEN_8080],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def test_a_listener_older_than_the_watch_keeps_its_connections(netns_pair: tuple[Netns, Netns]) -> None:
    """Every container listens on :8080 in its own namespace. A's listener predates the watch, B's is opened
    while the watch runs; clients in C reach A over a veth. A's accepted connections (their namespace inferred
    from the listeners on the port: they are made in softirq context) must not be credited to B."""
    from watch_helpers import del_netns, new_netns

    a, b = netns_pair
    c = new_netns()
    va, vc = f"twa{os.getpid() % 100000}", f"twc{os.getpid() % 100000}"
    kids: list[subprocess.Popen[str]] = []
    try:
        for cmd in (
            ["ip", "link", "add", va, "netns", a.name, "type", "veth", "peer", "name", vc, "netns", c.name],
            ["ip", "-n", a.name, "addr", "add", "198.18.250.1/24", "dev", va],
            ["ip", "-n", c.name, "addr", "add", "198.18.250.2/24", "dev", vc],
            ["ip", "-n", a.name, "link", "set", va, "up"],
            ["ip", "-n", c.name, "link", "set", vc, "up"],
            ["ip", "-n", b.name, "link", "set", "lo", "up"],
        ):
            subprocess.run(cmd, check=True, capture_output=True, timeout=20)
        old = _listener(a)
        kids.append(old)

        def action() -> None:
            kids.append(_listener(b))  # the only listener on :8080 the tracepoints see opened
            subprocess.run(
                ["ip", "netns", "exec", c.name, sys.executable, "-c", _CONNECT, "5", "198.18.250.1"],
                check=True,
                timeout=30,
            )

        w = watch_while(b.inode, action)
    finally:
        for k in kids:
            k.kill()
            k.wait(10)
        del_netns(c)
    assert [r.role for r in w.records if 8080 in (r.lport, r.rport)] == ["listener"], [
        (r.role, r.lport, r.rport, r.netns) for r in w.records
    ]


def _tcpwise(*args: str) -> list[str]:
    return [sys.executable, "-m", "tcpwise.cli", *args]


def _instances() -> set[str]:
    from tcpwise.linux import tracefs

    return {name for name, *_ in tracefs.list_instances(tracefs.find_tracefs())}


def test_cli_json_lines_contract(netns: Netns) -> None:
    """``tcpwise watch --netns NAME --format json --duration S``: the keys scripts depend on, and the summary."""
    holder = subprocess.Popen(  # a listener and a connection left open: reported at the end as "open": true
        [
            "ip",
            "netns",
            "exec",
            netns.name,
            sys.executable,
            "-c",
            "import socket,sys,time\n"
            "l=socket.socket();l.bind(('127.0.0.1',0));l.listen()\n"
            "time.sleep(0.8)\n"
            "c=socket.create_connection(l.getsockname());s,_=l.accept()\n"
            "print(c.getsockname()[1], l.getsockname()[1], flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        watch = subprocess.Popen(
            _tcpwise("watch", "--netns", netns.name, "--format", "json", "--duration", "3"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        ports = netns.run_child("client-close", "refused")
        assert holder.stdout is not None
        cport, lport = (int(x) for x in holder.stdout.readline().split())
        out, err = watch.communicate(timeout=30)
    finally:
        holder.communicate(input="", timeout=10)
    assert watch.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    summary = lines[-1]
    assert set(summary) == {"summary"}
    assert isinstance(summary["summary"]["events"], int) and summary["summary"]["lost"] == 0
    recs = lines[:-1]
    need = {"laddr", "lport", "raddr", "rport", "transitions", "closer", "resets_sent", "resets_received"}
    need |= {"retransmits", "pid", "comm", "open"}
    states = {"CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2"}
    states |= {"CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"}
    for r in recs:
        assert need <= set(r), need - set(r)
        assert r["closer"] in ("local", "remote", "none")
        assert all(set(t) >= {"t", "from", "to"} for t in r["transitions"])
        assert all(t["from"] in states and t["to"] in states for t in r["transitions"])
        assert isinstance(r["resets_sent"], int) and isinstance(r["retransmits"], int)
        assert r["pid"] is None or isinstance(r["pid"], int)
    p = ports["client-close"]
    client = [r for r in recs if r["lport"] == p["client"] and r["rport"] == p["server"]]
    assert len(client) == 1 and client[0]["closer"] == "local" and client[0]["open"] is False
    assert client[0]["transitions"][-1]["to"] == "TIME_WAIT"
    still = [r for r in recs if r["lport"] == cport and r["rport"] == lport]
    assert len(still) == 1 and still[0]["open"] is True
    assert still[0]["transitions"][-1]["to"] == "ESTABLISHED"
    assert still[0]["pid"] == holder.pid or still[0]["pid"] is not None
    refused = [r for r in recs if r["lport"] == ports["refused"]["client"]]
    assert refused and refused[0]["resets_received"] == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_ends_cleanly_and_removes_the_instance(sig: int) -> None:
    """SIGHUP (the terminal closed, the ssh session dropped) ends the watch like SIGTERM: its default action left
    the instance recording."""
    watch = subprocess.Popen(
        _tcpwise("watch", "--format", "json", "--port", "9"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        mine = _wait_instance(watch.pid)
        watch.send_signal(sig)
        out, err = watch.communicate(timeout=20)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["summary"]["lost"] == 0
    assert mine not in _instances()


def _wait_instance(pid: int, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in _instances():
            if f"-{pid}-" in name:
                return name
        time.sleep(0.05)
    raise AssertionError(f"no tracefs instance of pid {pid}")


def test_clean_after_sigkill_removes_only_dead_owners() -> None:
    killed = subprocess.Popen(
        _tcpwise("watch", "--port", "9"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    alive = subprocess.Popen(
        _tcpwise("watch", "--port", "9"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        left = _wait_instance(killed.pid)
        live = _wait_instance(alive.pid)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
        assert left in _instances(), "SIGKILL leaves the instance behind"
        r = subprocess.run(_tcpwise("watch", "--clean"), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert f"removed {left}" in r.stdout
        now = _instances()
        assert left not in now
        assert live in now, "a running watch's instance is never touched"
    finally:
        for p in (killed, alive):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(20)
    assert live not in _instances()

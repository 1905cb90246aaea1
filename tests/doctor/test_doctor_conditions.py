"""Each doctor finding made real: child processes hold sockets in the condition, the finding must name them.

Loopback conditions use 127.0.0.x addresses of their own and the doctor's ``--pid``-free host view (other tests
run on this host at the same time, so assertions look for *our* pid / port, never for "no other findings").
Conditions that need kernel knobs or spoofed packets run in a namespace ``tcpwise-doc-*`` created and
deleted by the test.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tcpwise.doctor import collect, findings
from tcpwise.doctor.fixtures import (
    ACCEPT_CLOSE,
    CLIENTS,
    IDLE_PAIRS,
    LISTEN_NO_ACCEPT,
    PAIRS,
    RECV_NO_READ,
    SEND_FLOOD,
    SEND_ON_LINE,
    SERVER_NO_CLOSE,
    SYN_FLOOD,
    Child,
    Netns,
    env_pythonpath,
)

pytestmark = [pytest.mark.kernel]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")


def tcpwise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcpwise.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_pythonpath(),
    )


def doctor_json(*args: str) -> dict:
    r = tcpwise("doctor", "--json", *args)
    assert r.returncode in (0, 1), r.stderr
    return json.loads(r.stdout)


def find(doc_or_list, fid: str, pid: int | None = None) -> list[dict]:
    items = doc_or_list["findings"] if isinstance(doc_or_list, dict) else [f.to_dict() for f in doc_or_list]
    return [f for f in items if f["id"] == fid and (pid is None or f["pid"] == pid)]


def wait_for(pred, timeout: float = 10.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def test_close_wait_leak_names_the_server_pid():
    # The server accepts and never closes; the client process connects 15 times and closes: 15 CLOSE_WAIT.
    with Child(SERVER_NO_CLOSE, "127.0.0.41") as server:
        port = server.info["port"]
        with Child(CLIENTS, "127.0.0.41", port, 15, "close"):

            def cw():
                snap = collect.take(pids=[server.pid])
                return snap.proc_states(server.pid).get("CLOSE_WAIT", 0) >= 15

            assert wait_for(cw)
            doc = doctor_json()
            hits = find(doc, "close-wait-leak", server.pid)
            assert hits, [f["id"] for f in doc["findings"]]
            f = hits[0]
            assert f["severity"] in ("warn", "crit")
            assert f["evidence"]["close_wait"] == 15
            assert "close()" in f["advice"]
            proc = next(p for p in doc["processes"] if p["pid"] == server.pid)
            assert proc["states"]["CLOSE_WAIT"] == 15 and proc["fd_limit"] and proc["fds"] >= 16
            # The client side is not blamed: its sockets are in FIN_WAIT_2 and orphaned.
            assert not [
                x
                for x in find(doc, "close-wait-leak")
                if x["pid"] != server.pid and x["evidence"].get("top_local_ports", {}).get(str(port))
            ]
            # --pid narrows everything to that process; growth with a second sample.
            one = doctor_json("--pid", str(server.pid))
            assert [p["pid"] for p in one["processes"]] == [server.pid]
            assert all(f["pid"] == server.pid for f in one["findings"])
            assert one["states"]["CLOSE_WAIT"] == 15


def test_close_wait_growth_between_two_samples():
    with Child(SERVER_NO_CLOSE, "127.0.0.42") as server:
        port = server.info["port"]
        with Child(CLIENTS, "127.0.0.42", port, 12, "close"):
            assert wait_for(
                lambda: collect.take(pids=[server.pid]).proc_states(server.pid).get("CLOSE_WAIT") == 12
            )
            prev = collect.take(pids=[server.pid])
            with Child(CLIENTS, "127.0.0.42", port, 8, "close"):
                assert wait_for(
                    lambda: collect.take(pids=[server.pid]).proc_states(server.pid).get("CLOSE_WAIT") == 20
                )
                snap = collect.take(pids=[server.pid])
                f = find(findings.analyze(snap, prev=prev), "close-wait-leak", server.pid)[0]
                assert f["evidence"]["growth"] == 8
                assert "+8" in f["message"]


def test_accept_queue_overflow_backlog_1():
    with Child(LISTEN_NO_ACCEPT, "127.0.0.43", 1) as lst:
        port = lst.info["port"]
        clients = []
        try:
            for _ in range(6):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.43", port))
                clients.append(c)

            def full():
                snap = collect.take(pids=[lst.pid])
                return [s for s in snap.socks if s.state == 10 and s.rqueue > s.wqueue]

            assert wait_for(full)
            doc = doctor_json()
            hits = find(doc, "accept-queue-overflow", lst.pid)
            assert hits and hits[0]["severity"] == "crit"
            ev = hits[0]["evidence"]
            assert ev["listener"] == f"127.0.0.43:{port}"
            assert ev["backlog"] == 1 and ev["accept_queue"] == 2
            assert ev["ListenOverflows"] >= 1
            assert "somaxconn" in hits[0]["advice"]
        finally:
            for c in clients:
                c.close()


def test_syn_sent_toward_a_full_local_listener_is_linked():
    """Clients of a listener whose accept queue is full sit in SYN_SENT retrying (the kernel drops their SYNs):
    connect-retrying names them with tcp_syn_retries, and both findings point at each other."""
    with Child(LISTEN_NO_ACCEPT, "127.0.0.47", 1) as lst:
        port = lst.info["port"]
        clients = []
        try:
            for _ in range(6):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.47", port))
                clients.append(c)

            def linked():
                doc = doctor_json()
                hits = [
                    f for f in find(doc, "connect-retrying", os.getpid()) if f["evidence"].get("listener_pid")
                ]
                return (doc, hits) if hits else None

            got = wait_for(linked, timeout=8, step=0.5)  # the first SYN retransmission comes after 1 s
            assert got, "no connect-retrying finding linked to the full listener"
            doc, hits = got
            ev = hits[0]["evidence"]
            assert ev["listener_pid"] == lst.pid and ev["local_listener"] == f"127.0.0.47:{port}"
            assert ev["tcp_syn_retries"] >= 1 and ev["syn_retransmissions"] >= 1
            assert "not half-open" in hits[0]["message"]
            assert not [
                f
                for f in find(doc, "retransmitting", os.getpid())
                if f["evidence"]["dst"].startswith("127.0.0.47")
            ]
            aq = find(doc, "accept-queue-overflow", lst.pid)
            assert aq and aq[0]["evidence"]["local_clients_retrying_syn"] >= 1
        finally:
            for c in clients:
                c.close()


def test_fd_headroom_low_rlimit():
    with (
        Child(SERVER_NO_CLOSE, "127.0.0.44") as server,
        Child(CLIENTS, "127.0.0.44", server.info["port"], 5, "fill", nofile=64) as filler,
    ):
        doc = doctor_json()
        hits = find(doc, "fd-headroom", filler.pid)
        assert hits, [(f["id"], f["pid"]) for f in doc["findings"]]
        assert hits[0]["severity"] == "crit"
        assert hits[0]["evidence"]["fd_limit"] == 64
        assert hits[0]["evidence"]["fds"] >= 61
        assert hits[0]["evidence"]["tcp_sockets"] == 5
        # The server holds few fds of a large limit: no headroom finding for it.
        assert not find(doc, "fd-headroom", server.pid)


def test_no_keepalive_only_for_sockets_without_it():
    with Child(IDLE_PAIRS, "127.0.0.45", 3, 0) as bare, Child(IDLE_PAIRS, "127.0.0.46", 3, 1) as ka:
        time.sleep(1.3)
        snap = collect.take(idle_s=1.0)
        found = findings.analyze(snap, findings.Thresholds(idle_s=1.0))
        hits = find(found, "no-keepalive", bare.pid)
        assert hits, [(f.id, f.pid) for f in found]
        assert hits[0]["evidence"]["idle_without_keepalive"] == 6  # both ends of 3 pairs
        assert hits[0]["evidence"]["oldest_idle_s"] >= 1.0
        assert not find(found, "no-keepalive", ka.pid)
        # Keepalive sockets show the keepalive timer (idiag_timer 2) in the dump.
        ka_socks = [snap.by_inode[i] for i in snap.procs[ka.pid].inodes]
        assert {s.timer for s in ka_socks if s.state == 1} == {2}
        # With the default 600 s idle threshold nothing is idle yet.
        assert not find(findings.analyze(snap), "no-keepalive", bare.pid)


def test_zero_window_blames_the_reader():
    with Child(RECV_NO_READ, "127.0.0.47") as reader:
        with Child(SEND_FLOOD, "127.0.0.47", reader.info["port"]) as writer:

            def stalled():
                found = findings.analyze(collect.take())
                return find(found, "zero-window", reader.pid)

            hits = wait_for(stalled, timeout=15, step=0.3)
            assert hits
            ev = hits[0]["evidence"]
            assert ev["receiver_pid"] == reader.pid
            assert ev["sender_pids"] == [writer.pid]
            assert ev["unread_bytes"] > 0


@needs_root
def test_timewait_ports_in_namespace_with_narrow_range():
    with Netns(sysctls={"net.ipv4.ip_local_port_range": "40000 40499"}) as ns:
        with Child(ACCEPT_CLOSE, "127.0.0.1", 220, netns=ns.name) as server:
            with Child(CLIENTS, "127.0.0.1", server.info["port"], 220, "close", netns=ns.name):

                def tw():
                    snap = collect.take(netns=ns.name)
                    return snap.states()["TIME_WAIT"] >= 220

                # While other tests churn the host, the sock_diag dump of this namespace has been seen to list
                # only 172-200 of the 220 TIME_WAIT sockets — `ss -tan` lists the same number, while TcpExtTW
                # says 220 entered TIME_WAIT (kernel dump behaviour, not ours); the finding needs 150 (30%).
                if not wait_for(tw, timeout=10):
                    n = collect.take(netns=ns.name).states()["TIME_WAIT"]
                    assert n >= 160, n
                doc = doctor_json("--netns", ns.name)
                hits = find(doc, "timewait-ports")
                assert hits, (doc["states"], doc["findings"])
                ev = hits[0]["evidence"]
                assert ev["dst"] == f"127.0.0.1:{server.info['port']}"
                assert ev["time_wait"] == doc["states"]["TIME_WAIT"] >= 160
                assert ev["ephemeral_range"] == [40000, 40499]
                assert hits[0]["severity"] == "warn"  # 32-44% of 500 ports
                adv = hits[0]["advice"]
                assert "tcp_tw_reuse" in adv and "removed in Linux 4.12" in adv and "FIN_WAIT_2" in adv
                # The narrow range also shows in the sysctl audit of that namespace.
                assert [
                    f
                    for f in doc["findings"]
                    if f["id"] == "sysctl-audit" and "ip_local_port_range" in f["message"]
                ]


@needs_root
def test_syn_flood_in_namespace_names_listener_pid():
    with Netns(dummy=True) as ns:
        with Child(LISTEN_NO_ACCEPT, "198.18.0.1", 16, netns=ns.name) as lst:
            port = lst.info["port"]
            with Child(SYN_FLOOD, "198.19", "198.18.0.1", port, 200, netns=ns.name):

                def syn():
                    snap = collect.take(netns=ns.name)
                    return snap.states()["SYN_RCVD"] >= 16

                assert wait_for(syn, timeout=10)
                doc = doctor_json("--netns", ns.name)
                hits = find(doc, "syn-flood", lst.pid)
                assert hits, doc["findings"]
                ev = hits[0]["evidence"]
                assert ev["listener"] == f"198.18.0.1:{port}"
                assert ev["syn_recv"] >= 16 and ev["syn_queue_limit"] == 16
                assert ev["SyncookiesSent"] > 0  # the queue overflowed: the kernel answered with cookies
                assert hits[0]["severity"] == "crit"
                assert "tcp_syncookies=1" in hits[0]["advice"]
                assert doc["states"]["SYN_RCVD"] == ev["syn_recv"]


@needs_root
@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables")
def test_retransmitting_peer_stopped_answering():
    with Netns() as ns, Child(RECV_NO_READ, "127.0.0.1", netns=ns.name) as server:
        port = server.info["port"]
        with Child(SEND_ON_LINE, "127.0.0.1", port, netns=ns.name) as client:
            # The server's ACKs never leave: the client's data is retransmitted (RTO 200 ms, doubling).
            ns.run("nft", "add table inet tcpwise_doc")
            ns.run("nft", "add chain inet tcpwise_doc out { type filter hook output priority 0 ; }")
            ns.run("nft", f"add rule inet tcpwise_doc out tcp sport {port} drop")
            client.proc.stdin.write("go\n")
            client.proc.stdin.flush()

            def retrans():
                return find(findings.analyze(collect.take(netns=ns.name)), "retransmitting", client.pid)

            hits = wait_for(retrans, timeout=10, step=0.3)
            assert hits
            ev = hits[0]["evidence"]
            assert ev["max_retrans"] >= 3 and ev["states"] == {"ESTABLISHED": 1}
            assert ev["dst"] == "127.0.0.1" and ev["unacked"] >= 1
            assert "TCP_USER_TIMEOUT" in hits[0]["advice"]


@needs_root
def test_counts_agree_with_ss_in_namespace():
    with Netns() as ns:
        with (
            Child(PAIRS, "127.0.0.1", 1500, netns=ns.name),
            Child(SERVER_NO_CLOSE, "127.0.0.1", netns=ns.name) as srv,
        ):
            with Child(CLIENTS, "127.0.0.1", srv.info["port"], 300, "close", netns=ns.name):
                time.sleep(0.3)
                doc = doctor_json("--netns", ns.name)
                out = subprocess.run(
                    ["ip", "netns", "exec", ns.name, "ss", "-Htan"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                ss_names = {
                    "ESTAB": "ESTABLISHED",
                    "SYN-SENT": "SYN_SENT",
                    "SYN-RECV": "SYN_RCVD",
                    "FIN-WAIT-1": "FIN_WAIT_1",
                    "FIN-WAIT-2": "FIN_WAIT_2",
                    "TIME-WAIT": "TIME_WAIT",
                    "UNCONN": "CLOSED",
                    "CLOSE-WAIT": "CLOSE_WAIT",
                    "LAST-ACK": "LAST_ACK",
                    "LISTEN": "LISTEN",
                    "CLOSING": "CLOSING",
                }
                ss = collections.Counter(
                    ss_names[line.split()[0]] for line in out.splitlines() if line.strip()
                )
                total_ss = sum(ss.values())
                total = sum(doc["states"].values())
                assert total_ss >= 3000 + 600
                assert abs(total - total_ss) <= 0.01 * total_ss
                for name, n in ss.items():
                    assert abs(doc["states"][name] - n) <= max(1, 0.01 * total_ss), (name, n, doc["states"])
                # Attribution in a namespace: the pair holder owns its 3000 sockets + 1 listener.
                top = doc["processes"][0]
                assert sum(top["states"].values()) == 3001


def test_unprivileged_run_says_attribution_is_reduced(nobody: tuple[list[str], str]) -> None:
    prefix, stage = nobody
    with Child(SERVER_NO_CLOSE, "127.0.0.48"):
        r = subprocess.run(
            [*prefix, "-m", "tcpwise.cli", "doctor", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=stage,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": stage, "HOME": stage},
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        hits = find(doc, "attribution-reduced")
        assert hits and hits[0]["evidence"]["processes_not_readable"] > 0
        assert sum(doc["states"].values()) >= 1  # counting works without privileges


@needs_root
def test_exporter_counts_match_ss_in_namespace():
    from tcpwise.doctor.exporter import TcpCollector

    with (
        Netns() as ns,
        Child(PAIRS, "127.0.0.1", 300, netns=ns.name),
        Child(SERVER_NO_CLOSE, "127.0.0.1", netns=ns.name) as srv,
        Child(CLIENTS, "127.0.0.1", srv.info["port"], 25, "close", netns=ns.name),
    ):
        time.sleep(0.3)
        col = TcpCollector(netns=ns.name, proc_interval=0)
        fams = {f.name: f for f in col.collect()}
        assert col.estab_from_mib  # the shortcut agreed with the full dump
        got = {s.labels["state"]: s.value for s in fams["tcpwise_sockets"].samples}
        out = subprocess.run(
            ["ip", "netns", "exec", ns.name, "ss", "-Htan"], capture_output=True, text=True, check=True
        ).stdout
        ss = collections.Counter(line.split()[0] for line in out.splitlines() if line.strip())
        assert got["ESTABLISHED"] == ss["ESTAB"] == 600
        assert got["CLOSE_WAIT"] == ss["CLOSE-WAIT"] == 25
        assert got["FIN_WAIT_2"] == ss["FIN-WAIT-2"] == 25
        assert got["LISTEN"] == ss["LISTEN"] == 2
        cw = [
            s
            for s in fams["tcpwise_findings"].samples
            if s.labels == {"id": "close-wait-leak", "severity": "warn"}
        ]
        assert cw and cw[0].value == 1

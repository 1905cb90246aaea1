"""accept-queue-overflow against the real kernel, in a network namespace of our own (loopback only).

A listener with backlog 4 that never accept()s: the kernel queues backlog + 1 = 5 established connections,
drops the SYNs of the others (ListenOverflows) and leaves their connect() pending. The model, asked the same,
answers the same.
"""

from __future__ import annotations

import re
import select
import socket
import time

import pytest

from tcpwise.endpoint.config import LINUX
from tcpwise.sim.apps import Server, ShortConnClient
from tcpwise.sim.core import Simulator
from tcpwise.sim.network import Impairments

pytestmark = pytest.mark.kernel
BACKLOG = 4
CLIENTS = 8


def _model() -> tuple[int, int]:
    """(accept queue length, clients ESTABLISHED) on the model after CLIENTS connects to a never-accepting server."""
    sim = Simulator(1)
    sim.default_imp = Impairments(delay=0.0005)
    ha = sim.add_host("A", "198.18.0.1", LINUX, "client")
    hb = sim.add_host("B", "198.18.1.1", LINUX, "server")
    server = Server(sim, hb, 80, backlog=BACKLOG, accept_interval=1e6)
    client = ShortConnClient(
        sim, ha, "198.18.1.1", 80, times=[0.01 * i for i in range(CLIENTS)], request_bytes=0
    )
    sim.run(0.5)
    return len(server.listener.accept_queue), client.stats.established


def _connect_many(port: int, n: int, pause: float, socks: list[socket.socket]) -> list[socket.socket]:
    """Start ``n`` non-blocking connects to 127.0.0.1:port (``pause`` apart, appended to ``socks`` so the caller
    closes them), wait 0.3 s, and return the ones whose handshake completed."""
    for _ in range(n):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(c)
        time.sleep(pause)
    time.sleep(0.3)
    _, writable, _ = select.select([], socks, [], 0)
    return [c for c in writable if c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0]


def test_accept_queue_holds_backlog_plus_one_on_the_kernel() -> None:
    from tcpwise.lab.netns import in_netns, new_run_id, sh

    ns = f"tcpwise-{new_run_id()}-b"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        socks: list[socket.socket] = []
        with in_netns(ns):
            srv = socket.socket()
            srv.bind(("127.0.0.1", 8082))
            srv.listen(BACKLOG)  # and never accept()
            try:
                connected = len(_connect_many(8082, CLIENTS, 0.01, socks))
                listen = sh("ip", "netns", "exec", ns, "ss", "-ltnH", "sport", "= :8082")
                nstat = sh("ip", "netns", "exec", ns, "nstat", "-az", "TcpExtListenOverflows")
            finally:
                for c in socks:
                    c.close()
                srv.close()
    finally:
        sh("ip", "netns", "delete", ns, check=False)

    recv_q = int(listen.split()[1])  # for a listener, Recv-Q = connections waiting in the accept queue
    overflows = int(re.search(r"TcpExtListenOverflows\s+(\d+)", nstat).group(1))  # type: ignore[union-attr]
    assert recv_q == BACKLOG + 1
    assert connected == BACKLOG + 1
    assert overflows > 0
    assert _model() == (BACKLOG + 1, BACKLOG + 1)


_LEAKY_SERVER = r"""
import errno, os, resource, select, socket, sys, time
limit, backlog = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
srv = socket.socket()
srv.bind(("127.0.0.1", 8083))
srv.listen(backlog)
srv.setblocking(False)
base = len(os.listdir("/proc/self/fd")) - 1  # minus the fd listdir itself used
print("ready", base, flush=True)
held, emfile = [], 0
deadline = time.time() + 10
while time.time() < deadline:
    if select.select([sys.stdin], [], [], 0)[0]:
        break  # the test says stop
    try:
        s, _ = srv.accept()
        held.append(s)  # the bug: never close()
    except BlockingIOError:
        time.sleep(0.002)
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            raise
        emfile += 1
        time.sleep(0.002)
print(len(held), emfile, flush=True)
"""


def test_close_wait_leak_on_the_kernel() -> None:
    """A server process that never close()s, with RLIMIT_NOFILE 24: CLOSE_WAIT piles up, accept() fails with
    EMFILE, the accept queue fills to backlog + 1, then new connects stay pending."""
    import subprocess
    import sys

    from tcpwise.lab.netns import in_netns, new_run_id, sh

    limit, backlog = 24, 4
    ns = f"tcpwise-{new_run_id()}-b"
    sh("ip", "netns", "add", ns)
    child = None
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        child = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", _LEAKY_SERVER, str(limit), str(backlog)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        ready = child.stdout.readline().split()
        assert ready and ready[0] == "ready"
        base = int(ready[1])
        usable = limit - base
        socks: list[socket.socket] = []
        with in_netns(ns):
            connected = _connect_many(8083, usable + backlog + 1 + 3, 0.02, socks)
            for c in connected:
                c.shutdown(socket.SHUT_WR)  # the client is done: FIN -> the server side goes CLOSE_WAIT
            time.sleep(0.3)
            close_wait = sh(
                "ip", "netns", "exec", ns, "ss", "-tanH", "state", "close-wait", "sport", "= :8083"
            )
            listen = sh("ip", "netns", "exec", ns, "ss", "-ltnH", "sport", "= :8083")
        child.stdin.write("stop\n")
        child.stdin.flush()
        held, emfile = (int(x) for x in child.stdout.readline().split())
        for c in socks:
            c.close()
    finally:
        if child is not None and child.poll() is None:
            child.kill()
        if child is not None:
            child.wait(timeout=5)
        sh("ip", "netns", "delete", ns, check=False)

    assert held == usable  # every fd the process had left became a leaked connection
    assert emfile > 0  # then accept() failed
    assert int(listen.split()[1]) == backlog + 1  # the accept queue is full
    assert len(connected) == usable + backlog + 1  # the rest: SYN dropped, connect() still pending
    assert len(close_wait.splitlines()) == usable + backlog + 1  # held ones + queued ones got the FIN
    # The model, with the same number of fds left for connections and the same backlog:
    from tcpwise.scenarios import run_scenario
    from tcpwise.sim.apps import BASE_FDS

    v = run_scenario(
        "close-wait-leak",
        overrides={"fd_limit": str(BASE_FDS + usable), "backlog": str(backlog), "extra": "10"},
    ).summary["values"]
    assert v["accepted"] == usable and v["emfile"] > 0 and v["peak_accept_queue"] == backlog + 1


def test_request_on_a_connection_the_server_closed_on_the_kernel() -> None:
    """What the naive pool's application sees on Linux: the server closed (FIN), the client writes a request
    anyway, the server answers RST; reading gives EOF, the next write EPIPE. The model reports the same reset
    of a CLOSE_WAIT socket as EPIPE."""
    import errno

    from tcpwise.lab.netns import in_netns, new_run_id, sh
    from tcpwise.scenarios import run_scenario

    ns = f"tcpwise-{new_run_id()}-b"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        with in_netns(ns):
            srv = socket.socket()
            srv.bind(("127.0.0.1", 8090))
            srv.listen(4)
            c = socket.socket()
            c.settimeout(2.0)
            c.connect(("127.0.0.1", 8090))
            s, _ = srv.accept()
            s.close()  # the server's idle timeout
            time.sleep(0.1)
            c.send(b"GET / HTTP/1.1\r\n\r\n")  # the pool reuses the dead connection
            time.sleep(0.1)
            got = c.recv(100)
            try:
                c.send(b"x")
                write_errno = 0
            except OSError as exc:
                write_errno = exc.errno or -1
            c.close()
            srv.close()
    finally:
        sh("ip", "netns", "delete", ns, check=False)
    assert got == b""
    assert write_errno == errno.EPIPE
    v = run_scenario("pool-dead-connections").summary["values"]["naive"]
    assert set(v["errnos"]) == {"EPIPE"} and v["rsts_from_server"] >= v["errors"] > 0


@pytest.mark.parametrize("backlog,max_syn_backlog,cookies", [(64, 128, 0), (256, 128, 0), (64, 128, 1)])
def test_syn_flood_on_the_kernel(backlog: int, max_syn_backlog: int, cookies: int) -> None:
    """Spoofed SYNs (raw socket in namespace X, sources 198.18.2.x that nobody answers for) against a listener in
    namespace B: the number of SYN-RECV entries is the model's SYN queue limit; the legit client is dropped
    without cookies and served with them."""
    import random

    from tcpwise.endpoint.config import LINUX
    from tcpwise.endpoint.listener import Listener
    from tcpwise.lab.netns import in_netns, new_run_id, sh
    from tcpwise.vocab import SYN
    from tcpwise.wire.ip import build_packet
    from tcpwise.wire.segment import MssOption, TcpSegment

    rid = new_run_id()
    x_ns, b_ns = f"tcpwise-{rid}-a", f"tcpwise-{rid}-b"
    sh("ip", "netns", "add", x_ns)
    sh("ip", "netns", "add", b_ns)
    try:
        sh("ip", "link", "add", "vx", "netns", x_ns, "type", "veth", "peer", "name", "vb", "netns", b_ns)
        sh("ip", "-n", x_ns, "addr", "add", "198.18.0.1/16", "dev", "vx")
        sh("ip", "-n", b_ns, "addr", "add", "198.18.1.1/16", "dev", "vb")
        for ns, dev in ((x_ns, "vx"), (b_ns, "vb")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", b_ns, "sysctl", "-qw", f"net.ipv4.tcp_syncookies={cookies}")
        sh("ip", "netns", "exec", b_ns, "sysctl", "-qw", f"net.ipv4.tcp_max_syn_backlog={max_syn_backlog}")
        with in_netns(b_ns):
            srv = socket.socket()
            srv.bind(("198.18.1.1", 80))
            srv.listen(backlog)
        with in_netns(x_ns):
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        rng = random.Random(1)
        try:
            for i in range(300):
                seg = TcpSegment(1024 + i, 80, rng.randrange(1 << 32), 0, SYN, 64240, (MssOption(1460),))
                raw.sendto(build_packet(f"198.18.2.{1 + i % 250}", "198.18.1.1", seg), ("198.18.1.1", 0))
                time.sleep(0.001)
            time.sleep(0.3)
            syn_recv = len(sh("ip", "netns", "exec", b_ns, "ss", "-tanH", "state", "syn-recv").splitlines())
            with in_netns(x_ns):
                c = socket.socket()
                c.settimeout(1.5)
                try:
                    c.connect(("198.18.1.1", 80))
                    legit = True
                except OSError:
                    legit = False
                c.close()
            nstat = sh("ip", "netns", "exec", b_ns, "nstat", "-az", "TcpExtSyncookiesSent")
        finally:
            raw.close()
            srv.close()
    finally:
        sh("ip", "netns", "delete", x_ns, check=False)
        sh("ip", "netns", "delete", b_ns, check=False)

    model = Listener(
        LINUX.with_(syncookies=cookies, max_syn_backlog=max_syn_backlog), "198.18.1.1", 80, backlog, b"k" * 32
    )
    assert syn_recv == model.syn_queue_limit
    assert legit == bool(cookies)
    cookies_sent = int(re.search(r"TcpExtSyncookiesSent\s+(\d+)", nstat).group(1))  # type: ignore[union-attr]
    assert (cookies_sent > 0) == bool(cookies)


def test_final_ack_dropped_at_full_accept_queue_on_the_kernel() -> None:
    """The ghost connection of accept-queue-overflow on Linux: backlog 1 (2 fit), one connection queued, then two
    handshakes whose SYNs both get in (their first ACKs held back by nftables in the client's namespace). When the
    server's SYN-ACK retransmission draws new ACKs, one fills the accept queue and the other is dropped: all three
    clients are ESTABLISHED, the server still has one in SYN-RECV (tcp_abort_on_overflow=0). The model agrees."""
    from tcpwise.lab.netns import in_netns, new_run_id, sh

    rid = new_run_id()
    x_ns, b_ns = f"tcpwise-{rid}-a", f"tcpwise-{rid}-b"
    sh("ip", "netns", "add", x_ns)
    sh("ip", "netns", "add", b_ns)
    socks: list[socket.socket] = []
    try:
        sh("ip", "link", "add", "vx", "netns", x_ns, "type", "veth", "peer", "name", "vb", "netns", b_ns)
        sh("ip", "-n", x_ns, "addr", "add", "198.18.0.1/16", "dev", "vx")
        sh("ip", "-n", b_ns, "addr", "add", "198.18.1.1/16", "dev", "vb")
        for ns, dev in ((x_ns, "vx"), (b_ns, "vb")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", b_ns, "sysctl", "-qw", "net.ipv4.tcp_syncookies=0")
        with in_netns(b_ns):
            srv = socket.socket()
            srv.bind(("198.18.1.1", 80))
            srv.listen(1)
        try:
            with in_netns(x_ns):
                first = socket.socket()
                first.settimeout(2.0)
                first.connect(("198.18.1.1", 80))
                socks.append(first)
            time.sleep(0.1)
            rules = (
                "table inet tcpwise_hold { chain out { type filter hook output priority 0; "
                "tcp dport 80 tcp flags == ack drop; }; }"
            )
            sh("ip", "netns", "exec", x_ns, "nft", "-f", "-", input=rules)
            with in_netns(x_ns):
                for _ in range(2):
                    c = socket.socket()
                    c.setblocking(False)
                    try:
                        c.connect(("198.18.1.1", 80))
                    except BlockingIOError:
                        pass
                    socks.append(c)
            time.sleep(0.3)
            held_syn_recv = len(
                sh("ip", "netns", "exec", b_ns, "ss", "-tanH", "state", "syn-recv").splitlines()
            )
            sh("ip", "netns", "exec", x_ns, "nft", "delete", "table", "inet", "tcpwise_hold")
            time.sleep(2.0)  # the server's SYN-ACK retransmission (1 s) draws fresh ACKs
            client_est = len(
                sh("ip", "netns", "exec", x_ns, "ss", "-tanH", "state", "established").splitlines()
            )
            server_syn_recv = len(
                sh("ip", "netns", "exec", b_ns, "ss", "-tanH", "state", "syn-recv").splitlines()
            )
            listen = sh("ip", "netns", "exec", b_ns, "ss", "-ltnH", "sport", "= :80")
            nstat = sh("ip", "netns", "exec", b_ns, "nstat", "-az", "TcpExtListenOverflows")
        finally:
            for c in socks:
                c.close()
            srv.close()
    finally:
        sh("ip", "netns", "delete", x_ns, check=False)
        sh("ip", "netns", "delete", b_ns, check=False)

    assert held_syn_recv == 2  # both SYNs got into the SYN queue
    assert client_est == 3  # every client believes it is connected
    assert int(listen.split()[1]) == 2  # backlog 1 -> 2 queued
    assert server_syn_recv == 1  # the ghost: its final ACK was dropped
    assert int(re.search(r"TcpExtListenOverflows\s+(\d+)", nstat).group(1)) >= 1  # type: ignore[union-attr]
    # The model, same sequence: one connection queued, then two at once.
    sim = Simulator(1)
    sim.default_imp = Impairments(delay=0.0005)
    ha = sim.add_host("A", "198.18.0.1", LINUX, "client")
    hb = sim.add_host("B", "198.18.1.1", LINUX.with_(syncookies=0), "server")
    server = Server(sim, hb, 80, backlog=1, accept_interval=1e6)
    client = ShortConnClient(sim, ha, "198.18.1.1", 80, times=[0.0, 0.5, 0.5005], request_bytes=0)
    sim.run(3.0)
    assert client.stats.established == 3
    assert len(server.listener.accept_queue) == 2 and len(server.listener.syn_queue) == 1

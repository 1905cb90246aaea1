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
    client = ShortConnClient(sim, ha, "198.18.1.1", 80, times=[0.01 * i for i in range(CLIENTS)], request_bytes=0)
    sim.run(0.5)
    return len(server.listener.accept_queue), client.stats.established


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
                for _ in range(CLIENTS):
                    c = socket.socket()
                    c.setblocking(False)
                    try:
                        c.connect(("127.0.0.1", 8082))
                    except BlockingIOError:
                        pass
                    socks.append(c)
                    time.sleep(0.01)
                time.sleep(0.3)
                _, writable, _ = select.select([], socks, [], 0)
                connected = sum(1 for c in writable if c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
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

"""The timewait-pileup model against the real kernel, in a network namespace of our own (loopback only).

One client, one destination, a 10-port ``ip_local_port_range``: what the model predicts (port held through
TIME_WAIT, the 11th connect() fails with EADDRNOTAVAIL, ``tcp_fin_timeout`` does not shorten TIME_WAIT,
``tcp_tw_reuse=1`` takes a TIME_WAIT port over after ~1 s only with timestamps) is checked on Linux.
"""

from __future__ import annotations

import errno
import re
import socket
import time

import pytest

from tcpwise.scenarios.timewait import calibrate
from tcpwise.sim.fleet import simulate_flow

pytestmark = pytest.mark.kernel

PORTS = (40000, 40009)


def _ns_sysctl(ns: str, key: str, value: str) -> None:
    from tcpwise.lab.netns import sh

    sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}")


def _time_wait(ns: str, dport: int) -> list[int]:
    """Remaining TIME_WAIT timers (seconds) of the client sockets towards 127.0.0.1:dport, from ss -tano."""
    from tcpwise.lab.netns import sh

    out = sh("ip", "netns", "exec", ns, "ss", "-tano", "state", "time-wait", "dst", f"127.0.0.1:{dport}")
    return [int(m.group(1)) for m in re.finditer(r"timer:\(timewait,(\d+)(?:\.\d+)?sec", out)]


def _lifecycles(srv: socket.socket, dport: int, n: int) -> list[int]:
    """n short connections; the client closes first (it will hold TIME_WAIT). Returns the local ports used."""
    used = []
    for _ in range(n):
        c = socket.socket()
        c.settimeout(2.0)
        c.connect(("127.0.0.1", dport))
        used.append(c.getsockname()[1])
        s, _ = srv.accept()
        c.close()  # FIN first: active closer
        s.settimeout(2.0)
        assert s.recv(1) == b""  # the client's FIN arrived
        s.close()  # server FIN -> client FIN_WAIT_2 -> TIME_WAIT
    return used


def _connect_errno(dport: int) -> int:
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", dport))
        return 0
    except OSError as exc:
        return exc.errno or -1
    finally:
        c.close()


def test_port_exhaustion_and_tw_reuse_on_the_kernel() -> None:
    from tcpwise.lab.netns import in_netns, new_run_id, sh

    ns = f"tcpwise-{new_run_id()}-a"  # the lab's naming, so `tcpwise lab clean` removes it after a crash
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        _ns_sysctl(ns, "net.ipv4.ip_local_port_range", f"{PORTS[0]} {PORTS[1]}")
        _ns_sysctl(ns, "net.ipv4.tcp_tw_reuse", "0")
        _ns_sysctl(ns, "net.ipv4.tcp_fin_timeout", "30")
        _ns_sysctl(ns, "net.ipv4.tcp_timestamps", "1")
        with in_netns(ns):
            srv = socket.socket()
            srv.bind(("127.0.0.1", 8080))
            srv.listen(64)
            srv2 = socket.socket()
            srv2.bind(("127.0.0.1", 8081))
            srv2.listen(64)
            try:
                used = _lifecycles(srv, 8080, 10)
                assert sorted(used) == list(range(PORTS[0], PORTS[1] + 1))
                kernel_11th = _connect_errno(8080)
                timers = _time_wait(ns, 8080)
                # Another destination has its own 4-tuples: the same ports work towards it.
                _ns_sysctl(ns, "net.ipv4.tcp_timestamps", "0")
                _lifecycles(srv2, 8081, 10)
                _ns_sysctl(ns, "net.ipv4.tcp_tw_reuse", "1")
                time.sleep(1.2)  # tcp_twsk_unique: the TIME_WAIT's last timestamp must be over 1 s old
                reuse_with_ts = _connect_errno(8080)
                reuse_without_ts = _connect_errno(8081)
            finally:
                srv.close()
                srv2.close()
    finally:
        sh("ip", "netns", "delete", ns, check=False)

    # The kernel ...
    assert kernel_11th == errno.EADDRNOTAVAIL
    assert len(timers) == 10 and min(timers) > 30  # ~59 s left although tcp_fin_timeout=30
    assert reuse_with_ts == 0
    assert reuse_without_ts == errno.EADDRNOTAVAIL
    # ... and the model say the same.
    p = {
        "rate": 1.0,
        "duration": 1.0,
        "port_range": f"{PORTS[0]}-{PORTS[1]}",
        "delay": 0.0,
        "tw_reuse": 0,
        "timestamps": True,
        "fin_timeout": 30.0,
    }
    lc = calibrate(p).lc
    assert lc.time_wait == 60.0
    model = simulate_flow(11.0, 1.0, 10, lc)  # 11 connects within one second through 10 ports
    assert model.succeeded == 10 and model.failed == 1
    assert calibrate({**p, "tw_reuse": 1}).lc.reuse_after is not None
    assert calibrate({**p, "tw_reuse": 1, "timestamps": False}).lc.reuse_after is None

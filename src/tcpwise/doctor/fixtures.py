"""Child processes that hold real sockets in a chosen condition — for the doctor's tests and benchmark.

Theory of operation
-------------------
Every condition the doctor diagnoses is made by a real process so that attribution (inode -> pid) is tested
for real: :class:`Child` runs a short Python program (``python -c``) that sets up its sockets, prints one line
``READY <json>`` (ports, counts) and then blocks reading stdin; closing stdin (or :meth:`Child.stop`) makes it
exit, so a crashed test never leaves a holder behind for long. A child can be started inside a network
namespace (``ip netns exec``), with a low RLIMIT_NOFILE (set in the child before it opens anything).

Traffic goes only to loopback (127.0.0.0/8) or to addresses inside namespaces the caller created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

__all__ = [
    "Child",
    "PAIRS",
    "SERVER_NO_CLOSE",
    "LISTEN_NO_ACCEPT",
    "IDLE_PAIRS",
    "CLIENTS",
    "ACCEPT_CLOSE",
    "RECV_NO_READ",
    "SEND_FLOOD",
    "SEND_ON_LINE",
    "SYN_FLOOD",
    "env_pythonpath",
]

_PRELUDE = """
import json, os, resource, socket, sys, time
def ready(**kw):
    sys.stdout.write("READY " + json.dumps(kw) + "\\n"); sys.stdout.flush()
def park():
    sys.stdin.read()   # until the parent closes our stdin
def reset_all(socks):
    # SO_LINGER {1,0}: close() sends RST, so a benchmark's 30k sockets do not linger in TIME_WAIT for 60 s.
    import struct
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
        except OSError:
            pass
"""

# argv: addr n [nofile]. A listener and n connections to it, both ends kept: 2n ESTABLISHED sockets.
PAIRS = """
addr, n = sys.argv[1], int(sys.argv[2])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, 0)); ls.listen(4096)
keep = []
for i in range(n):
    c = socket.socket(); c.connect(ls.getsockname()); s, _ = ls.accept(); keep += (c, s)
ready(port=ls.getsockname()[1], n=n)
park()
reset_all(keep)
"""

# argv: addr. Accepts forever and never closes anything: peers that close leave CLOSE_WAIT here.
SERVER_NO_CLOSE = """
addr = sys.argv[1]
ls = socket.socket(); ls.bind((addr, 0)); ls.listen(1024)
ready(port=ls.getsockname()[1])
import threading
threading.Thread(target=park, daemon=True).start()
keep = []
ls.settimeout(0.2)
while threading.active_count() > 1:
    try:
        s, _ = ls.accept(); keep.append(s)
    except socket.timeout:
        pass
"""

# argv: addr backlog. Listens and never accepts.
LISTEN_NO_ACCEPT = """
addr, backlog = sys.argv[1], int(sys.argv[2])
ls = socket.socket(); ls.bind((addr, 0)); ls.listen(backlog)
ready(port=ls.getsockname()[1])
park()
"""

# argv: addr n keepalive(0/1). n idle connections to a private listener; client sockets get SO_KEEPALIVE or not.
IDLE_PAIRS = """
addr, n, ka = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
ls = socket.socket(); ls.bind((addr, 0)); ls.listen(128)
keep = []
for i in range(n):
    c = socket.socket()
    if ka:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 3600)
    c.connect(ls.getsockname()); s, _ = ls.accept()
    if ka:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 3600)
    keep += (c, s)
ready(port=ls.getsockname()[1], n=n)
park()
"""

# argv: addr port n mode. n client connections to addr:port; mode "hold" keeps them, "close" closes them
# (the active close: TIME_WAIT here, CLOSE_WAIT at a server that never closes), "fill" also opens files
# until the RLIMIT_NOFILE soft limit is nearly reached (all but 3 fds).
CLIENTS = """
addr, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
keep = []
for i in range(n):
    c = socket.create_connection((addr, port), timeout=5); keep.append(c)
if mode == "close":
    for c in keep: c.close()
    keep = []
if mode == "fill":
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    while len(os.listdir("/proc/self/fd")) < soft - 2:  # listdir counts its own fd too
        keep.append(open("/dev/null"))
ready(n=n, fds=len(os.listdir("/proc/self/fd")))
park()
"""


# argv: addr n. Accepts n connections, then for each waits for EOF and closes: the clients close first, so
# their side ends in TIME_WAIT (client-side TIME_WAIT, the timewait-ports condition).
ACCEPT_CLOSE = """
addr, n = sys.argv[1], int(sys.argv[2])
ls = socket.socket(); ls.bind((addr, 0)); ls.listen(4096)
ready(port=ls.getsockname()[1])
conns = []
ls.settimeout(30)
for i in range(n):
    s, _ = ls.accept(); conns.append(s)
for s in conns:
    s.settimeout(30)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
park()
"""

# argv: addr. Accepts one connection and never reads from it: its receive window closes to zero.
RECV_NO_READ = """
addr = sys.argv[1]
ls = socket.socket(); ls.bind((addr, 0)); ls.listen(8)
ready(port=ls.getsockname()[1])
s, _ = ls.accept()
park()
"""

# argv: addr port. Connects and writes until the socket would block (peer window zero, send buffer full).
SEND_FLOOD = """
addr, port = sys.argv[1], int(sys.argv[2])
c = socket.create_connection((addr, port)); c.setblocking(False)
sent = 0
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        sent += c.send(b"x" * 65536)
    except BlockingIOError:
        time.sleep(0.05)
        try:
            sent += c.send(b"x" * 65536)
        except BlockingIOError:
            break
ready(sent=sent)
park()
"""

# argv: addr port. Connects, then sends 1000 bytes when a line arrives on stdin (after the test broke the path).
SEND_ON_LINE = """
addr, port = sys.argv[1], int(sys.argv[2])
c = socket.create_connection((addr, port))
ready()
sys.stdin.readline()
c.send(b"x" * 1000)
park()
"""

# argv: src_prefix dst port count. Raw IPv4 SYNs (IP_HDRINCL) from spoofed src_prefix.X.Y addresses to dst:port
# — a SYN flood. Only ever run inside a namespace the caller created (the addresses lead nowhere else).
SYN_FLOOD = """
from tcpwise.wire.ip import build_packet
from tcpwise.wire.segment import TcpSegment
from tcpwise.vocab import SYN
prefix, dst, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(count):
    src = f"{prefix}.{1 + i // 250}.{1 + i % 250}"
    seg = TcpSegment(sport=10000 + i, dport=port, seq=1000 * i, ack=0, flags=SYN, window=64240)
    raw.sendto(build_packet(src, dst, seg), (dst, 0))
ready(sent=count)
park()
"""


class Child:
    """A holder process. ``info`` is the JSON its READY line carried."""

    def __init__(
        self,
        program: str,
        *args: object,
        netns: str | None = None,
        nofile: int | None = None,
        timeout: float = 60.0,
    ) -> None:
        code = _PRELUDE
        if nofile is not None:
            code += f"\nresource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}))\n"
        code += textwrap.dedent(program)
        argv = [sys.executable, "-c", code, *map(str, args)]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env_pythonpath()
        )
        self.pid = self.proc.pid  # `ip netns exec` execs the command: same pid
        self.info: dict[str, Any] = {}
        import select

        assert self.proc.stdout is not None
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if r else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"holder child failed to start (rc={self.proc.poll()}): {line!r}")
        self.info = json.loads(line[6:])

    def stop(self) -> None:
        """Close stdin (the child exits) and reap it; kill it if it lingers."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def env_pythonpath() -> dict[str, str]:
    """Environment for subprocesses that must import this checkout's tcpwise."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class Netns:
    """A throw-away network namespace ``tcpwise-doc-<pid>-<n>`` with lo up (and optionally a link d0 carrying
    198.18.0.1/15 that leads nowhere: a sink for replies to spoofed addresses). Deleted on exit."""

    _n = 0

    def __init__(self, dummy: bool = False, sysctls: dict[str, str] | None = None) -> None:
        Netns._n += 1
        self.name = f"tcpwise-doc-{os.getpid()}-{Netns._n}"
        self.dummy = dummy
        self.sysctls = sysctls or {}

    def run(self, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *argv], check=True, capture_output=True, timeout=20)

    def __enter__(self) -> Netns:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True, timeout=20)
        try:
            self.run("ip", "link", "set", "lo", "up")
            if self.dummy:
                # A veth pair with nobody behind d1 (the dummy driver is not always built): what is routed
                # out of d0 waits for ARP that never answers and is dropped.
                self.run("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
                self.run("ip", "addr", "add", "198.18.0.1/15", "dev", "d0")
                self.run("ip", "link", "set", "d0", "up")
                self.run("ip", "link", "set", "d1", "up")
            for k, v in self.sysctls.items():
                self.run("sysctl", "-q", "-w", f"{k}={v}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)

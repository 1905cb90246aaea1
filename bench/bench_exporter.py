"""Benchmark: exporter scrape latency with 1,000 idle attacker connections open, new design vs the old one.

Both servers run in a child process with RLIMIT_NOFILE 1024 (a common soft limit) and serve the same collector
(tcpwise.doctor.exporter.TcpCollector, full snapshot every 10 s):

- old: prometheus_client.start_http_server — a thread per connection, no timeouts, listen backlog 5;
- new: ``tcpwise exporter --no-watch --cache 0`` — tcpwise.doctor.httpserve (asyncio, connection cap with
  eviction of idle clients, deadlines, backlog 1024), collecting on every scrape like the old one (its default
  0.5 s page cache would serve most of these back-to-back scrapes from memory: reported separately as "new+cache").

For each: open 1,000 idle TCP connections to it (they send nothing; and 1,200, beyond the fd limit), then scrape /metrics sequentially
(``SCRAPES`` times, 2 s timeout each, at most ``PHASE_S`` seconds in all), and report p50/p99/max latency,
failed scrapes, the server's CPU time during the phase and its stderr line count. Then a control run without
attackers. Goal: p99 < 100 ms and 0 failed scrapes under attack.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

ATTACKERS = 1000
SCRAPES = 200
PHASE_S = 40.0
TIMEOUT_S = 2.0

OLD = """
import sys, time
from prometheus_client import start_http_server
from prometheus_client.core import CollectorRegistry
from tcpwise.doctor.exporter import TcpCollector
col = TcpCollector(); col.start_background()
reg = CollectorRegistry(); reg.register(col)
start_http_server(int(sys.argv[1]), addr="127.0.0.1", registry=reg)
print("serving", flush=True)
while True:
    time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def limit_1024() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def start(design: str, port: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    if design == "old":
        argv = [sys.executable, "-c", OLD, str(port)]
    else:
        argv = [
            sys.executable,
            "-m",
            "tcpwise.cli",
            "exporter",
            "--listen",
            f"127.0.0.1:{port}",
            "--no-watch",
        ]
    p = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=limit_1024
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    if "serving" not in line:
        p.kill()
        raise RuntimeError(f"{design} server did not start: {p.stderr.read() if p.stderr else ''}")
    return p


def scrape_phase(port: int) -> tuple[list[float], int, int]:
    lat: list[float] = []
    failed = 0
    t_end = time.monotonic() + PHASE_S
    n = 0
    while n < SCRAPES and time.monotonic() < t_end:
        n += 1
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT_S) as r:
                body = r.read()
            if r.status != 200 or b"tcpwise_sockets" not in body:
                failed += 1
                continue
            lat.append(time.perf_counter() - t)
        except Exception:  # noqa: BLE001 - a failed scrape is a result here
            failed += 1
    return lat, failed, SCRAPES - n


def wait_established(socks: list[socket.socket], limit_s: float) -> int:
    """Wait (<= limit_s) until the attackers' handshakes complete: a backlog of 5 drops SYNs, which are retried
    after 1, 3, 7 s ... — the attack only bites once the connections exist."""
    import select

    pending = set(socks)
    deadline = time.monotonic() + limit_s
    done = 0
    while pending and time.monotonic() < deadline:
        p = select.poll()
        fds = {s.fileno(): s for s in pending}
        for fd in fds:
            p.register(fd, select.POLLOUT)
        for fd, _ in p.poll(200):
            s = fds[fd]
            pending.discard(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                done += 1
    time.sleep(0.5)  # and let the server take the last ones in
    return done


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def run(design: str, attackers: int) -> dict[str, object]:
    port = free_port()
    p = start(design, port)
    idle: list[socket.socket] = []
    established = 0
    try:
        time.sleep(0.5)
        for _ in range(attackers):
            try:
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                idle.append(s)
            except OSError:
                break
        established = wait_established(idle, 20.0)
        c0 = cpu_s(p.pid)
        t0 = time.monotonic()
        lat, failed, skipped = scrape_phase(port)
        wall = time.monotonic() - t0
        cpu = cpu_s(p.pid) - c0
    finally:
        for s in idle:
            s.close()
        p.terminate()
        try:
            _, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
    return {
        "design": design,
        "attackers": attackers,
        "established": established,
        "ok": len(lat),
        "failed": failed,
        "not_attempted": skipped,
        "p50_ms": pct(lat, 0.5) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "max_ms": max(lat) * 1000 if lat else float("nan"),
        "cpu_per_s": cpu / wall if wall else 0.0,
        "stderr_lines": len(err.splitlines()),
    }


def main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    rows = []
    for attackers in (0, ATTACKERS, 1200):
        for design in ("old", "new", "new+cache"):
            rows.append(run(design, attackers))
    print(
        f"exporter scrapes: {SCRAPES} sequential per run (timeout {TIMEOUT_S:g} s, <= {PHASE_S:g} s), fd limit 1024"
    )
    print(
        f"{'design':<9} {'idle':>5} {'estab':>5} {'ok':>4} {'failed':>6} {'skipped':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'cpu/s':>6} {'stderr':>6}"
    )
    for r in rows:
        print(
            f"{r['design']:<9} {r['attackers']:>5} {r['established']:>5} {r['ok']:>4} {r['failed']:>6} {r['not_attempted']:>7} "
            f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['cpu_per_s']:>6.2f} {r['stderr_lines']:>6}"
        )
    old, new = rows[3], rows[4]  # 1,000 attackers
    goal = new["failed"] == 0 and new["not_attempted"] == 0 and float(new["p99_ms"]) < 100  # type: ignore[arg-type]
    ratio = float(new["p99_ms"]) / float(old["p99_ms"]) if old["ok"] else float("nan")  # type: ignore[arg-type]
    print(
        f"RESULT with {ATTACKERS} idle attackers: new p99 {float(new['p99_ms']):.1f} ms, {new['failed']} failed; "  # type: ignore[arg-type]
        f"old p99 {float(old['p99_ms']):.1f} ms, {old['failed']} failed, {old['not_attempted']} not attempted; "  # type: ignore[arg-type]
        f"p99 new/old = {ratio:.2f}; goal (p99 < 100 ms, 0 failed) {'met' if goal else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

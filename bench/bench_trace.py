"""Benchmark: `tcpwise trace --format json` vs `tshark -q -z conv,tcp` vs `tcptrace -n` on one loopback capture.

The benchmark records its own capture: `tcpdump -i lo` on a port it picks, while worker processes generate
bounded traffic to 127.0.0.1 only (many short request/response connections, some chatty ones with many small
exchanges, a few bulk transfers). Every loop is bounded in count and in time; tcpdump and the server are stopped
in `finally`. Then each tool reads the same file (output to /dev/null), timed as wall clock including start-up,
best of --repeat runs, and the script prints packets/s and ratios measured in this run.

    sudo .venv/bin/python bench/bench_trace.py [--packets 320000] [--keep FILE] [--pcap EXISTING]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

HOST = "127.0.0.1"
DEADLINE_S = 75.0  # traffic generation never runs longer than this


def _server(lsock: socket.socket, ready: mp.synchronize.Event, stop: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    import asyncio

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await r.readline()
                if not line:
                    break
                cmd = line.split()
                if cmd[0] == b"BULK":
                    n = int(cmd[1])
                    chunk = b"b" * 16384
                    while n > 0:
                        w.write(chunk[: min(n, len(chunk))])
                        n -= len(chunk)
                        await w.drain()
                else:
                    w.write(b"ok " + line)
                    await w.drain()
        except (ConnectionError, IndexError, ValueError):
            pass
        finally:
            w.close()

    async def main() -> None:
        srv = await asyncio.start_server(handle, sock=lsock, backlog=1024)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        srv.close()

    asyncio.run(main())


def _client(port: int, kind: str, budget: Any, deadline: float) -> None:
    """Open connections of one ``kind`` until the shared packet budget is spent or the deadline passes."""
    end = time.monotonic() + deadline
    i = 0
    while time.monotonic() < end and budget.value > 0:
        i += 1
        try:
            s = socket.create_connection((HOST, port), timeout=5)
        except OSError:
            time.sleep(0.01)
            continue
        spent = 0
        try:
            if kind == "short":  # ~10 packets: handshake, request, response, two FINs and their ACKs
                s.sendall(b"GET /%d\n" % i)
                s.recv(4096)
                spent = 10
            elif kind == "chatty":  # ~2 packets per exchange with TCP_NODELAY
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                f = s.makefile("rb")
                for j in range(200):
                    s.sendall(b"PING %d\n" % j)
                    f.readline()
                spent = 400
            else:  # bulk: a small receive buffer -> many segments and window updates
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
                s.sendall(b"BULK 2000000\n")
                got = 0
                while got < 2_000_000:
                    b = s.recv(4096)
                    if not b:
                        break
                    got += len(b)
                    spent += 1
        except OSError:
            pass
        finally:
            s.close()
        with budget.get_lock():
            budget.value -= spent


def record(path: str, target_packets: int) -> int:
    """Capture bounded loopback traffic into ``path``; returns tcpdump's count of captured packets."""
    if os.geteuid() != 0:
        sys.exit("bench_trace: needs root for tcpdump -i lo (run with sudo)")
    lsock = socket.socket()
    lsock.bind((HOST, 0))  # a free port, owned by us before tcpdump starts filtering on it
    lsock.listen(1024)
    port = lsock.getsockname()[1]
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-w", path, "-s", "128", "-B", "65536", "-U", f"tcp port {port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ctx = mp.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    budget = ctx.Value("q", target_packets)
    srv = ctx.Process(target=_server, args=(lsock, ready, stop), daemon=True)
    procs: list[Any] = []
    captured = 0
    err = b""
    try:
        time.sleep(1.0)  # tcpdump needs a moment before it captures
        srv.start()
        if not ready.wait(10):
            raise SystemExit("bench_trace: server did not start")
        for kind in ("short", "short", "short", "chatty", "chatty", "bulk"):
            p = ctx.Process(target=_client, args=(port, kind, budget, DEADLINE_S))
            p.start()
            procs.append(p)
        for p in procs:
            p.join(DEADLINE_S + 10)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        stop.set()
        srv.join(5)
        if srv.is_alive():
            srv.terminate()
        lsock.close()
        time.sleep(0.5)
        dump.send_signal(signal.SIGINT)
        try:
            _, err = dump.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            dump.kill()
    for line in err.decode(errors="replace").splitlines():
        if "captured" in line or "dropped" in line:
            print("  tcpdump:", line.strip())
            if "captured" in line:
                captured = int(line.split()[0])
    return captured


def count_packets(path: str) -> int:
    from tcpwise.trace.reader import open_capture

    with open_capture(path) as cap:
        return sum(len(b) for b in cap.batches())


def timed(cmd: list[str], repeat: int, timeout: float) -> tuple[float, float] | None:
    """Best (wall seconds, CPU seconds user+sys of the child) over ``repeat`` runs; None if the tool failed."""
    best: tuple[float, float] | None = None
    for _ in range(repeat):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"  {cmd[0]}: timed out after {timeout:.0f} s")
            return best
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        if r.returncode != 0:
            print(
                f"  {' '.join(cmd[:3])}: exit {r.returncode}: {r.stderr.decode(errors='replace').strip()[:200]}"
            )
            return None
        best = (dt, cpu) if best is None else (min(best[0], dt), min(best[1], cpu))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=330_000, help="traffic to aim for (packets)")
    ap.add_argument("--pcap", default=None, help="use this existing capture instead of recording one")
    ap.add_argument("--keep", default=None, help="keep the recorded capture at this path")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; best of them is reported")
    a = ap.parse_args()

    tmpdir = tempfile.mkdtemp(prefix="tcpwise-bench-trace-")
    try:
        path = a.pcap or os.path.join(tmpdir, "lo.pcap")
        if not a.pcap:
            t0 = time.monotonic()
            got = record(path, a.packets)
            if got < a.packets:
                print(
                    f"  note: {got} packets captured, fewer than the {a.packets} aimed for (deadline reached)"
                )
            print(f"recorded {path} in {time.monotonic() - t0:.1f} s")
            if a.keep:
                shutil.copy(path, a.keep)
        n = count_packets(path)
        print(f"capture: {n} packets, {os.path.getsize(path) / 1e6:.1f} MB")
        tcpwise = [sys.executable, "-m", "tcpwise.cli", "trace", path, "--format", "json", "-o", os.devnull]
        tools: list[tuple[str, list[str]]] = [
            ("tcpwise trace --format json", tcpwise),  # default --jobs: 2 workers on this file size
            ("tcpwise ... --jobs 1", [*tcpwise, "--jobs", "1"]),
        ]
        if shutil.which("tshark"):
            tools.append(("tshark -q -z conv,tcp", ["tshark", "-n", "-q", "-z", "conv,tcp", "-r", path]))
        if shutil.which("tcptrace"):
            tools.append(("tcptrace -n", ["tcptrace", "-n", path]))
        res: dict[str, tuple[float, float]] = {}
        failed: set[str] = set()
        # Rounds interleave the tools, so a burst of load from other processes hits all of them alike; each tool
        # keeps its best wall and best CPU time.
        for _ in range(a.repeat):
            for name, cmd in tools:
                if name in failed:
                    continue
                r = timed(cmd, 1, timeout=300)
                if r is None:
                    failed.add(name)
                    continue
                old = res.get(name)
                res[name] = r if old is None else (min(old[0], r[0]), min(old[1], r[1]))
        print(f"{'tool':30s} {'wall s':>7s} {'kpkt/s':>7s} {'CPU s':>6s} {'kpkt/CPU-s':>10s}")
        for name, (wall, cpu) in res.items():
            print(f"{name:30s} {wall:7.2f} {n / wall / 1000:7.0f} {cpu:6.2f} {n / cpu / 1000:10.0f}")
        ours = res.get("tcpwise trace --format json")
        if ours:
            for label, mine in (("tcpwise", ours), ("tcpwise --jobs 1", res.get("tcpwise ... --jobs 1"))):
                for name in ("tshark -q -z conv,tcp", "tcptrace -n"):
                    if mine and name in res:
                        w, c = res[name]
                        print(
                            f"{label} throughput vs {name}: {w / mine[0]:.2f}x (wall), {c / mine[1]:.2f}x (CPU)"
                        )
        print(f"load average after the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

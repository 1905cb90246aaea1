"""Benchmark `tcpwise trace` against tshark and tcptrace, and its memory on a 500k-SYN flood.

Part 1 (speed): the benchmark records its own capture — `tcpdump -i lo` on a port it picks while worker
processes generate bounded traffic to 127.0.0.1 only (many short request/response connections, some chatty ones,
one bulk transfer: the shape where per-connection cost dominates) — then times each tool on the same file, output to
/dev/null: `tcpwise trace --format json` (default --jobs), the same with --jobs 2, the pure-Python path
(TCPWISE_NATIVE=0, its own default --jobs), `tshark -q -z conv,tcp` and `tcptrace -n`. Rounds interleave the tools so that load from other processes hits all of them alike; the script
prints the median (and best) wall and CPU time of each and the ratios of medians, all measured in this run.

Part 2 (memory): it writes a 35 MB capture of 500,000 unanswered SYNs (Ethernet, valid checksums, 10 s of
capture time) and runs every mode on it in a child process, printing the peak resident set (VmHWM of the child and
of its --jobs workers) and the time; the goal is < 300 MB in every mode. Then the same for an ACK scan (300,000
4-tuples of one bare ACK within 1 s), with tshark's peak on the same file as the reference.

    sudo .venv/bin/python bench/bench_trace.py [--packets 446000] [--repeat 5] [--keep FILE] [--pcap EXISTING]
                                               [--skip-speed] [--skip-flood]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

HOST = "127.0.0.1"
DEADLINE_S = 75.0  # traffic generation never runs longer than this


def _server(lsock: socket.socket, ready: mp.synchronize.Event, stop: mp.synchronize.Event) -> None:
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


def timed(cmd: list[str], timeout: float) -> tuple[float, float] | None:
    """(wall seconds, CPU seconds user+sys of the child and its children) of one run; None if the tool failed."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  {cmd[0]}: timed out after {timeout:.0f} s")
        return None
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if r.returncode != 0:
        print(
            f"  {' '.join(cmd[:3])}: exit {r.returncode}: {r.stderr.decode(errors='replace').strip()[:200]}"
        )
        return None
    return dt, cpu


def speed(path: str, repeat: int) -> None:
    from tcpwise.trace import native

    n = count_packets(path)
    built = [m for m in native.MODULES if native.load(m) is not None]
    print(f"native code: {', '.join(built) or 'not built (pure Python)'}")
    print(f"capture: {n} packets, {os.path.getsize(path) / 1e6:.1f} MB, {count_conns(path)} connections")
    tcpwise = [sys.executable, "-m", "tcpwise.cli", "trace", path, "--format", "json", "-o", os.devnull]
    tools: list[tuple[str, list[str]]] = [
        (
            "tcpwise trace --format json",
            tcpwise,
        ),  # default --jobs: 1 with the native code, else 2 on this size
        ("tcpwise ... --jobs 2", [*tcpwise, "--jobs", "2"]),
        # The pure-Python path (its default --jobs), to show what the native code buys in the same run.
        ("... TCPWISE_NATIVE=0", ["env", "TCPWISE_NATIVE=0", *tcpwise]),
    ]
    if shutil.which("tshark"):
        tools.append(("tshark -q -z conv,tcp", ["tshark", "-n", "-q", "-z", "conv,tcp", "-r", path]))
    if shutil.which("tcptrace"):
        tools.append(("tcptrace -n", ["tcptrace", "-n", path]))
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in tools}
    failed: set[str] = set()
    for _ in range(repeat):  # interleaved rounds
        for name, cmd in tools:
            if name in failed:
                continue
            r = timed(cmd, timeout=300)
            if r is None:
                failed.add(name)
            else:
                runs[name].append(r)
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in runs.items()
        if v
    }
    print(
        f"{'tool (median of ' + str(repeat) + ')':30s} {'wall s':>7s} {'best':>6s} {'kpkt/s':>7s} {'CPU s':>6s}"
    )
    for name, (wall, cpu) in med.items():
        best = min(w for w, _ in runs[name])
        print(f"{name:30s} {wall:7.2f} {best:6.2f} {n / wall / 1000:7.0f} {cpu:6.2f}")
    for label in ("tcpwise trace --format json", "tcpwise ... --jobs 2", "... TCPWISE_NATIVE=0"):
        mine = med.get(label)
        for ref, goal in (("tshark -q -z conv,tcp", 3.0), ("tcptrace -n", 0.5)):
            if mine and ref in med:
                w, c = med[ref]
                print(
                    f"{label} vs {ref}: {w / mine[0]:.2f}x wall, {c / mine[1]:.2f}x CPU (goal >= {goal}x wall: "
                    f"{'met' if w / mine[0] >= goal else 'NOT met'})"
                )
    print(f"load average after the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def count_conns(path: str) -> int:
    from tcpwise.trace.decode import AddrTable
    from tcpwise.trace.output import trace_file

    return trace_file(path, lambda c: None, AddrTable()).connections


# -- part 2: a SYN flood ---------------------------------------------------------------------------------------------
def write_syn_flood(path: str, n: int = 500_000, seconds: float = 10.0, flags: int = 0x02) -> None:
    """n unanswered SYNs from distinct sources to 198.18.1.1:80, spread over ``seconds`` (54-byte Ethernet frames,
    valid checksums): what a SYN flood looks like at the victim. ``flags=0x10``: an ACK scan instead (one bare ACK
    per 4-tuple, what a capture started mid-way or a scanner leaves)."""
    from tcpwise.wire import internet_checksum

    rec = struct.Struct("<IIII")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        out = bytearray()
        for i in range(n):
            src, dst = bytes([198, 19, (i >> 8) & 0xFF, i & 0xFF]), bytes([198, 18, 1, 1])
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, src, dst))
            struct.pack_into("!H", ip, 10, internet_checksum(ip))
            isn = (i * 2654435761) & 0xFFFFFFFF
            tcp = bytearray(
                struct.pack("!HHIIBBHHH", 1024 + (i >> 16) * 7, 80, isn, 0, 0x50, flags, 64240, 0, 0)
            )
            struct.pack_into("!H", tcp, 16, internet_checksum(src + dst + b"\x00\x06\x00\x14" + tcp))
            t = 1_700_000_000 + seconds * i / n
            out += rec.pack(int(t), int((t % 1) * 1e6) % 1_000_000, 54, 54)
            out += b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp
            if len(out) > 1 << 22:
                f.write(out)
                out = bytearray()
        f.write(out)


def peak_run(argv: list[str]) -> tuple[int, float, float]:
    """(exit code, seconds, peak RSS MB over the process and its --jobs workers) of `tcpwise trace ARGV`."""
    from tcpwise.linux.procfs import run_peak

    run = run_peak("tcpwise.cli:main", ["trace", *argv])
    return run.returncode, run.seconds, run.peak_kb / 1024


def flood(tmpdir: str) -> None:
    path = os.path.join(tmpdir, "syn500k.pcap")
    t0 = time.perf_counter()
    write_syn_flood(path)
    print(f"\nSYN flood: 500000 unanswered SYNs, {os.path.getsize(path) / 1e6:.0f} MB (written in "
          f"{time.perf_counter() - t0:.1f} s); goal: peak RSS < 300 MB in every mode")  # fmt: skip
    out = os.path.join(tmpdir, "out")
    modes = [
        ("table", ["--format", "table", "-o", out]),
        ("json", ["--format", "json", "-o", out]),
        ("json --jobs 1", ["--format", "json", "--jobs", "1", "-o", out]),
        ("zeek", ["--format", "zeek", "-o", out]),
        ("--conn 250000", ["--conn", "250000", "-o", out]),
    ]
    try:
        import pyarrow  # noqa: F401

        modes.append(("parquet", ["--format", "parquet", "-o", out]))
    except ImportError:
        print("  (pyarrow not installed: parquet skipped)")
    print(f"{'mode':16s} {'exit':>4s} {'time s':>7s} {'peak RSS MB':>12s}")
    worst = 0.0
    for name, extra in modes:
        rc, dt, peak = peak_run([path, *extra])
        worst = max(worst, peak)
        print(f"{name:16s} {rc:4d} {dt:7.1f} {peak:12.0f}")
    print(f"worst peak RSS: {worst:.0f} MB: goal < 300 MB {'met' if worst < 300 else 'NOT met'}")
    ack_scan(tmpdir, out)


def ack_scan(tmpdir: str, out: str) -> None:
    """The same memory bound for one bare ACK per 4-tuple (300,000 within 1 s), with tshark's peak on the same
    file as the reference: before non-SYN first packets were held compact, each was a full connection."""
    path = os.path.join(tmpdir, "ack300k.pcap")
    write_syn_flood(path, 300_000, 1.0, flags=0x10)
    print(f"\nACK scan: 300000 4-tuples of one bare ACK within 1 s, {os.path.getsize(path) / 1e6:.0f} MB")
    print(f"{'tool':24s} {'exit':>4s} {'time s':>7s} {'peak RSS MB':>12s}")
    for name, extra in (("tcpwise table", ["--format", "table"]), ("tcpwise json --jobs 1", ["--format", "json",
                        "--jobs", "1"]), ("tcpwise json (2 jobs)", ["--format", "json", "--jobs", "2"])):  # fmt: skip
        rc, dt, peak = peak_run([path, *extra, "-o", out])
        print(f"{name:24s} {rc:4d} {dt:7.1f} {peak:12.0f}")
    if shutil.which("tshark"):
        t0 = time.perf_counter()
        p = subprocess.Popen(["tshark", "-q", "-z", "conv,tcp", "-r", path], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
        _pid, status, ru = os.wait4(p.pid, 0)  # this child's own peak (ru_maxrss, kB), not every child's
        p.returncode = os.waitstatus_to_exitcode(status)
        dt = time.perf_counter() - t0
        print(f"{'tshark -q -z conv,tcp':24s} {p.returncode:4d} {dt:7.1f} {ru.ru_maxrss / 1024:12.0f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--packets", type=int, default=446_000, help="traffic to aim for (packets; default 446000)"
    )
    ap.add_argument("--pcap", default=None, help="use this existing capture instead of recording one")
    ap.add_argument("--keep", default=None, help="keep the recorded capture at this path")
    ap.add_argument(
        "--repeat", type=int, default=5, help="interleaved rounds (default 5); medians are reported"
    )
    ap.add_argument("--skip-speed", action="store_true", help="only the SYN-flood memory run")
    ap.add_argument("--skip-flood", action="store_true", help="only the speed comparison")
    a = ap.parse_args()
    # Byte-compile tcpwise first, as an installed package is: an editable install (or PYTHONDONTWRITEBYTECODE)
    # would otherwise compile the modules from source in every timed run (~70 ms of a ~1 s run).
    import compileall

    import tcpwise

    compileall.compile_dir(os.path.dirname(tcpwise.__file__), quiet=1)

    tmpdir = tempfile.mkdtemp(prefix="tcpwise-bench-trace-")
    try:
        if not a.skip_speed:
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
            speed(path, a.repeat)
        if not a.skip_flood:
            flood(tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: `tcpwise doctor --json` vs `ss -tanp` vs psutil.net_connections, and exporter scrape time.

Creates 32,000+ loopback TCP sockets held by 4 child processes (listener + connected pairs on 127.0.0.x, each
child ~8k fds, under the 20k per-process fd limit), then times, in the same run and alternating, the real CLI in
a subprocess (interpreter start included, as a user waits for it), `ss -tanp` (the reference: netlink dump +
/proc fd scan for process names), and psutil.net_connections('tcp') (in a fresh interpreter, and in-process).
Then grows to 50,000+ sockets with 2 more children and times Prometheus scrapes of `tcpwise exporter`.
Prints medians and ratios; cleans up every child and the exporter on any exit. Bounded: ~1-2 minutes.

Goal: doctor/ss ratio <= 1.0 (1.5 at worst); exporter scrape at 50k sockets < 100 ms.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from tcpwise.doctor.fixtures import PAIRS, Child, env_pythonpath  # noqa: E402

PER_CHILD = 4000  # connections -> 8000 sockets + 1 listener per child
ROUNDS = 5


def tcpwise_cmd() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "tcpwise")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "tcpwise.cli"]


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, bytes]:
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, env=env, timeout=120)
    dt = time.perf_counter() - t
    if r.returncode not in (0, 1):
        raise RuntimeError(f"{argv[0]} failed rc={r.returncode}: {r.stderr.decode()[-300:]}")
    return dt, r.stdout


def count_tcp() -> int:
    out = subprocess.run(["ss", "-Htan"], stdout=subprocess.PIPE, text=True).stdout
    return out.count("\n")


def main() -> int:
    if shutil.which("ss") is None:
        print("bench_doctor: ss (iproute2) not installed", file=sys.stderr)
        return 2
    env = env_pythonpath()
    children: list[Child] = []
    exporter: subprocess.Popen[bytes] | None = None
    try:
        t = time.perf_counter()
        for i in range(4):
            children.append(Child(PAIRS, f"127.0.0.{10 + i}", PER_CHILD, timeout=120))
        print(
            f"setup: {len(children)} children, {count_tcp()} TCP sockets on the host "
            f"({time.perf_counter() - t:.1f} s)"
        )
        doctor = [*tcpwise_cmd(), "doctor", "--json"]
        psutil_sub = [sys.executable, "-c", "import psutil; psutil.net_connections('tcp')"]
        res: dict[str, list[float]] = {
            "doctor": [],
            "ss -tanp": [],
            "ss -tan": [],
            "psutil (subprocess)": [],
            "psutil (in-process)": [],
        }
        import psutil

        doc = None
        for _ in range(ROUNDS):
            dt, out = timed(doctor, env)
            res["doctor"].append(dt)
            doc = json.loads(out)
            res["ss -tanp"].append(timed(["ss", "-tanp"])[0])
            res["ss -tan"].append(timed(["ss", "-tan"])[0])
            res["psutil (subprocess)"].append(timed(psutil_sub)[0])
            t = time.perf_counter()
            psutil.net_connections("tcp")
            res["psutil (in-process)"].append(time.perf_counter() - t)
        assert doc is not None
        n = sum(doc["states"].values())
        ref = statistics.median(res["ss -tanp"])
        print(f"\n{n} sockets (doctor's count), median of {ROUNDS} alternating runs:")
        for name, xs in res.items():
            med = statistics.median(xs)
            print(f"  {name:22s} {med * 1000:8.1f} ms   ratio vs ss -tanp {med / ref:5.2f}")
        d = statistics.median(res["doctor"])
        print(f"  doctor's own elapsed_s (in-process collect+analyze): {doc['elapsed_s'] * 1000:.1f} ms")
        start = statistics.median(timed([*tcpwise_cmd(), "--version"], env)[0] for _ in range(3))
        bare = statistics.median(timed([sys.executable, "-c", "pass"])[0] for _ in range(3))
        print(
            f"  tcpwise --version (interpreter + root CLI importing every area): {start * 1000:.1f} ms; "
            f"bare interpreter {bare * 1000:.1f} ms"
        )
        print(
            f"  doctor without the other areas' import cost: {(d - (start - bare)) * 1000:.1f} ms, ratio "
            f"{(d - (start - bare)) / ref:.2f}"
        )
        print(
            f"RESULT doctor/ss-tanp = {d / ref:.2f} (goal <= 1.0, 1.5 at worst); "
            f"doctor/psutil(subprocess) = {d / statistics.median(res['psutil (subprocess)']):.2f}"
        )

        # Exporter scrape at 50k+ sockets.
        for i in range(2):
            children.append(Child(PAIRS, f"127.0.0.{20 + i}", PER_CHILD + 1000, timeout=120))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        exporter = subprocess.Popen(
            # --cache 0: every scrape collects (the default 0.5 s page cache would answer back-to-back scrapes).
            [*tcpwise_cmd(), "exporter", "--listen", f"127.0.0.1:{port}", "--cache", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=10).read()
                break
            except OSError:
                if time.monotonic() > deadline or exporter.poll() is not None:
                    raise RuntimeError("exporter did not start") from None
                time.sleep(0.2)
        total = count_tcp()
        scrapes = []
        ss_tan = []
        size = 0
        for _ in range(10):
            t = time.perf_counter()
            body = urllib.request.urlopen(url, timeout=10).read()
            scrapes.append(time.perf_counter() - t)
            size = len(body)
            ss_tan.append(timed(["ss", "-tan"])[0])
            time.sleep(0.2)
        med = statistics.median(scrapes)
        ref_tan = statistics.median(ss_tan)
        print(
            f"\nexporter: {total} TCP sockets, {size} bytes per scrape, scrape median {med * 1000:.1f} ms, "
            f"max {max(scrapes) * 1000:.1f} ms (goal < 100 ms); `ss -tan` in the same run "
            f"{ref_tan * 1000:.1f} ms -> scrape/ss-tan = {med / ref_tan:.2f}"
        )
        return 0
    finally:
        if exporter is not None:
            exporter.terminate()
            try:
                exporter.wait(timeout=10)
            except subprocess.TimeoutExpired:
                exporter.kill()
        for c in children:
            c.stop()


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the packet-level simulator's throughput .

Prints simulated segments per wall second and connection lifecycles per wall second for
(1) a bulk transfer over a lossy link and (2) many short connections (connect, request, response, close,
TIME_WAIT), and the ratio of simulated time to wall time. Bounded: a few seconds of wall time.
The scale target (10,000 new connections per simulated second for 120 s, >= 2x real time) is met by the
flow-level mode of `timewait-pileup` (see bench/bench_pileup.py); this measures the packet-level core it is
calibrated from.
"""

from __future__ import annotations

import resource
import time
from typing import Any

from tcpwise.script import Close, Connect, HostSpec, LinkSpec, Listen, Script, Send, Shutdown
from tcpwise.sim import run_script
from tcpwise.sim.runner import payload_bytes

HOSTS = (HostSpec("A", "198.18.0.1", "client"), HostSpec("B", "198.18.1.1", "server"))


def bulk() -> None:
    data = payload_bytes(1 << 20)
    steps = (Listen(0, "B", 80), Connect(0, "A", "B", 80), Send(0, "A", data=data), Shutdown(600, "A"))
    link = LinkSpec(delay=0.02, jitter=0.005, loss=0.2, duplicate=0.05, reorder=0.05)
    t = time.perf_counter()
    segs = 0
    for seed in range(5):
        sim, _ = run_script(Script(HOSTS, steps, link, duration=700), seed, record=False)
        segs += sim.counters["segments"]
    wall = time.perf_counter() - t
    print(
        f"bulk 1 MB over 20% loss x5: {segs} segments in {wall:.2f} s = {segs / wall:,.0f} simulated segments/s"
    )


def lifecycles(rate: int = 500, duration: float = 4.0) -> None:
    n = int(rate * duration)
    steps: list[Any] = [Listen(0, "B", 80, on_eof="close", backlog=4096)]
    for i in range(n):
        t = i / rate
        steps += [
            Connect(t, "A", "B", 80, sock=f"c{i}"),
            Send(t + 0.11, "A", 100, sock=f"c{i}"),
            Close(t + 0.2, "A", sock=f"c{i}"),
        ]
    script = Script(HOSTS, tuple(steps), LinkSpec(delay=0.001), duration=duration + 61)
    t = time.perf_counter()
    sim, _ = run_script(script, 1, record=False)
    wall = time.perf_counter() - t
    segs = sim.counters["segments"]
    print(
        f"short connections: {n} lifecycles ({segs} segments) over {duration + 61:.0f} simulated s in {wall:.2f} s wall"
    )
    print(
        f"  = {n / wall:,.0f} lifecycles/s, {segs / wall:,.0f} segments/s; "
        f"{rate} conn/s runs at {duration / wall:.2f}x real time (connection phase)"
    )
    target = 10_000
    print(
        f"  packet-level would need {target / (n / wall):.1f}x more speed for {target} conn/s; "
        f"the flow-level pileup model covers that (bench_pileup.py)"
    )


if __name__ == "__main__":
    bulk()
    lifecycles()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

"""Benchmark: the timewait-pileup scale run, against real time, and the packet model it is calibrated from.

Prints, for ``tcpwise sim timewait-pileup --set rate=10000 --set duration=120`` (1.2 million connection
attempts from one client to one server):

* wall time of the whole CLI command (interpreter start, calibration runs, flow model, JSON output) and the
  ratio simulated-seconds / wall-second (target: >= 2, i.e. under 60 s wall);
* the same with ``tw_reuse=1`` (all 1.2 million lifecycles succeed);
* the flow model alone (lifecycles/s);
* the packet model: segments/s and lifecycles/s on a small run (every segment simulated);
* peak RSS of each.

Usage: ``.venv/bin/python bench/bench_pileup.py``. Bounded: every step has a timeout.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TCPWISE = str(ROOT / ".venv" / "bin" / "tcpwise")


def cli_run(*sets: str) -> tuple[float, dict[str, Any], int]:
    """Run the CLI as a user would; return wall seconds, the JSON run, peak RSS (KiB) of the child."""
    cmd = [TCPWISE, "sim", "timewait-pileup", "--format", "json"]
    for s in sets:
        cmd += ["--set", s]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        raise SystemExit(f"tcpwise exited {out.returncode}")
    return wall, json.loads(out.stdout), max(rss, before)


def main() -> int:
    sys.path.insert(0, str(ROOT / "src"))
    print(f"bench_pileup on {os.cpu_count()} CPUs, python {sys.version.split()[0]}")

    for label, sets in (
        ("scale run", ("rate=10000", "duration=120")),
        ("scale run, tw_reuse=1", ("rate=10000", "duration=120", "tw_reuse=1")),
    ):
        wall, run, rss = cli_run(*sets)
        v = run["summary"]["values"]
        sim_s = run["params"]["duration"]
        ok = all(c["ok"] for c in run["checks"])
        print(f"{label}: tcpwise sim timewait-pileup --set {' --set '.join(sets)}")
        print(
            f"  wall {wall:.2f} s for {sim_s:g} simulated s -> {sim_s / wall:.1f} simulated s per wall s "
            f"(target >= 2.0: {'met' if sim_s / wall >= 2.0 else 'MISSED'}); checks ok: {ok}"
        )
        print(
            f"  connection attempts {v['attempts']}, lifecycles completed {v['succeeded']}, failed connects "
            f"{v['failed']}; {v['attempts'] / wall:,.0f} attempts/s and {v['succeeded'] / wall:,.0f} "
            f"lifecycles/s of wall time; events kept {len(run['events'])}, series points "
            f"{len(run['series']['t'])}; peak RSS {rss / 1024:.0f} MiB"
        )

    from tcpwise.scenarios.timewait import calibrate, packet_pileup
    from tcpwise.sim.fleet import simulate_flow

    p = {
        "rate": 10000.0,
        "duration": 120.0,
        "port_range": "32768-60999",
        "delay": 0.05,
        "tw_reuse": 1,
        "timestamps": True,
        "fin_timeout": 60.0,
    }
    lc = calibrate(p).lc
    t0 = time.perf_counter()
    res = simulate_flow(10000.0, 120.0, 28232, lc)
    dt_flow = time.perf_counter() - t0
    flow_rate = res.succeeded / dt_flow
    print(
        f"flow model alone (tw_reuse=1): {res.succeeded} lifecycles in {dt_flow:.3f} s -> "
        f"{flow_rate:,.0f} lifecycles/s, {120.0 / dt_flow:,.0f} simulated s per wall s"
    )

    pp = {**p, "rate": 200.0, "duration": 5.0, "tw_reuse": 2}
    t0 = time.perf_counter()
    pres, sim = packet_pileup(pp)
    dt = time.perf_counter() - t0
    segs = sim.counters["segments"]
    packet_rate = pres.succeeded / dt
    print(
        f"packet model: {pres.succeeded} lifecycles, {segs} segments in {dt:.2f} s -> {segs / dt:,.0f} "
        f"segments/s, {packet_rate:,.0f} lifecycles/s, {5.0 / dt:.2f} simulated s per wall s"
    )
    print(
        f"flow model vs packet model: {flow_rate / packet_rate:,.0f}x the lifecycles/s "
        f"(a 1.2M-lifecycle packet run would take ~{1_200_000 / packet_rate / 60:,.0f} min)"
    )
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS of this benchmark process: {self_rss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Renderer throughput on a large run (8,000 events: 200 handshake+close lifecycles with a lost ACK each).

Prints events per second for every format and the ratio to ``Run.to_json()`` of the same run — the cheapest
thing anyone does with a run, measured in the same process, so the ratio is comparable across machines. The
drawing formats stop at ``diagram.MAX_EVENTS`` (1,500) events by design; their figures say so. Bounded: each
format is timed over at most 5 repetitions or 10 s.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "render"))

from render_fixtures import close_run  # noqa: E402

from tcpwise.events import Run  # noqa: E402
from tcpwise.render import FORMATS, render  # noqa: E402
from tcpwise.render.diagram import MAX_EVENTS  # noqa: E402


def big_run(n: int = 200) -> Run:
    base = close_run()
    events = [dataclasses.replace(e, t=e.t + 61 * i) for i in range(n) for e in base.events]
    return Run("bench", hosts=base.hosts, events=events, checks=base.checks, summary=base.summary)


def timed(fn: object, budget: float = 10.0, reps: int = 5) -> float:
    best = float("inf")
    start = time.perf_counter()
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - start > budget:
            break
    return best


def main() -> int:
    run = big_run()
    n = len(run.events)
    base = timed(run.to_json)
    print(f"run: {n} events; Run.to_json() {base * 1000:.1f} ms ({n / base:,.0f} events/s)")
    for fmt in FORMATS:
        t = timed(lambda f=fmt: render(run, f))
        drawn = min(n, MAX_EVENTS) if fmt in ("text", "mermaid", "svg", "html") else n
        print(
            f"  {fmt:8} {t * 1000:8.1f} ms  {drawn / t:>12,.0f} events/s  ({drawn} events)  x{t / base:.2f} of to_json"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

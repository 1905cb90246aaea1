"""The scale model: millions of short connections as flows, calibrated from one packet-level lifecycle.

Theory of operation
-------------------
A per-segment simulation costs ~10 segments x several Python objects per connection; 1.2 million lifecycles
(``timewait-pileup --set rate=10000 --set duration=120``) would take many minutes. But when every connection of a
run follows the same script (connect, request, response, close), what matters at scale is *when each connection
holds what*: the ephemeral port from connect() until its TCB is gone, TIME_WAIT from the moment the peer's FIN
arrives until 2*MSL later. Those durations are not guessed here: they are measured on the packet model
(:class:`Lifecycle`, filled by the scenario from one full endpoint run with the same parameters) and then
replayed for every connection. This is a **flow model calibrated from the packet model**, not a second TCP.

Port allocation is the only interaction between connections (Linux ``__inet_hash_connect``: a connect() needs a
local port whose 4-tuple towards the destination is free; ``EADDRNOTAVAIL`` when none is). With a fixed hold
time ``H`` per port the process is a recurrence over time buckets of width ``dt``::

    occupied(k) = C(k-1) - C(k-L)            # connects in the last L = H/dt buckets still hold their port
    s(k)        = min(a(k), P - occupied(k))  # successes among a(k) arrivals, P = ports in ip_local_port_range
    C(k)        = C(k-1) + s(k) = min(C(k-1) + a(k), P + C(k-L))

Within one block of L buckets the right-hand term only needs C from the previous block, and the recurrence
``C(k) - A(k) = min(C(k-1) - A(k-1), P + C(k-L) - A(k))`` (A = running sum of arrivals) is a running minimum:
one ``numpy.minimum.accumulate`` per block. Memory is O(duration/dt), independent of the number of connections.

``tcp_tw_reuse=1`` (with timestamps) lets connect() take over a TIME_WAIT port once its last timestamp is 1 s old
(Linux ``tcp_twsk_unique``); the blocking hold then ends ``reuse_after`` seconds into TIME_WAIT, as measured on
the packet model, and the TIME_WAIT population is what round-robin port choice leaves: at most the ports not held
by live connections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Lifecycle", "FlowResult", "simulate_flow", "simulate_pool", "bucket_width"]


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """One connection's timeline as the packet model measured it (seconds after the client's connect())."""

    established: float  # the client's connect() returns
    close: float  # the client's close() (or abortive close)
    time_wait_at: float | None  # the client enters TIME_WAIT (None: it never does, e.g. RST close)
    time_wait: float  # measured TIME_WAIT length (0 without TIME_WAIT)
    port_free: float  # the client's TCB is gone: the port is free again
    reuse_after: float | None  # tcp_tw_reuse: seconds into TIME_WAIT a new connect() may take the port over
    segments: int  # segments on the wire for one lifecycle (both directions)
    rsts: int  # of which RSTs
    server_open: float = 0.0  # the server's TCB appears (SYN arrives: SYN_RCVD)
    server_closed: float = 0.0  # the server's TCB is gone (CLOSED after LAST_ACK, or after its own TIME_WAIT)

    @property
    def hold(self) -> float:
        """How long a connect() blocks its port for other connects to the same destination."""
        if self.time_wait_at is not None and self.reuse_after is not None:
            return min(self.port_free, self.time_wait_at + self.reuse_after)
        return self.port_free


@dataclass
class FlowResult:
    series: dict[
        str, list[float]
    ]  # t, TIME_WAIT, ports_in_use, ESTABLISHED, connects, failed_connects, server
    attempts: int
    succeeded: int
    failed: int
    first_failure: float | None
    peak_time_wait: int
    peak_ports: int
    dt: float
    model: str = "flow"


def bucket_width(duration: float) -> float:
    """1 ms buckets, coarser for very long runs so memory stays bounded (at most 1 million buckets)."""
    return max(0.001, duration / 1_000_000)


def _arrivals(rate: float, k: int, dt: float) -> np.ndarray:
    """Connection attempts per bucket for evenly spaced arrivals at t = i/rate (i = 0, 1, ...)."""
    edges = np.arange(k + 1, dtype=np.float64) * dt
    cum = np.ceil(edges * rate - 1e-9).astype(np.int64)  # attempts with t_i < edge
    return np.diff(cum)


def _lag(c: np.ndarray, lag: int) -> np.ndarray:
    """C(k - lag) with C(negative) = 0."""
    if lag <= 0:
        return c
    out = np.zeros_like(c)
    if lag < len(c):
        out[lag:] = c[:-lag]
    return out


def simulate_flow(
    rate: float, duration: float, ports: int, lc: Lifecycle, *, sample: float = 1.0
) -> FlowResult:
    """Run ``rate`` connections/s for ``duration`` s from one client to one destination through ``ports``
    ephemeral ports, every connection following the calibrated lifecycle ``lc``."""
    dt = bucket_width(duration)
    k_total = max(1, int(round(duration / dt)))
    a = _arrivals(rate, k_total, dt)
    lag_alloc = max(1, int(round(lc.hold / dt)))
    c = np.zeros(k_total, dtype=np.int64)
    c_prev = 0
    for b in range(0, k_total, lag_alloc):
        e = min(k_total, b + lag_alloc)
        ab = np.cumsum(a[b:e])
        lo = b - lag_alloc
        old = np.zeros(e - b, dtype=np.int64)
        # C(k - L) for k in [b, e): indices [lo, e - lag_alloc)
        src_lo, src_hi = max(lo, 0), e - lag_alloc
        if src_hi > src_lo:
            old[src_lo - lo :] = c[src_lo:src_hi]
        cap = ports + old - ab
        g = np.minimum.accumulate(np.concatenate(([c_prev], cap)))[1:]
        c[b:e] = ab + g
        c_prev = int(c[e - 1])
    succ = np.diff(np.concatenate(([0], c)))
    fail = a - succ

    # Populations at every bucket (a connect in bucket j is in a state from j + start to j + end).
    def pop(start: float, end: float) -> np.ndarray:
        out: np.ndarray = _lag(c, int(round(start / dt))) - _lag(c, int(round(end / dt)))
        return out

    ports_in_use = np.minimum(pop(0.0, lc.port_free), ports)
    established = pop(lc.established, lc.close)
    server = pop(lc.server_open, lc.server_closed) if lc.server_closed > lc.server_open else np.zeros_like(c)
    if lc.time_wait_at is not None and lc.time_wait > 0:
        live = pop(0.0, lc.time_wait_at)
        time_wait = np.minimum(
            pop(lc.time_wait_at, lc.time_wait_at + lc.time_wait), np.maximum(ports - live, 0)
        )
    else:
        time_wait = np.zeros_like(c)

    per = max(1, int(round(sample / dt)))
    n_samples = k_total // per
    idx = np.arange(1, n_samples + 1) * per - 1
    succ_s = np.add.reduceat(succ, np.arange(0, n_samples * per, per)) if n_samples else np.zeros(0, np.int64)
    fail_s = np.add.reduceat(fail, np.arange(0, n_samples * per, per)) if n_samples else np.zeros(0, np.int64)
    series: dict[str, list[float]] = {
        "t": [round(float(x), 6) for x in (idx + 1) * dt],
        "TIME_WAIT": time_wait[idx].tolist(),
        "ports_in_use": ports_in_use[idx].tolist(),
        "ESTABLISHED": established[idx].tolist(),
        "connects": succ_s.tolist(),
        "failed_connects": fail_s.tolist(),
        "server_conns": server[idx].tolist(),
    }
    nz = np.flatnonzero(fail)
    return FlowResult(
        series=series,
        attempts=int(a.sum()),
        succeeded=int(succ.sum()),
        failed=int(fail.sum()),
        first_failure=float(nz[0] * dt) if len(nz) else None,
        peak_time_wait=int(time_wait.max()),
        peak_ports=int(ports_in_use.max()),
        dt=dt,
    )


def simulate_pool(rate: float, duration: float, request_time: float, *, sample: float = 1.0) -> FlowResult:
    """Keep-alive pool: requests reuse open connections, so only ``ceil(rate * request_time)`` connections are
    ever opened (Little's law: requests in flight = arrival rate x time each takes). Nothing closes during the
    run, so no TIME_WAIT accumulates and no port runs out."""
    conns = max(1, math.ceil(rate * request_time - 1e-9))
    n = max(1, int(duration // sample))
    series: dict[str, list[float]] = {
        "t": [round((i + 1) * sample, 6) for i in range(n)],
        "TIME_WAIT": [0] * n,
        "ports_in_use": [conns] * n,
        "ESTABLISHED": [conns] * n,
        "connects": [conns if i == 0 else 0 for i in range(n)],
        "failed_connects": [0] * n,
        "server_conns": [conns] * n,
    }
    return FlowResult(
        series=series,
        attempts=conns,
        succeeded=conns,
        failed=0,
        first_failure=None,
        peak_time_wait=0,
        peak_ports=conns,
        dt=sample,
        model="pool",
    )

"""Retransmission timeout estimation, RFC 6298, with Linux's bounds.

RFC 6298 §2: before a measurement RTO = 1 s (§2.1); on the first RTT sample R: SRTT = R, RTTVAR = R/2 (§2.2);
on later samples RTTVAR = (1 - beta) * RTTVAR + beta * |SRTT - R'| and SRTT = (1 - alpha) * SRTT + alpha * R'
with alpha = 1/8, beta = 1/4 (§2.3); RTO = SRTT + max(G, K * RTTVAR) with K = 4. §2.4 says round up to 1 s;
Linux uses TCP_RTO_MIN = 200 ms instead, and caps at TCP_RTO_MAX = 120 s (§2.5 allows a maximum >= 60 s).
Karn's algorithm (§3): no sample from a retransmitted segment; §5.5: back off by doubling on each expiry.
"""

from __future__ import annotations

__all__ = ["RttEstimator", "ALPHA", "BETA", "K", "CLOCK_G"]

ALPHA = 1 / 8  # RFC 6298 §2.3
BETA = 1 / 4  # RFC 6298 §2.3
K = 4  # RFC 6298 §2.2/2.3
CLOCK_G = 0.001  # clock granularity G: 1 ms (Linux jiffies at HZ=1000)


class RttEstimator:
    __slots__ = ("srtt", "rttvar", "rto", "rto_min", "rto_max", "backoff", "linux")

    def __init__(self, rto_initial: float, rto_min: float, rto_max: float, linux: bool = False) -> None:
        self.linux = linux
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.rto = rto_initial  # §2.1
        self.backoff = 0  # number of consecutive doublings (§5.5)

    def sample(self, r: float) -> None:
        """Take an RTT measurement from a segment that was not retransmitted (Karn, §3)."""
        if self.srtt is None:
            self.srtt = r  # §2.2
            self.rttvar = r / 2
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - r)  # §2.3, RTTVAR first
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * r
        if self.linux:
            # Linux tcp_rtt_estimator/__tcp_set_rto: the variance term is floored at TCP_RTO_MIN, so the RTO is
            # SRTT + max(4*RTTVAR, 200 ms) — never closer than 200 ms to the smoothed RTT.
            rto = self.srtt + max(K * self.rttvar, self.rto_min)
        else:
            rto = max(self.rto_min, self.srtt + max(CLOCK_G, K * self.rttvar))
        self.rto = min(self.rto_max, rto)
        self.backoff = 0

    def current(self) -> float:
        """The RTO to arm the timer with, including exponential backoff (§5.5), capped at rto_max."""
        return min(self.rto_max, self.rto * (1 << self.backoff))

    def back_off(self) -> None:
        self.backoff += 1

    def reset_backoff(self) -> None:
        self.backoff = 0


def linux_retrans_timeout(boundary: int, rto_base: float, rto_max: float = 120.0) -> float:
    """How long Linux retransmits before giving up after ``boundary`` retries (net/ipv4/tcp_timer.c,
    tcp_model_timeout): the sum of a doubling series from ``rto_base`` until it reaches rto_max, then linear.
    retries2=15 with rto_base=200 ms gives 924.6 s; syn_retries=6 with 1 s gives 127 s."""
    thresh = 0
    while (rto_base * (1 << (thresh + 1))) <= rto_max:
        thresh += 1
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * rto_max


__all__.append("linux_retrans_timeout")

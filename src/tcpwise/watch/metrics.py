"""Counters a watch keeps for the exporter: transitions, resets, retransmissions, durations, top peers.

Every label set is bounded by construction — Prometheus keeps one series per label combination forever, so a
label per connection (or per port) would grow without end:

- transitions ``{from, to}``: at most 12 x 12 kernel states (in practice ~20 pairs);
- resets ``{origin, state}``: origin ``sent``/``received`` x 12 states (the kernel's RST reason, another bounded
  enum, is kept for sent resets);
- retransmissions ``{state}``; duration histogram: fixed buckets, no labels;
- connections per peer: the first ``top`` peers (remote addresses) that reach ``min_count`` connections get their
  own label, everything else is counted under ``other``. Slots are never taken back, so every counter only
  grows (a series that vanished and came back would read as a counter reset).

Updated by the tracker thread, read by the scrape: the dicts are only ever replaced or updated key by key, and a
copy is taken under the GIL (``dict(d)`` is atomic in CPython), so no lock is needed.
"""

from __future__ import annotations

import bisect
from typing import Any

from tcpwise.vocab import kernel_state_name
from tcpwise.watch.record import ConnRecord

__all__ = ["WatchMetrics", "DURATION_BUCKETS"]

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 3600.0)


class WatchMetrics:
    def __init__(self, top: int = 10, min_count: int = 2) -> None:
        self.top = top
        self.min_count = min_count
        self.transitions: dict[tuple[int, int], int] = {}
        self.resets: dict[tuple[str, str, str], int] = {}
        self.retransmits: dict[int, int] = {}
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.peers: dict[str, int] = {}  # labelled peers (at most ``top``)
        self.other_peers = 0
        self._candidates: dict[str, int] = {}  # not yet labelled, bounded
        self.ended_by_reason: dict[str, int] = {}
        self.events = 0  # tracepoint records processed
        self.lost = 0  # records the kernel dropped (ring buffer full)

    def transition(self, old: int, new: int, n: int = 1) -> None:
        k = (old, new)
        self.transitions[k] = self.transitions.get(k, 0) + n

    def reset(self, origin: str, state: int, reason: str | None) -> None:
        k = (origin, kernel_state_name(state) if state else "NONE", reason or "")
        self.resets[k] = self.resets.get(k, 0) + 1

    def retransmit(self, state: int) -> None:
        self.retransmits[state] = self.retransmits.get(state, 0) + 1

    def ended(self, r: ConnRecord) -> None:
        self.ended_conn(r.duration, r.role, r.raddr, r.end_reason)

    def ended_conn(self, d: float, role: str, raddr: str, end_reason: str) -> None:
        """A socket ended after ``d`` seconds (the tracker calls this without building a record)."""
        self.buckets[bisect.bisect_left(DURATION_BUCKETS, d)] += 1
        self.duration_sum += d
        self.duration_count += 1
        self.ended_by_reason[end_reason] = self.ended_by_reason.get(end_reason, 0) + 1
        if role == "listener":
            return
        peer = raddr or "?"
        if peer in self.peers:
            self.peers[peer] += 1
            return
        if len(self.peers) < self.top:
            n = self._candidates.get(peer, 0) + 1
            if n >= self.min_count:
                self._candidates.pop(peer, None)
                self.peers[peer] = 1  # its earlier connections stay in "other": counters never go down
                return
            if len(self._candidates) >= 64 * self.top:
                self._candidates.clear()
            self._candidates[peer] = n
        self.other_peers += 1

    def snapshot(self) -> dict[str, Any]:
        """A consistent-enough copy for one scrape."""
        cum = []
        total = 0
        for n in self.buckets:
            total += n
            cum.append(total)
        return {
            "transitions": {
                (kernel_state_name(a), kernel_state_name(b)): n
                for (a, b), n in dict(self.transitions).items()
            },
            "resets": dict(self.resets),
            "retransmits": {kernel_state_name(s): n for s, n in dict(self.retransmits).items()},
            "buckets": list(zip((*DURATION_BUCKETS, float("inf")), cum, strict=True)),
            "duration_sum": self.duration_sum,
            "duration_count": self.duration_count,
            "peers": dict(self.peers),
            "other_peers": self.other_peers,
            "ended": dict(self.ended_by_reason),
        }

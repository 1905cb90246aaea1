"""Whom to close when the connection cap is reached and a newcomer arrives (sans-IO).

Theory of operation
-------------------
At the cap a server can refuse the newcomer or close someone already in. Refusing is what a plain server does
(or the kernel, once the accept queue is full) and it hands the server to whoever connected first: an attacker
that opens connections and then says nothing, or trickles, holds every slot and legitimate clients are turned
away. The guard evicts instead — but only connections that have not earned their slot:

* *candidates* are connections that have not completed a request yet (nothing answered since the accept), or
  whose request in progress arrives below ``Timeouts.min_rate`` (the caller's ``evictable`` test decides);
* the victim's source must hold more connections than the newcomer's source would after admission — so a flood
  from one address (or 100) evicts its own connections, never a client holding one, and a flood from a single
  source that is already the heaviest is refused rather than churned. Sources that already hold connections
  never displace each other at equal loads (100 attacking addresses settle at equal shares instead of evicting
  each other in a loop). The one tie allowed: a newcomer from a source holding nothing may displace the single
  connection of another source if that one is older than ``min_age`` — otherwise a flood from thousands of
  addresses with one connection each would lock out every new client; a client that connected a moment ago
  keeps its chance to send its request;
* within a source the oldest candidate goes first: it has held its slot longest without result.

Sources are ranked by connections held (most first); ties go to the source whose oldest candidate is oldest.
Ranking is O(sources), and at the cap *every* newcomer asks (most are refused), so the ranking of the few
heaviest sources is cached for ``rank_ttl`` seconds; the fairness rule itself is always checked against the
live counts. Only the oldest few candidates of each ranked source are examined.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, TypeVar

__all__ = ["EvictionIndex"]

T = TypeVar("T", bound=Hashable)

_KEYS_EXAMINED = 8
_CANDIDATES_EXAMINED = 32


class EvictionIndex(Generic[T]):
    """Eviction candidates per source key, oldest first (insertion order of a dict)."""

    __slots__ = ("_by_key", "_ranked", "_ranked_at", "rank_ttl")

    def __init__(self, rank_ttl: float = 0.05) -> None:
        self._by_key: dict[str, dict[T, float]] = {}
        self._ranked: list[str] = []
        self._ranked_at = float("-inf")
        self.rank_ttl = rank_ttl

    def add(self, key: str, item: T, since: float) -> None:
        """``item`` (from source ``key``) became a candidate at time ``since``; re-adding moves it to the back."""
        d = self._by_key.get(key)
        if d is None:
            d = self._by_key[key] = {}
        else:
            d.pop(item, None)
        d[item] = since

    def discard(self, key: str, item: T) -> None:
        d = self._by_key.get(key)
        if d is not None and d.pop(item, None) is not None and not d:
            del self._by_key[key]

    def __len__(self) -> int:
        return sum(len(d) for d in self._by_key.values())

    def pick(
        self,
        held: Mapping[str, int],
        newcomer_key: str,
        now: float,
        evictable: Callable[[T, float], bool],
        min_age: float,
    ) -> T | None:
        """The connection to evict for a newcomer from ``newcomer_key``, or ``None`` (refuse the newcomer).

        ``held`` maps source keys to connections held (the admission counters).
        """
        after = held.get(newcomer_key, 0) + 1
        if now - self._ranked_at > self.rank_ttl or not self._ranked:
            self._rank(held, now)
        for key in self._ranked:
            cands = self._by_key.get(key)
            if not cands:
                continue
            n = held.get(key, 0)
            if n < after:
                continue  # not heavier than the newcomer's source would be: never evict from it
            if n == after and after > 1:
                continue  # equal loads between sources that both hold connections: no churn
            for i, (item, since) in enumerate(cands.items()):
                if i >= _CANDIDATES_EXAMINED:
                    break
                if n == after and now - since < min_age:
                    break  # one against one: only a candidate that had time to prove itself (oldest first)
                if evictable(item, now):
                    return item
        return None

    def _rank(self, held: Mapping[str, int], now: float) -> None:
        top = heapq.nsmallest(
            _KEYS_EXAMINED,
            ((-held.get(k, 0), next(iter(d.values())), k) for k, d in self._by_key.items() if d),
        )
        self._ranked = [k for _n, _since, k in top]
        self._ranked_at = now

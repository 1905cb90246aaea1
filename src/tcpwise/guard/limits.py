"""Connection admission: global and per-source limits and a per-source accept rate limit (sans-IO).

Theory of operation
-------------------
Every accepted connection asks :meth:`Admission.admit` for a ticket *before* any application code runs. The
answer is either ``None`` (admitted; the counters now include the connection) or a :class:`~.reasons.CloseReason`
saying why it must be refused. Every admitted connection must later call :meth:`Admission.release` exactly once;
the server guarantees that from ``connection_lost`` so a limit slot can never leak.

Sources are aggregated into *keys* before counting. One IPv4 host is one key by default (``/32``), but an IPv6
host usually owns a whole ``/64`` (RFC 4291 §2.5.4 fixes 64-bit interface identifiers for global unicast, and
RFC 8981 privacy addresses rotate inside it), so counting single IPv6 addresses would let one client open
``2**64`` "different" sources. IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``, RFC 4291 §2.5.5.2), which a
dual-stack listener reports for IPv4 clients, are counted as the IPv4 address they carry.

The rate limit is a token bucket per key (capacity ``burst``, refill ``rate`` per second). Time is passed in
(``now``) so the module never reads a clock and tests can drive it exactly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from tcpwise.guard.reasons import CloseReason

__all__ = ["Limits", "Admission", "source_key"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Admission limits. ``None`` means unlimited.

    Attributes:
        max_connections: open connections allowed in total.
        max_per_ip: open connections allowed per source key (see ``ipv4_prefix``/``ipv6_prefix``).
        accept_rate: new connections per second allowed per source key (token bucket refill rate).
        accept_burst: token bucket capacity; defaults to ``max(1, accept_rate)``.
        ipv4_prefix: IPv4 sources sharing this many leading bits count as one (default 32: one host).
        ipv6_prefix: IPv6 sources sharing this many leading bits count as one (default 64: one subnet).
        fd_headroom: descriptors kept free below RLIMIT_NOFILE (default ``None``: 1/16 of the limit, at least
            16). :meth:`Guard.start_server <tcpwise.guard.server.Guard.start_server>` lowers the cap to fit and
            pauses accepting when the headroom is eaten anyway.
        evict: at the cap, evict a connection that has not completed a request (or trickles below
            ``Timeouts.min_rate``) from the source holding the most, instead of refusing the newcomer.
        evict_min_age: between equally loaded sources, evict only candidates at least this old (seconds).
    """

    max_connections: int | None = None
    max_per_ip: int | None = None
    accept_rate: float | None = None
    accept_burst: float | None = None
    ipv4_prefix: int = 32
    ipv6_prefix: int = 64
    fd_headroom: int | None = None
    evict: bool = True
    evict_min_age: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_per_ip"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {v}")
        if self.accept_rate is not None and not 0 < self.accept_rate < float("inf"):
            raise ValueError(f"accept_rate must be > 0 and finite, or None, got {self.accept_rate}")
        if self.accept_burst is not None and not 1 <= self.accept_burst < float("inf"):
            raise ValueError(f"accept_burst must be >= 1 and finite, or None, got {self.accept_burst}")
        if self.fd_headroom is not None and self.fd_headroom < 1:
            raise ValueError(f"fd_headroom must be >= 1 or None, got {self.fd_headroom}")
        if not 0 <= self.evict_min_age < float("inf"):
            raise ValueError(f"evict_min_age must be >= 0 seconds and finite, got {self.evict_min_age}")
        if not 0 <= self.ipv4_prefix <= 32:
            raise ValueError(f"ipv4_prefix must be 0..32, got {self.ipv4_prefix}")
        if not 0 <= self.ipv6_prefix <= 128:
            raise ValueError(f"ipv6_prefix must be 0..128, got {self.ipv6_prefix}")


def source_key(host: str, ipv4_prefix: int = 32, ipv6_prefix: int = 64) -> str:
    """Aggregate a peer address into the key limits count against.

    >>> source_key("2001:db8:1:2:aaaa::1")
    '2001:db8:1:2::/64'
    >>> source_key("::ffff:127.0.0.2")
    '127.0.0.2'

    A host that is not an IP literal (a UNIX socket path, an empty peername) is its own key.
    """
    # Strip an IPv6 zone id ("fe80::1%eth0"): the zone names an interface, not a different host.
    bare = host.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(bare)
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        if ipv4_prefix == 32:
            return str(addr)
        net = ipaddress.IPv4Network((int(addr) >> (32 - ipv4_prefix) << (32 - ipv4_prefix), ipv4_prefix))
        return str(net)
    if ipv6_prefix == 128:
        return str(addr)
    shift = 128 - ipv6_prefix
    return str(ipaddress.IPv6Network(((int(addr) >> shift) << shift, ipv6_prefix)))


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


@dataclass(slots=True)
class Admission:
    """Counts open connections per key and decides admission. Not thread-safe (one event loop owns it)."""

    limits: Limits
    cap: int | None = field(init=False)  # max_connections, lowered by the server to fit its fd budget
    active: int = 0
    per_key: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _key_cache: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cap = self.limits.max_connections

    def key(self, host: str) -> str:
        """Memoised :func:`source_key` (parsing an address costs microseconds; hosts repeat)."""
        k = self._key_cache.get(host)
        if k is None:
            if len(self._key_cache) > 65536:  # bound the memo: a scan from many sources must not grow it
                self._key_cache.clear()
            k = source_key(host, self.limits.ipv4_prefix, self.limits.ipv6_prefix)
            self._key_cache[host] = k
        return k

    def admit(
        self, host: str, now: float, make_room: Callable[[str, float], bool] | None = None
    ) -> tuple[str, CloseReason | None]:
        """Return ``(key, None)`` and count the connection, or ``(key, reason)`` to refuse it (nothing counted).

        Order of checks: per-key limit, rate limit (peeked, not spent), global cap — where ``make_room(key,
        now)`` may free a slot by evicting someone (see :mod:`.evict`) — and only then is the rate token
        spent, so neither a refusal nor an eviction is wasted on a connection another check would refuse.
        """
        lim = self.limits
        key = self.key(host)
        n = self.per_key.get(key, 0)
        if lim.max_per_ip is not None and n >= lim.max_per_ip:
            return key, CloseReason.REFUSED_IP_LIMIT
        if lim.accept_rate is not None and not self._has_token(key, now):
            return key, CloseReason.REFUSED_RATE
        if self.cap is not None and self.active >= self.cap:
            if make_room is None or not make_room(key, now) or self.active >= self.cap:
                return key, CloseReason.REFUSED_GLOBAL_LIMIT
            n = self.per_key.get(key, 0)  # the eviction may have been from this very source
        if lim.accept_rate is not None:
            self._buckets[key].tokens -= 1.0
        self.active += 1
        self.per_key[key] = n + 1
        return key, None

    def release(self, key: str) -> None:
        """Give back the slot taken by an admitted connection (call exactly once per admitted connection)."""
        n = self.per_key.get(key, 0)
        if n <= 0 or self.active <= 0:
            raise RuntimeError(
                f"release of {key!r} without a matching admit (per_key={n}, active={self.active})"
            )
        self.active -= 1
        if n == 1:
            del self.per_key[key]
        else:
            self.per_key[key] = n - 1

    def _has_token(self, key: str, now: float) -> bool:
        """Refill ``key``'s bucket to ``now`` and say whether it holds a whole token (not spent here)."""
        lim = self.limits
        assert lim.accept_rate is not None
        cap = lim.accept_burst if lim.accept_burst is not None else max(1.0, lim.accept_rate)
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) > 65536:
                # Drop buckets that have refilled completely: they carry no information.
                full = [
                    k for k, v in self._buckets.items() if v.tokens + (now - v.stamp) * lim.accept_rate >= cap
                ]
                for k in full:
                    del self._buckets[k]
            b = self._buckets[key] = _Bucket(cap, now)
        else:
            b.tokens = min(cap, b.tokens + (now - b.stamp) * lim.accept_rate)
            b.stamp = now
        return b.tokens >= 1.0

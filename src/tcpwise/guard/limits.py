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
    """

    max_connections: int | None = None
    max_per_ip: int | None = None
    accept_rate: float | None = None
    accept_burst: float | None = None
    ipv4_prefix: int = 32
    ipv6_prefix: int = 64

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_per_ip"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {v}")
        if self.accept_rate is not None and self.accept_rate <= 0:
            raise ValueError(f"accept_rate must be > 0 or None, got {self.accept_rate}")
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
    active: int = 0
    per_key: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _key_cache: dict[str, str] = field(default_factory=dict)

    def key(self, host: str) -> str:
        """Memoised :func:`source_key` (parsing an address costs microseconds; hosts repeat)."""
        k = self._key_cache.get(host)
        if k is None:
            if (
                len(self._key_cache) > 65536
            ):  # bound the memo: a scan from many sources must not grow it forever
                self._key_cache.clear()
            k = source_key(host, self.limits.ipv4_prefix, self.limits.ipv6_prefix)
            self._key_cache[host] = k
        return k

    def admit(self, host: str, now: float) -> tuple[str, CloseReason | None]:
        """Return ``(key, None)`` and count the connection, or ``(key, reason)`` to refuse it (nothing counted).

        Order of checks: global limit, per-key limit, then the rate limit, so a refused connection over a count
        limit does not also spend a rate token.
        """
        lim = self.limits
        key = self.key(host)
        if lim.max_connections is not None and self.active >= lim.max_connections:
            return key, CloseReason.REFUSED_GLOBAL_LIMIT
        n = self.per_key.get(key, 0)
        if lim.max_per_ip is not None and n >= lim.max_per_ip:
            return key, CloseReason.REFUSED_IP_LIMIT
        if lim.accept_rate is not None and not self._take_token(key, now):
            return key, CloseReason.REFUSED_RATE
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

    def _take_token(self, key: str, now: float) -> bool:
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
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True
        return False

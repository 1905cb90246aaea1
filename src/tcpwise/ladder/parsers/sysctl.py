"""Kernel settings: a ``sysctl.conf`` (``key = value``), ``sysctl -a`` output, or ``/proc/sys`` style paths.

The ladder uses TCP keepalive (``net.ipv4.tcp_keepalive_time``/``_intvl``/``_probes``; ip-sysctl.rst) for every hop
that turns SO_KEEPALIVE on without a time of its own, and conntrack's established timeout
(``net.netfilter.nf_conntrack_tcp_timeout_established``, nf_conntrack-sysctl.rst) as the idle cutoff of
``conntrack`` hops.
"""

from __future__ import annotations

from tcpwise.ladder.model import Source, Value
from tcpwise.ladder.parsers import ParseError, read_text

__all__ = ["read_sysctl", "KNOWN"]

KNOWN = (
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
    "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
)


def read_sysctl(path: str) -> dict[str, Value]:
    """The known keys found in ``path`` (seconds, or a count for ``_probes``), each with its line."""
    out: dict[str, Value] = {}
    for no, raw in enumerate(read_text(path).splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            if line.startswith("-") or line.startswith("["):
                continue
            raise ParseError(path, no, f"expected key = value, got {line!r}")
        key, _, value = line.partition("=")
        key = key.strip().lstrip("-").replace("/", ".")
        if key.startswith("proc.sys."):
            key = key[len("proc.sys.") :]
        if key not in KNOWN:
            continue
        try:
            n = float(value.strip())
        except ValueError:
            raise ParseError(path, no, f"{key}: expected a number, got {value.strip()!r}") from None
        if n < 0:
            raise ParseError(path, no, f"{key}: must be >= 0")
        out[key] = Value(n, Source("file", path, no, line))
    return out

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

# The kernel stores these times in jiffies in an int and refuses a write that overflows it: above INT_MAX/HZ
# seconds, 2147483 at HZ=1000 (the smallest bound of the usual HZ values, so refused on any of them).
MAX_JIFFIES_SECONDS = (2**31 - 1) // 1000

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
        out[key] = Value(_kernel_int(path, no, key, value.strip()), Source("file", path, no, line))
    return out


def _kernel_int(path: str, no: int, key: str, value: str) -> float:
    """A value the kernel would take: a whole number (it refuses ``1e3`` and ``7.5``), and for the times, one it
    can hold in jiffies."""
    if not value.isascii() or not value.isdigit():
        raise ParseError(path, no, f"{key}: the kernel takes a whole number >= 0, got {value!r}")
    digits = value.lstrip("0") or "0"
    n = int(digits) if len(digits) <= 12 else MAX_JIFFIES_SECONDS + 1  # longer is refused anyway
    if not key.endswith("_probes") and n > MAX_JIFFIES_SECONDS:
        raise ParseError(path, no, f"{key}: over {MAX_JIFFIES_SECONDS} s, the kernel refuses it")
    return float(n)

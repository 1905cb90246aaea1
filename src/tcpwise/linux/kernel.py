"""Kernel TCP counters, sysctls and network-namespace entry — all read-only.

Theory of operation
-------------------
- Counters: /proc/net/netstat (``TcpExt:`` ListenOverflows, ListenDrops, SyncookiesSent, TCPAbortOnTimeout,
  TCPTimeWaitOverflow, ...) and /proc/net/snmp (``Tcp:`` ActiveOpens, RetransSegs, ...) come as pairs of lines:
  a header line of names and a value line, both prefixed by the group name. /proc/net/sockstat gives the orphan
  and TIME_WAIT totals the kernel compares with tcp_max_orphans / tcp_max_tw_buckets.
- These files and /proc/sys/net/* are per *network namespace* of the reading thread (``/proc/thread-self/net``,
  not ``/proc/self/net``, which follows the thread-group leader). :func:`in_netns` therefore setns(2)es only the
  calling thread into /run/netns/NAME (where ``ip netns add`` bind-mounts it), lets the caller open its netlink
  socket — a socket stays bound to the namespace it was created in — and read the files, then returns the thread
  to its original namespace. setns(CLONE_NEWNET) needs CAP_SYS_ADMIN; Python 3.11 has no os.setns, so libc's is
  called through ctypes (imported only on this path).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tcpwise.errors import MissingCapability, UsageError

__all__ = ["read_counters", "read_sockstat", "read_sysctls", "SYSCTLS", "in_netns"]

CLONE_NEWNET = 0x40000000

# The sysctls the findings and the audit read (paths under /proc/sys).
SYSCTLS = (
    "net/ipv4/ip_local_port_range",
    "net/ipv4/tcp_tw_reuse",
    "net/ipv4/tcp_timestamps",
    "net/ipv4/tcp_fin_timeout",
    "net/ipv4/tcp_max_tw_buckets",
    "net/ipv4/tcp_max_orphans",
    "net/ipv4/tcp_orphan_retries",
    "net/ipv4/tcp_syncookies",
    "net/ipv4/tcp_max_syn_backlog",
    "net/ipv4/tcp_synack_retries",
    "net/ipv4/tcp_syn_retries",
    "net/ipv4/tcp_abort_on_overflow",
    "net/ipv4/tcp_keepalive_time",
    "net/ipv4/tcp_keepalive_intvl",
    "net/ipv4/tcp_keepalive_probes",
    "net/ipv4/tcp_retries2",
    "net/core/somaxconn",
    "fs/file-max",
    "fs/nr_open",
)


def _net_dir() -> str:
    return "/proc/thread-self/net" if os.path.exists("/proc/thread-self/net") else "/proc/self/net"


def read_counters() -> dict[str, int]:
    """``{"TcpExt.ListenOverflows": n, "Tcp.RetransSegs": n, ...}`` from netstat + snmp (missing files skipped)."""
    out: dict[str, int] = {}
    base = _net_dir()
    for fname in ("netstat", "snmp"):
        try:
            with open(f"{base}/{fname}") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for head, vals in zip(lines[0::2], lines[1::2], strict=False):
            hn = head.split()
            hv = vals.split()
            if not hn or hn[0] != hv[0]:
                continue  # the file format is header/value pairs; a mismatch means a format we do not know
            group = hn[0].rstrip(":")
            if group not in ("TcpExt", "Tcp"):
                continue
            for k, v in zip(hn[1:], hv[1:], strict=False):
                try:
                    out[f"{group}.{k}"] = int(v)
                except ValueError:
                    pass
    return out


def read_sockstat() -> dict[str, int]:
    """The ``TCP:`` line of /proc/net/sockstat: inuse, orphan, tw, alloc, mem (pages)."""
    try:
        with open(f"{_net_dir()}/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    parts = line.split()[1:]
                    return {parts[i]: int(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}
    except OSError:
        pass
    return {}


def read_sysctls() -> dict[str, str]:
    """Current values of :data:`SYSCTLS` (dotted names, whitespace-normalised); unreadable ones are omitted."""
    out: dict[str, str] = {}
    for path in SYSCTLS:
        try:
            with open(f"/proc/sys/{path}") as f:
                out[path.replace("/", ".")] = " ".join(f.read().split())
        except OSError:
            pass
    return out


EMPTY_NETNS = "the network namespace name is empty: give a name from `ip netns list`"


def netns_arg(text: str) -> str:
    """The argparse ``type=`` of every ``--netns``: an empty name (``--netns ''``, an unset shell variable) is
    refused in one line before any work; it used to reach setns(2) on the /run/netns directory itself."""
    import argparse

    if not text.strip():
        raise argparse.ArgumentTypeError(EMPTY_NETNS)
    return text


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the body with the calling thread inside network namespace ``name`` (None: stay where we are)."""
    if name is None:
        yield
        return
    if not name.strip():
        raise UsageError(EMPTY_NETNS)
    if name.startswith("/proc/") or name.startswith("/run/netns/"):
        path = name  # a namespace file given by path (e.g. /proc/PID/ns/net)
    elif "/" in name or name in (".", ".."):
        raise UsageError(f"bad namespace name {name!r}: give a name from `ip netns list`")
    else:
        path = f"/run/netns/{name}"
    if not os.path.exists(path):
        try:
            have = ", ".join(sorted(os.listdir("/run/netns"))) or "none"
        except OSError:
            have = "none"
        raise UsageError(f"no network namespace {name!r} (have: {have})")
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise MissingCapability(f"cannot enter namespace {name!r}: {os.strerror(err)} (needs root)")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if libc.setns(orig, CLONE_NEWNET) != 0:  # pragma: no cover - returning to our own ns cannot fail
                raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
    finally:
        os.close(orig)

"""Count TCP sockets by state (ss / /proc/net/tcp{,6}), for tests, the pool demo and the benchmark.

Kept deliberately tiny (a few ports, a few thousand lines): the doctor area owns the fast sock_diag client for
whole-host work. Line format: proc(5) ``/proc/net/tcp`` — ``sl local_address rem_address st ...`` with
addresses as hex ``IP:PORT`` (IPv4 in host byte order as one 32-bit word) and ``st`` the kernel state number
of include/net/tcp_states.h, mapped through :func:`tcpwise.vocab.kernel_state_name`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from tcpwise.vocab import kernel_state_name

__all__ = ["tcp_sockets", "count_states", "port_socket_inodes", "own_socket_inodes"]


def tcp_sockets(
    paths: tuple[str, ...] = ("/proc/net/tcp", "/proc/net/tcp6"),
) -> Iterator[tuple[int, int, str]]:
    """Yield ``(local_port, remote_port, state)`` for every TCP socket in this network namespace."""
    for path in paths:
        try:
            f = open(path)  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue
        with f:
            next(f, None)  # header
            for line in f:
                parts = line.split(None, 4)
                if len(parts) < 4:
                    continue
                lport = int(parts[1].rsplit(":", 1)[1], 16)
                rport = int(parts[2].rsplit(":", 1)[1], 16)
                yield lport, rport, kernel_state_name(int(parts[3], 16))


# ss(8) prints RFC state names with dashes and a few abbreviations.
_SS_STATES = {"ESTAB": "ESTABLISHED", "SYN-RECV": "SYN_RCVD", "UNCONN": "CLOSED"}


def _ss_count(
    local_port: int | None, remote_port: int | None, local_addr: str | None = None
) -> Counter[str] | None:
    """Count with ``ss``: it passes the port filter to the kernel (inet_diag bytecode), which stays fast when
    the host has tens of thousands of sockets and reading /proc/net/tcp takes half a second."""
    import shutil
    import subprocess

    exe = shutil.which("ss")
    if exe is None:
        return None
    terms = []
    if local_port is not None and local_addr is not None:
        terms.append(f"src {local_addr}:{local_port}")
    elif local_port is not None:
        terms.append(f"sport = :{local_port}")
    if remote_port is not None:
        terms.append(f"dport = :{remote_port}")
    try:
        res = subprocess.run(
            [exe, "-Htan", "state", "all", " and ".join(terms)], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    c: Counter[str] = Counter()
    for line in res.stdout.splitlines():
        st = line.split(None, 1)[0] if line.strip() else ""
        if st:
            c[_SS_STATES.get(st, st.replace("-", "_"))] += 1
    return c


def count_states(
    local_port: int | None = None, remote_port: int | None = None, local_addr: str | None = None
) -> Counter[str]:
    """Count sockets per state whose local and/or remote port match (``None`` = any).

    ``local_addr`` narrows ``local_port`` to one address: a server's sockets on 127.0.0.1:P, not a stranger's
    client socket that drew the same port number on another loopback address (the kernel allows both).
    Uses ``ss`` with a kernel-side filter when a port is given and ss is installed, else /proc/net/tcp{,6}
    (which ignores ``local_addr``).
    """
    if local_port is not None or remote_port is not None:
        got = _ss_count(local_port, remote_port, local_addr)
        if got is not None:
            return got
    c: Counter[str] = Counter()
    for lp, rp, st in tcp_sockets():
        if (local_port is None or lp == local_port) and (remote_port is None or rp == remote_port):
            c[st] += 1
    return c


def port_socket_inodes(port: int) -> set[int]:
    """Inodes of sockets whose local or remote port is ``port`` (TIME_WAIT entries have inode 0: skipped)."""
    out: set[int] = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            f = open(path)  # noqa: SIM115
        except FileNotFoundError:
            continue
        with f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) < 10:
                    continue
                lp = int(parts[1].rsplit(":", 1)[1], 16)
                rp = int(parts[2].rsplit(":", 1)[1], 16)
                ino = int(parts[9])
                if ino and (lp == port or rp == port):
                    out.add(ino)
    return out


def own_socket_inodes() -> set[int]:
    """Inodes of the sockets this process holds open (``/proc/self/fd`` links ``socket:[N]``)."""
    import os

    out: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out

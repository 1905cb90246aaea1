"""Helpers for testing guarded servers and pools on loopback (also used by tcpwise's own tests and bench).

* :func:`run` runs a coroutine on the default asyncio loop or on uvloop, by name.
* :func:`connect_from` opens a stream connection from a chosen loopback source address (127.0.0.2, ...), which
  is how one machine plays many clients for per-IP limits: all of 127.0.0.0/8 is local on Linux.
* :func:`probe_closed` tells how a connection ended from the client side: ``"open"``, ``"fin"`` or ``"rst"``.
* :func:`open_fds` counts this process's file descriptors (a leaked socket is a leaked fd).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Coroutine, Iterable
from typing import Any, Literal, TypeVar

__all__ = ["LOOPS", "run", "connect_from", "probe_closed", "open_fds"]

T = TypeVar("T")
LOOPS = ("asyncio", "uvloop")


def run(coro: Coroutine[Any, Any, T], loop: str = "asyncio") -> T:
    """Run ``coro`` to completion on a fresh loop of the named kind."""
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
            return r.run(coro)
    if loop != "asyncio":
        raise ValueError(f"unknown loop {loop!r}; valid: {', '.join(LOOPS)}")
    with asyncio.Runner() as r:
        return r.run(coro)


async def connect_from(
    src: str, host: str, port: int, timeout: float = 5.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` bound to source address ``src`` (ephemeral port)."""
    return await asyncio.wait_for(asyncio.open_connection(host, port, local_addr=(src, 0)), timeout)


async def probe_closed(
    reader: asyncio.StreamReader, timeout: float = 2.0
) -> Literal["open", "fin", "rst", "data"]:
    """Wait up to ``timeout`` for the server to end the connection and say how: FIN (EOF) or RST."""
    try:
        data = await asyncio.wait_for(reader.read(1), timeout)
    except TimeoutError:
        return "open"
    except (ConnectionResetError, BrokenPipeError):
        return "rst"
    return "fin" if data == b"" else "data"


def open_fds() -> int:
    """Number of open file descriptors of this process (Linux /proc/self/fd)."""
    return len(os.listdir("/proc/self/fd"))


def established_from(port: int, peers: Iterable[str]) -> int:
    """Server-side ESTABLISHED sockets on local ``port`` whose peer address is one of ``peers`` (``ss`` with a
    kernel filter). Counting every socket with that local port also counts strangers: another process's client
    socket may hold the same port number on another loopback address."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wanted = set(peers)
    return sum(
        1 for line in out.splitlines() if line.split() and line.split()[-1].rsplit(":", 1)[0] in wanted
    )

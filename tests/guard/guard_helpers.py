"""Shared pieces of the guard tests: handlers, waiting without sleeping blindly, closing what a test opened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tcpwise.guard import Guard
from tcpwise.sockets.testing import connect_from


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


async def line_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A line is a request: the guard's request and minimum-rate clocks apply until the newline."""
    while line := await reader.readline():
        writer.write(b"ok " + line)
        await writer.drain()


async def wait_for(cond: Callable[[], bool], limit: float = 5.0, step: float = 0.01) -> bool:
    """Poll ``cond`` until true or ``limit`` loop-seconds pass (virtual seconds on the virtual clock)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        if cond():
            return True
        await asyncio.sleep(step)
    return cond()


async def request(src: str, port: int, line: bytes = b"GET\n") -> tuple[str, asyncio.StreamWriter | None]:
    """One request from ``src``: ``("ok", w)`` if answered, ``("rst"|"fin"|"refused", w)`` otherwise."""
    try:
        r, w = await connect_from(src, "127.0.0.1", port)
    except ConnectionResetError:
        return "refused", None  # RST before our connect() call even saw the handshake complete
    try:
        w.write(line)
        got = await asyncio.wait_for(r.readline(), 5)
    except (ConnectionResetError, BrokenPipeError):
        return "rst", w
    except TimeoutError:
        return "timeout", w
    return ("ok" if got.startswith(b"ok ") or got == line else "fin"), w


async def close_all(writers: list[asyncio.StreamWriter | None]) -> None:
    for w in writers:
        if w is not None:
            w.close()
    for w in writers:
        if w is not None:
            try:
                await w.wait_closed()
            except (ConnectionError, OSError):
                pass


async def serve(guard: Guard) -> int:
    server = await guard.start_server("127.0.0.1", 0)
    return int(server.sockets[0].getsockname()[1])


def time_wait_table_full() -> bool:
    """The kernel keeps at most ``net.ipv4.tcp_max_tw_buckets`` TIME_WAIT sockets (per namespace); beyond that a
    closing socket skips TIME_WAIT ("time wait bucket table overflow"). On a machine shared with load tests the
    table can be full, and a check that a graceful close left one TIME_WAIT would fail for a reason that is not
    ours: such checks ask this first."""
    import subprocess

    try:
        with open("/proc/sys/net/ipv4/tcp_max_tw_buckets") as f:
            cap = int(f.read())
        out = subprocess.run(
            ["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True, timeout=20
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    return out.stdout.count("\n") >= cap - 100

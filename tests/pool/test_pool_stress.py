"""10,000 borrows against a guarded loopback server that randomly closes connections with FIN and RST —
between requests, after a random delay (so the close races the next request), and instead of answering.
Zero failures may reach the caller, and every reply must belong to its own request (no stale response read
on a reused connection)."""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import pytest

from tcpwise.guard import Guard, GuardConfig, Timeouts
from tcpwise.pool import Pool, PoolConfig
from tcpwise.sockets.testing import LOOPS, run

BORROWS = 10_000
CONCURRENCY = 16


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and not writer.is_closing():
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()


@pytest.mark.slow
@pytest.mark.parametrize("loop", LOOPS)
def test_pool_10000_borrows_under_random_server_closes(loop: str) -> None:
    _stress(
        loop,
        BORROWS,
        PoolConfig(max_size=CONCURRENCY, retries=6, health_check_interval=0.5, backoff_base=0.001),
    )


def test_pool_stress_control_without_defences_fails() -> None:
    """The same load with validation and retries switched off: failures do reach the caller. This is what
    makes the zero above meaningful."""
    with pytest.raises(AssertionError, match="failures reached the caller"):
        _stress("asyncio", 1000, PoolConfig(max_size=CONCURRENCY, retries=0, validate_on_borrow=False))


def _stress(loop: str, borrows: int, cfg: PoolConfig) -> None:
    rng = random.Random(7)
    closes = {
        "fin_after": 0,
        "rst_after": 0,
        "rst_instead": 0,
        "fin_instead": 0,
        "fin_later": 0,
        "rst_later": 0,
    }

    async def chaotic(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop_ = asyncio.get_running_loop()
        while line := await reader.readline():
            x = rng.random()
            if x < 0.01:
                closes["rst_instead"] += 1
                _abort(writer)
                return
            if x < 0.02:
                closes["fin_instead"] += 1
                return  # the guard closes with FIN when the handler returns
            writer.write(b"ok " + line)
            await writer.drain()
            if x < 0.05:
                closes["fin_after"] += 1
                return
            if x < 0.08:
                closes["rst_after"] += 1
                _abort(writer)
                return
            if x < 0.10:
                closes["fin_later"] += 1
                loop_.call_later(rng.uniform(0, 0.003), writer.close)
            elif x < 0.12:
                closes["rst_later"] += 1
                loop_.call_later(rng.uniform(0, 0.003), _abort, writer)

    async def main() -> None:
        guard = Guard(chaotic, GuardConfig(timeouts=Timeouts(idle=30)))
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        failures: list[BaseException] = []
        mismatches = 0
        async with Pool("127.0.0.1", port, cfg) as pool:
            counter = iter(range(borrows))

            async def request(conn: object, n: int) -> bytes:
                conn.writer.write(b"req %d\n" % n)  # type: ignore[attr-defined]
                return bytes(await conn.reader.readuntil(b"\n"))  # type: ignore[attr-defined]

            async def worker() -> None:
                nonlocal mismatches
                for n in counter:
                    try:
                        reply = await pool.run(lambda c, n=n: request(c, n))
                    except Exception as exc:  # noqa: BLE001 - counting what reaches the caller
                        failures.append(exc)
                        continue
                    if reply != b"ok req %d\n" % n:
                        mismatches += 1

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            st = pool.stats()
        server.close()
        print(f"\n{loop}: server closes {closes}; pool {st}")
        assert failures == [], f"{len(failures)} failures reached the caller, first: {failures[:3]!r}"
        assert mismatches == 0
        assert st["borrows_total"] >= borrows
        # Both defences were exercised: dead idle connections caught at borrow, races retried.
        assert sum(st["validation_failures_total"].values()) > 0
        assert st["retries_total"] > 0
        assert sum(closes.values()) > 500

    run(main(), loop)

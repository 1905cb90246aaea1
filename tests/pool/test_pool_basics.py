"""Pool behaviour against real loopback servers: validation on borrow (FIN, RST), eviction, lifetime,
leak reports, max_size waiting, the config check against the server idle timeout."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from tcpwise.pool import Liveness, Pool, PoolConfig, PoolTimeout, peek_liveness
from tcpwise.sockets.testing import LOOPS, run


def test_pool_peek_liveness_alive_eof_rst_data() -> None:
    lst = socket.create_server(("127.0.0.1", 0))
    port = lst.getsockname()[1]

    def pair() -> tuple[socket.socket, socket.socket]:
        c = socket.create_connection(("127.0.0.1", port))
        s, _ = lst.accept()
        return c, s

    c, s = pair()
    assert peek_liveness(c) is Liveness.ALIVE
    s.sendall(b"x")
    import time

    time.sleep(0.05)
    assert peek_liveness(c) is Liveness.DATA
    assert c.recv(1) == b"x"  # the peek consumed nothing
    s.close()
    time.sleep(0.05)
    assert peek_liveness(c) is Liveness.EOF
    c.close()
    c, s = pair()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    time.sleep(0.05)
    assert peek_liveness(c) is Liveness.RESET
    c.close()
    assert peek_liveness(c) is Liveness.CLOSED
    lst.close()


class Server:
    """Line server: ``ok <line>`` per line; ``close_fin``/``close_rst`` closes after answering."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.accepted = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        while line := await reader.readline():
            writer.write(b"ok " + line)
            await writer.drain()
        writer.close()

    def close_all(self, rst: bool) -> None:
        for w in self.writers:
            if rst:
                w.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                w.transport.abort()
            else:
                w.close()
        self.writers.clear()


async def _req(conn: object, msg: bytes) -> bytes:
    conn.writer.write(msg + b"\n")  # type: ignore[attr-defined]
    return bytes(await conn.reader.readuntil(b"\n"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_pool_never_hands_out_a_closed_connection(loop: str, rst: bool) -> None:
    async def main() -> None:
        srv = Server()
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with Pool("127.0.0.1", port, PoolConfig(max_size=4, health_check_interval=None)) as pool:
            conns = [await pool.acquire() for _ in range(3)]
            for c in conns:
                assert await _req(c, b"a") == b"ok a\n"
                pool.release(c)
            srv.close_all(rst)  # the server closes all three while they sit idle in the pool
            await asyncio.sleep(0.1)
            async with pool.connection() as c:
                assert await _req(c, b"b") == b"ok b\n"  # a fresh connection, not a dead one
            why = "reset" if rst else "eof"
            assert pool.stats()["validation_failures_total"] == {why: 3}
            assert pool.stats()["opened_total"] == 4 and srv.accepted == 4
        server.close()

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_pool_idle_eviction_lifetime_and_min_idle(loop: str) -> None:
    async def main() -> None:
        srv = Server()
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = PoolConfig(
            max_size=5, min_idle=2, max_idle_time=0.3, max_lifetime=0.6, health_check_interval=0.05
        )
        async with Pool("127.0.0.1", port, cfg) as pool:
            await asyncio.sleep(0.2)
            assert len(pool._idle) == 2  # topped up to min_idle
            await asyncio.sleep(0.5)
            st = pool.stats()
            assert st["validation_failures_total"].get("idle", 0) >= 2  # replaced after max_idle_time
            assert len(pool._idle) == 2
            c = await pool.acquire()
            await asyncio.sleep(0.7)
            pool.release(c)  # older than max_lifetime: closed instead of kept
            assert pool.stats()["closed_total"].get("lifetime") == 1
        server.close()

    run(main(), loop)


def test_pool_leak_reported_with_borrow_site(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        srv = Server()
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = PoolConfig(leak_timeout=0.1, health_check_interval=0.05)
        async with Pool("127.0.0.1", port, cfg) as pool:
            c = await pool.acquire()  # borrowed here and "forgotten"
            await asyncio.sleep(0.3)
            assert pool.stats()["leaks_total"] == 1  # reported once, not on every check
            pool.release(c)
        server.close()

    with caplog.at_level(logging.WARNING, logger="tcpwise.pool"):
        run(main())
    recs = [r for r in caplog.records if getattr(r, "event", "") == "leak"]
    assert len(recs) == 1
    assert "test_pool_basics.py" in recs[0].borrowed_at and "in main" in recs[0].borrowed_at  # type: ignore[attr-defined]


def test_pool_max_size_waits_then_times_out() -> None:
    async def main() -> None:
        srv = Server()
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with Pool("127.0.0.1", port, PoolConfig(max_size=2, acquire_timeout=0.2)) as pool:
            a, b = await pool.acquire(), await pool.acquire()
            with pytest.raises(PoolTimeout, match="max_size 2"):
                await pool.acquire()
            waiter = asyncio.ensure_future(pool.acquire())
            await asyncio.sleep(0.05)
            pool.release(a)
            c = await asyncio.wait_for(waiter, 1)
            assert c is a  # the released connection went to the waiter
            pool.release(b)
            pool.release(c)
            assert srv.accepted == 2
        server.close()

    run(main())


def test_pool_rejects_idle_time_above_server_idle_timeout() -> None:
    with pytest.raises(ValueError, match="below the server idle timeout"):
        PoolConfig(max_idle_time=30, server_idle_timeout=10)
    PoolConfig(max_idle_time=5, server_idle_timeout=10)


@pytest.mark.parametrize("loop", LOOPS)
def test_pool_run_retries_after_reset(loop: str) -> None:
    async def main() -> None:
        calls = 0

        async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal calls
            await reader.readline()
            calls += 1
            if calls <= 2:  # the first two requests die with RST before any answer
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                writer.transport.abort()
                return
            writer.write(b"ok\n")
            await writer.drain()

        server = await asyncio.start_server(flaky, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with Pool("127.0.0.1", port, PoolConfig(retries=3)) as pool:
            assert await pool.run(lambda c: _req(c, b"x")) == b"ok\n"
            assert pool.stats()["retries_total"] == 2
            calls = -10  # now every request fails: the last error reaches the caller after `retries`

            async def always_reset(c: object) -> bytes:
                raise ConnectionResetError("simulated")

            with pytest.raises(ConnectionResetError):
                await pool.run(always_reset, retries=2)
        server.close()

    run(main(), loop)


def test_pool_sets_keepalive_on_client_sockets() -> None:
    from tcpwise.sockets import Keepalive

    async def main() -> None:
        srv = Server()
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = PoolConfig(keepalive=Keepalive(idle=5, interval=2, count=3, user_timeout=4))
        async with Pool("127.0.0.1", port, cfg) as pool:
            async with pool.connection() as c:
                s = c.writer.get_extra_info("socket")
                assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 5
                assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 4000
        server.close()

    run(main())

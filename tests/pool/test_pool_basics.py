"""Pool behaviour against real loopback servers: validation on borrow (FIN, RST), eviction, lifetime,
leak reports, max_size waiting, retry, the config check against the server idle timeout.

Timeouts run on the virtual clock (tcpwise.sockets.vclock) with realistic values (30 s idle, 60 s lifetime)
and exact instants; validation runs on the real clock on both loops (it waits for the kernel, not a timer).
The last test plants a bug in each family and checks that its assertions turn red."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from tcpwise.pool import Liveness, Pool, PoolConfig, PoolTimeout, peek_liveness
from tcpwise.pool import pool as pool_mod
from tcpwise.sockets.testing import LOOPS, run
from tcpwise.sockets.vclock import run_virtual


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
    _validation_scenario(loop, rst)


def _validation_scenario(loop: str, rst: bool) -> None:
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
            await asyncio.sleep(0.1)  # real time for the kernel to deliver the FIN/RST
            async with pool.connection() as c:
                assert await _req(c, b"b") == b"ok b\n"  # a fresh connection, not a dead one
            why = "reset" if rst else "eof"
            assert pool.stats()["validation_failures_total"] == {why: 3}
            assert pool.stats()["opened_total"] == 4 and srv.accepted == 4
        server.close()

    run(main(), loop)


def _eviction_scenario() -> None:
    """On the virtual clock: min_idle top-up at the first health check, idle connections replaced once they
    are older than max_idle_time, a borrowed connection older than max_lifetime closed on release."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = Server()
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = PoolConfig(max_size=5, min_idle=2, max_idle_time=30, max_lifetime=60, health_check_interval=5)
        async with Pool("127.0.0.1", port, cfg) as pool:
            t0 = loop.time()
            await asyncio.sleep(5.5)
            assert pool.stats()["idle"] == 2 and srv.accepted == 2  # topped up to min_idle at t=5
            await asyncio.sleep(30)  # t=35.5: the check at t=35 found both idle for 30 s
            st = pool.stats()
            assert st["validation_failures_total"] == {"idle": 2}, st  # replaced after max_idle_time
            assert pool.stats()["idle"] == 2 and srv.accepted == 4
            c = await pool.acquire()
            await asyncio.sleep(30)  # t=65.5: created at t=35, 30.5 s old, still under max_lifetime
            pool.release(c)
            assert pool.stats()["closed_total"].get("lifetime") is None
            c = await pool.acquire()
            await asyncio.sleep(30)  # now 60.5 s old
            pool.release(c)  # older than max_lifetime: closed instead of kept
            assert pool.stats()["closed_total"].get("lifetime") == 1
            assert loop.time() - t0 < 100
        server.close()

    run_virtual(main())


def test_pool_idle_eviction_lifetime_and_min_idle() -> None:
    _eviction_scenario()


def _leak_scenario() -> list[logging.LogRecord]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    async def main() -> None:
        srv = Server()
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = PoolConfig(leak_timeout=60, health_check_interval=5)
        async with Pool("127.0.0.1", port, cfg) as pool:
            c = await pool.acquire()  # borrowed here and "forgotten"
            await asyncio.sleep(59)
            assert pool.stats()["leaks_total"] == 0  # not before leak_timeout
            await asyncio.sleep(30)
            assert pool.stats()["leaks_total"] == 1  # reported once, not on every check
            pool.release(c)
        server.close()

    h = Keep(logging.WARNING)
    logging.getLogger("tcpwise.pool").addHandler(h)
    try:
        run_virtual(main())
    finally:
        logging.getLogger("tcpwise.pool").removeHandler(h)
    return [r for r in records if getattr(r, "event", "") == "leak"]


def test_pool_leak_reported_with_borrow_site() -> None:
    recs = _leak_scenario()
    assert len(recs) == 1
    assert "test_pool_basics.py" in recs[0].borrowed_at and "in main" in recs[0].borrowed_at  # type: ignore[attr-defined]


def _max_size_scenario() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        srv = Server()
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with Pool("127.0.0.1", port, PoolConfig(max_size=2, acquire_timeout=20)) as pool:
            a, b = await pool.acquire(), await pool.acquire()
            t0 = loop.time()
            with pytest.raises(PoolTimeout, match="max_size 2"):
                await pool.acquire()
            assert abs(loop.time() - t0 - 20) < 0.01  # waited exactly acquire_timeout
            waiter = asyncio.ensure_future(pool.acquire())
            await asyncio.sleep(1)
            pool.release(a)
            c = await asyncio.wait_for(waiter, 1)
            assert c is a  # the released connection went to the waiter at once
            pool.release(b)
            pool.release(c)
            assert srv.accepted == 2
        server.close()

    run_virtual(main())


def test_pool_max_size_waits_then_times_out() -> None:
    _max_size_scenario()


def test_pool_rejects_idle_time_above_server_idle_timeout() -> None:
    with pytest.raises(ValueError, match="below the server idle timeout"):
        PoolConfig(max_idle_time=30, server_idle_timeout=10)
    PoolConfig(max_idle_time=5, server_idle_timeout=10)


@pytest.mark.parametrize("loop", ["virtual", "uvloop"])
def test_pool_run_retries_after_reset(loop: str) -> None:
    _retry_scenario(loop)


def _retry_scenario(loop: str) -> None:
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
            assert pool.stats()["retries_total"] == 4
        server.close()

    if loop == "virtual":
        run_virtual(main())
    else:
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


def test_pool_checks_turn_red_on_planted_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:  # no validation at all: dead connections are handed out
        m.setattr(pool_mod, "peek_liveness", lambda sock: Liveness.ALIVE)
        m.setattr(pool_mod.PooledConnection, "_unusable", lambda self: None)
        with pytest.raises((AssertionError, ConnectionError, asyncio.IncompleteReadError)):
            _validation_scenario("asyncio", rst=False)
    with monkeypatch.context() as m:  # max_idle_time ignored
        m.setattr(pool_mod.Pool, "_check_idle", lambda self, c, now: None)
        with pytest.raises(AssertionError):
            _eviction_scenario()
    with monkeypatch.context() as m:  # the borrow site is not recorded
        m.setattr(pool_mod, "_borrow_site", lambda: "")
        with pytest.raises(AssertionError):
            test_pool_leak_reported_with_borrow_site()
    with monkeypatch.context() as m:  # a release does not wake the waiter
        m.setattr(pool_mod.Pool, "_wake", lambda self: None)
        with pytest.raises((AssertionError, TimeoutError)):
            _max_size_scenario()
    with monkeypatch.context() as m:  # retries switched off behind the caller's back
        orig_run = pool_mod.Pool.run
        m.setattr(pool_mod.Pool, "run", lambda self, op, retries=None: orig_run(self, op, retries=0))
        with pytest.raises((AssertionError, ConnectionResetError)):
            _retry_scenario("virtual")

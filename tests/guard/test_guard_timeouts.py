"""Guard timeouts and close modes on real loopback sockets (default loop and uvloop).

The FIN/RST check reads the kernel's socket table (/proc/net/tcp, what ``ss -tan state time-wait`` shows):
a graceful close leaves the server — the active closer — in TIME_WAIT; an abortive close (SO_LINGER {1,0})
leaves none. The FIN case proves the check can see a TIME_WAIT, so the RST case's "none" means something.
"""

from __future__ import annotations

import asyncio

import pytest

from tcpwise.guard import Guard, GuardConfig, Timeouts
from tcpwise.sockets.procnet import count_states
from tcpwise.sockets.testing import LOOPS, connect_from, probe_closed, run


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


async def _wait(cond: object, limit: float = 3.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        if cond():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return bool(cond())  # type: ignore[operator]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("mode", ["graceful", "abortive"])
def test_guard_idle_timeout_fin_or_rst_and_time_wait(loop: str, mode: str) -> None:
    async def main() -> None:
        guard = Guard(echo, GuardConfig(timeouts=Timeouts(idle=0.3), close_mode=mode))  # type: ignore[arg-type]
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await connect_from("127.0.0.10", "127.0.0.1", port)
        w.write(b"a")
        assert await r.readexactly(1) == b"a"
        how = await probe_closed(r, timeout=5.0)
        assert how == ("fin" if mode == "graceful" else "rst")
        w.close()
        assert await _wait(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"idle_timeout": 1}
        if mode == "graceful":
            assert await _wait(
                lambda: count_states(local_port=port, local_addr="127.0.0.1")["TIME_WAIT"] == 1
            )
        else:
            await asyncio.sleep(0.2)
            st = count_states(local_port=port, local_addr="127.0.0.1")
            assert st["TIME_WAIT"] == 0 and st["FIN_WAIT_2"] == 0, st
            assert count_states(remote_port=port)["TIME_WAIT"] == 0
        server.close()

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_guard_first_byte_then_idle(loop: str) -> None:
    async def main() -> None:
        guard = Guard(echo, GuardConfig(timeouts=Timeouts(first_byte=0.3, idle=30)))
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r1, w1 = await connect_from("127.0.0.11", "127.0.0.1", port)  # silent: slowloris
        r2, w2 = await connect_from("127.0.0.11", "127.0.0.1", port)  # speaks once, then idles under 30 s
        w2.write(b"b")
        assert await r2.readexactly(1) == b"b"
        assert await probe_closed(r1, timeout=5.0) == "fin"
        assert await probe_closed(r2, timeout=0.5) == "open"
        w1.close()
        assert await _wait(lambda: guard.stats()["closes_total"] == {"first_byte_timeout": 1})
        w2.close()
        assert await _wait(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"first_byte_timeout": 1, "peer_closed": 1}
        server.close()

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_guard_stalled_write_and_lifetime(loop: str) -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = b"z" * 65536
        for _ in range(10_000):  # bounded: ~655 MB, far beyond what loopback buffers hold
            writer.write(chunk)
            await writer.drain()

    async def main() -> None:
        guard = Guard(flood, GuardConfig(timeouts=Timeouts(write=0.3, drain=0.2), close_mode="abortive"))
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _r, w = await connect_from("127.0.0.12", "127.0.0.1", port)  # never reads
        assert await _wait(lambda: guard.stats()["closes_total"].get("write_timeout") == 1, 10)
        w.close()
        server.close()

        g2 = Guard(echo, GuardConfig(timeouts=Timeouts(idle=5, lifetime=0.4)))
        s2 = await g2.start_server("127.0.0.1", 0)
        r, w = await connect_from("127.0.0.12", "127.0.0.1", s2.sockets[0].getsockname()[1])
        closed = False
        for _ in range(100):  # an active client: idle never fires, lifetime does
            try:
                w.write(b"p")
                await w.drain()
                if await asyncio.wait_for(r.read(1), 1.0) == b"":
                    closed = True
                    break
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            await asyncio.sleep(0.05)
        assert closed
        w.close()
        assert await _wait(lambda: not g2.connections)
        assert g2.stats()["closes_total"] == {"lifetime": 1}
        s2.close()

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_guard_always_closes_after_handler(loop: str) -> None:
    async def forgetful(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if line == b"boom\n":
            raise RuntimeError("handler bug")
        writer.write(b"bye\n")  # ...and returns without writer.close(): the CLOSE_WAIT-leak pattern

    async def main() -> None:
        guard = Guard(forgetful)
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for msg in (b"hi\n", b"boom\n"):
            r, w = await connect_from("127.0.0.13", "127.0.0.1", port)
            w.write(msg)
            data = await asyncio.wait_for(r.read(), 5)  # read() returns only at EOF: proves the close
            assert data == (b"bye\n" if msg == b"hi\n" else b"")
            w.close()
        assert await _wait(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"handler_done": 1, "handler_error": 1}
        assert count_states(local_port=port, local_addr="127.0.0.1")["CLOSE_WAIT"] == 0
        server.close()

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_guard_heartbeat_detects_asymmetric_timeouts_live(loop: str) -> None:
    from tcpwise.guard import HeartbeatMismatch, heartbeat

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass

    async def main() -> None:
        guard = Guard(sink, GuardConfig(timeouts=Timeouts(idle=0.3)))
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await connect_from("127.0.0.14", "127.0.0.1", port)
        assert (
            await heartbeat(w, 0.1, reader=r, max_beats=8) == 8
        )  # 0.1 s beats keep a 0.3 s idle timeout happy
        with pytest.raises(HeartbeatMismatch, match=r"closed this connection during a 0.5 s heartbeat gap"):
            await heartbeat(
                w, 0.5, reader=r, max_beats=3
            )  # the asymmetric mistake, found without knowing 0.3
        w.close()
        assert await _wait(lambda: guard.stats()["closes_total"] == {"idle_timeout": 1})
        server.close()

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_guard_graceful_close_lingers_for_peer_fin(loop: str) -> None:
    """Graceful mode sends FIN, keeps the connection until the peer's FIN (or the drain deadline), then closes."""

    async def main() -> None:
        guard = Guard(echo, GuardConfig(timeouts=Timeouts(idle=0.2, drain=5.0)))
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await connect_from("127.0.0.15", "127.0.0.1", port)
        w.write(b"a")
        assert await r.readexactly(1) == b"a"
        assert await probe_closed(r, timeout=5.0) == "fin"
        await asyncio.sleep(0.2)
        assert len(guard.connections) == 1  # half-closed: waiting for our FIN to be answered
        assert count_states(local_port=port, local_addr="127.0.0.1")["FIN_WAIT_2"] == 1
        w.close()  # the client's FIN
        assert await _wait(lambda: not guard.connections, 3.0)
        assert guard.stats()["closes_total"] == {"idle_timeout": 1}
        assert await _wait(lambda: count_states(local_port=port, local_addr="127.0.0.1")["TIME_WAIT"] == 1)
        server.close()

    run(main(), loop)

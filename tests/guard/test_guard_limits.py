"""Per-IP and global limits on real loopback sockets, on the default loop and on uvloop.

Clients bind 127.0.0.2, 127.0.0.3, ... so one host plays several sources. Connections are opened one at a
time so the admission order is the connection order and the counts can be asserted exactly.
"""

from __future__ import annotations

import asyncio

import pytest

from tcpwise.guard import Guard, GuardConfig, Keepalive, Limits
from tcpwise.sockets.procnet import count_states, own_socket_inodes, port_socket_inodes
from tcpwise.sockets.testing import LOOPS, connect_from, established_from, open_fds, probe_closed, run


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


async def _try(src: str, port: int) -> tuple[str, asyncio.StreamWriter]:
    """Connect from ``src``; ``("ok", w)`` when served (echo answered), else ``("fin"|"rst", w)``."""
    r, w = await connect_from(src, "127.0.0.1", port)
    if not w.is_closing():  # uvloop may already have seen the refusal and closed the transport
        try:
            w.write(b"x")
            await w.drain()
        except (ConnectionResetError, BrokenPipeError):
            return "rst", w
    how = await probe_closed(r, timeout=3.0)
    return ("ok" if how == "data" else how), w


async def _warm_up() -> None:
    srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    _, w0 = await connect_from("127.0.0.9", "127.0.0.1", srv.sockets[0].getsockname()[1])
    w0.close()
    await w0.wait_closed()
    srv.close()
    await srv.wait_closed()
    await asyncio.sleep(0.05)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("refuse_mode", ["rst", "fin"])
def test_guard_limits_exact_and_nothing_leaked(loop: str, refuse_mode: str) -> None:
    async def main() -> None:
        # Warm-up: a loop creates some fds lazily (uvloop's thread-pool wakeup) on first connect.
        await _warm_up()
        fds0 = open_fds()
        cfg = GuardConfig(limits=Limits(max_connections=7, max_per_ip=3), refuse_mode=refuse_mode)  # type: ignore[arg-type]
        guard = Guard(echo, cfg)
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        results: dict[str, list[str]] = {}
        writers: list[asyncio.StreamWriter] = []
        plan = [("127.0.0.2", 5), ("127.0.0.3", 4), ("127.0.0.4", 3)]
        for src, n in plan:
            for _ in range(n):
                how, w = await _try(src, port)
                results.setdefault(src, []).append(how)
                writers.append(w)
        refused = "rst" if refuse_mode == "rst" else "fin"
        assert results["127.0.0.2"] == ["ok"] * 3 + [refused] * 2
        assert results["127.0.0.3"] == ["ok"] * 3 + [refused]
        # 6 open: one more slot in total, then the global limit refuses even a fresh source.
        assert results["127.0.0.4"] == ["ok"] + [refused] * 2
        assert guard.admission.active == 7 and guard.peak_active == 7
        # Server side: exactly the admitted ones (peers of this test only: see established_from).
        assert established_from(port, [src for src, _ in plan]) == 7, count_states(local_port=port)
        st = guard.stats()["closes_total"]
        assert st.get("refused_ip_limit") == 3 and st.get("refused_global_limit") == 2
        # Free one slot of 127.0.0.2 and it is admitted again.
        writers[0].close()
        for _ in range(100):
            if guard.admission.active == 6:
                break
            await asyncio.sleep(0.01)
        how, w = await _try("127.0.0.2", port)
        writers.append(w)
        assert how == "ok"
        for w in writers:
            w.close()
        for w in writers:
            try:
                await w.wait_closed()
            except (ConnectionResetError, BrokenPipeError):
                pass
        for _ in range(300):
            if not guard.connections:
                break
            await asyncio.sleep(0.01)
        assert guard.admission.active == 0 and guard.admission.per_key == {}
        server.close()
        await server.wait_closed()
        for _ in range(50):  # closes complete on the next loop iterations
            if open_fds() <= fds0:
                break
            await asyncio.sleep(0.02)
        assert not own_socket_inodes() & port_socket_inodes(port), "a socket of this test is still open"
        assert open_fds() <= fds0, "a refused or closed connection leaked a file descriptor"

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_guard_sets_keepalive_and_user_timeout(loop: str) -> None:
    import socket

    seen: dict[str, int] = {}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = writer.get_extra_info("socket")
        for name, (lvl, opt) in {
            "SO_KEEPALIVE": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            "TCP_KEEPIDLE": (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            "TCP_KEEPINTVL": (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            "TCP_KEEPCNT": (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            "TCP_USER_TIMEOUT": (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        }.items():
            seen[name] = s.getsockopt(lvl, opt)
        writer.write(b"k")
        await writer.drain()

    async def main() -> None:
        guard = Guard(
            handler, GuardConfig(keepalive=Keepalive(idle=7, interval=3, count=4, user_timeout=9.5))
        )
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await connect_from("127.0.0.5", "127.0.0.1", port)
        assert await r.read(1) == b"k"
        w.close()
        server.close()

    run(main(), loop)
    assert seen == {
        "SO_KEEPALIVE": 1,
        "TCP_KEEPIDLE": 7,
        "TCP_KEEPINTVL": 3,
        "TCP_KEEPCNT": 4,
        "TCP_USER_TIMEOUT": 9500,
    }


@pytest.mark.parametrize("loop", LOOPS)
def test_guard_rate_limit_refuses_burst(loop: str) -> None:
    async def main() -> None:
        guard = Guard(echo, GuardConfig(limits=Limits(accept_rate=0.5, accept_burst=2)))
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        got = []
        for _ in range(4):
            how, w = await _try("127.0.0.6", port)
            got.append(how)
            w.close()
        assert got == ["ok", "ok", "rst", "rst"]
        assert guard.stats()["closes_total"]["refused_rate"] == 2
        server.close()

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_guard_ipv6_loopback_per_prefix_limit(loop: str) -> None:
    async def main() -> None:
        guard = Guard(echo, GuardConfig(limits=Limits(max_per_ip=2)))
        try:
            server = await guard.start_server("::1", 0)
        except OSError:
            pytest.skip("no IPv6 loopback")
        port = server.sockets[0].getsockname()[1]
        got, keep = [], []
        for _ in range(3):
            r, w = await asyncio.open_connection("::1", port)
            keep.append(w)  # a dropped StreamWriter closes its transport when collected
            if not w.is_closing():
                w.write(b"x")
            got.append(await probe_closed(r, timeout=3.0))
        assert got == ["data", "data", "rst"]
        assert guard.admission.per_key == {"::/64": 2}
        for w in keep:
            w.close()
        server.close()

    run(main(), loop)

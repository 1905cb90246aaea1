"""Per-IP and global limits, eviction at the cap, descriptor headroom and accept errors, on real loopback
sockets (the default loop and uvloop; eviction and headroom on the virtual clock).

Clients bind 127.0.0.2, 127.0.0.3, ... so one host plays several sources. Connections are opened one at a
time so the admission order is the connection order and the counts can be asserted exactly. The last tests
plant bugs (an off-by-one per-IP limit, no eviction, eviction from the lightest source, no pause) and check
that the assertions turn red.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket

import pytest
from guard_helpers import close_all, line_echo, request, serve, wait_for

from tcpwise.guard import Guard, GuardConfig, Keepalive, Limits, Timeouts
from tcpwise.guard.limits import Admission
from tcpwise.sockets.procnet import count_states, own_socket_inodes, port_socket_inodes
from tcpwise.sockets.testing import LOOPS, connect_from, established_from, open_fds, probe_closed, run
from tcpwise.sockets.vclock import run_virtual


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


async def _try(src: str, port: int) -> tuple[str, asyncio.StreamWriter | None]:
    """Connect from ``src``; ``("ok", w)`` when served (echo answered), else ``("fin"|"rst", w)``."""
    try:
        r, w = await connect_from(src, "127.0.0.1", port)
    except ConnectionResetError:  # refused before our connect() even saw the handshake complete
        return "rst", None
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
    _limits_scenario(loop, refuse_mode)


def _limits_scenario(loop: str, refuse_mode: str) -> None:
    async def main() -> None:
        # Warm-up: a loop creates some fds lazily (uvloop's thread-pool wakeup) on first connect.
        await _warm_up()
        fds0 = open_fds()
        cfg = GuardConfig(limits=Limits(max_connections=7, max_per_ip=3), refuse_mode=refuse_mode)  # type: ignore[arg-type]
        guard = Guard(echo, cfg)
        server = await guard.start_server("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        results: dict[str, list[str]] = {}
        writers: list[asyncio.StreamWriter | None] = []
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
        assert writers[0] is not None
        writers[0].close()
        for _ in range(100):
            if guard.admission.active == 6:
                break
            await asyncio.sleep(0.01)
        how, w = await _try("127.0.0.2", port)
        writers.append(w)
        assert how == "ok"
        for w in writers:
            if w is not None:
                w.close()
        for w in writers:
            if w is None:
                continue
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
            if w is not None:
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
            try:
                r, w = await asyncio.open_connection("::1", port)
            except ConnectionResetError:
                got.append("rst")
                continue
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


# -- eviction at the cap (virtual clock) -------------------------------------------------------------------------


def _eviction_scenario() -> None:
    """Cap 5: a served keep-alive client, a slow-to-speak legitimate client and three silent attacker
    connections from one address. At the cap, another attacker connection is refused (its source already holds
    the most); a legitimate newcomer is served by evicting the *oldest* attacker connection; neither legitimate
    client is touched."""

    async def main() -> None:
        cfg = GuardConfig(
            limits=Limits(max_connections=5, evict_min_age=1.0), timeouts=Timeouts(idle=300), keepalive=None
        )
        guard = Guard(line_echo, cfg)
        port = await serve(guard)
        kr, kw = await connect_from("127.0.2.50", "127.0.0.1", port)
        kw.write(b"GET\n")
        assert await kr.readline() == b"ok GET\n"  # completed a request: not an eviction candidate any more
        fr, fw = await connect_from("127.0.2.52", "127.0.0.1", port)  # connected, request not sent yet
        attackers = [await connect_from("127.0.1.50", "127.0.0.1", port) for _ in range(3)]
        assert await wait_for(lambda: guard.admission.active == 5)
        await asyncio.sleep(2)  # everyone is older than evict_min_age now
        how, extra = await request("127.0.1.50", port)
        assert how in ("refused", "rst"), f"another attacker connection was {how}, not refused"
        how, lw = await request("127.0.2.51", port)
        assert how == "ok", f"the legitimate newcomer was {how} at the cap"
        assert await probe_closed(attackers[0][0], timeout=1) == "rst", "the oldest attacker was not evicted"
        assert all([await probe_closed(r, timeout=0.1) == "open" for r, _ in attackers[1:]])
        kw.write(b"again\n")
        assert await asyncio.wait_for(kr.readline(), 5) == b"ok again\n", "the served client was evicted"
        fw.write(b"late\n")
        assert await asyncio.wait_for(fr.readline(), 5) == b"ok late\n", "the slow client was evicted"
        assert guard.stats()["closes_total"] == {"refused_global_limit": 1, "evicted": 1}
        await close_all([kw, fw, lw, extra, *(w for _, w in attackers)])
        assert await wait_for(lambda: not guard.connections)
        assert guard.admission.active == 0 and len(guard._index) == 0

    run_virtual(main())


def test_guard_evicts_unproven_connections_from_the_heaviest_source() -> None:
    _eviction_scenario()


def test_guard_equal_sources_evict_only_candidates_older_than_min_age() -> None:
    async def main() -> None:
        cfg = GuardConfig(limits=Limits(max_connections=2, evict_min_age=1.0), keepalive=None)
        guard = Guard(line_echo, cfg)
        port = await serve(guard)
        a = await connect_from("127.0.1.60", "127.0.0.1", port)
        b = await connect_from("127.0.1.61", "127.0.0.1", port)
        how, _ = await request("127.0.1.62", port)  # everyone holds one, nobody is old enough: refuse
        assert how in ("refused", "rst")
        await asyncio.sleep(1.5)
        how, cw = await request("127.0.1.62", port)  # now the oldest candidate goes
        assert how == "ok"
        assert await probe_closed(a[0], timeout=1) == "rst"
        assert await probe_closed(b[0], timeout=0.1) == "open"
        await close_all([a[1], b[1], cw])

    run_virtual(main())


# -- descriptor headroom and accept errors -----------------------------------------------------------------------


def _headroom_scenario() -> None:
    """A pretend RLIMIT_NOFILE 80 descriptors above what the process holds, headroom 16, and a handler that
    opens one file per connection (2 descriptors each): accepting pauses before the limit, the waiting
    clients sit in the accept queue, and they are served once descriptors are freed."""
    from tcpwise.guard import server as server_mod
    from tcpwise.sockets.fds import open_fd_count

    base = open_fd_count()
    fake_limit = base + 80
    max_fd = 0

    async def file_per_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal max_fd
        fd = os.open("/dev/null", os.O_RDONLY)
        max_fd = max(max_fd, fd, writer.get_extra_info("socket").fileno())
        try:
            await line_echo(reader, writer)
        finally:
            os.close(fd)

    async def main() -> None:
        guard = Guard(file_per_conn, GuardConfig(limits=Limits(fd_headroom=16), keepalive=None))
        orig = server_mod.nofile_limit
        server_mod.nofile_limit = lambda: fake_limit
        try:
            port = await serve(guard)
        finally:
            server_mod.nofile_limit = orig
        clients = []
        for i in range(45):
            r, w = await connect_from(f"127.0.2.{70 + i}", "127.0.0.1", port)
            w.write(b"GET\n")
            clients.append((r, w))
        await asyncio.sleep(1)
        answered = [await probe_closed(r, timeout=0.01) == "data" for r, _ in clients]
        assert guard.paused, f"never paused: {guard.stats()}"
        assert max_fd < fake_limit, f"descriptor {max_fd} reached the limit {fake_limit}"
        assert 0 < sum(answered) < 45  # the rest wait in the kernel's accept queue
        assert guard.stats()["accept_pauses_total"] == {"headroom": 1}
        waiting = [c for c, ok in zip(clients, answered, strict=True) if not ok]
        served = [c for c, ok in zip(clients, answered, strict=True) if ok]
        await close_all([w for _, w in served])
        assert await wait_for(lambda: not guard.paused, 5)
        for r, _ in waiting:  # accepted after the resume and answered
            assert await asyncio.wait_for(r.readline(), 5) == b"ok GET\n"
        await close_all([w for _, w in waiting])
        assert guard.stats()["accept_errors_total"] == {}

    run_virtual(main())


def test_guard_pauses_accepting_before_the_fd_limit_and_resumes(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tcpwise.guard"):
        _headroom_scenario()
    pauses = [r for r in caplog.records if getattr(r, "event", "") == "accept_paused"]
    resumes = [r for r in caplog.records if getattr(r, "event", "") == "accept_resumed"]
    assert len(pauses) == 1 and len(resumes) == 1, [r.getMessage() for r in caplog.records]


class _EmfileSocket(socket.socket):
    """A listening socket whose accept() fails with EMFILE the first ``fail`` times."""

    fail = 0

    def accept(self) -> tuple[socket.socket, object]:
        if self.fail > 0:
            self.fail -= 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return super().accept()


def _listening_emfile(fail: int) -> _EmfileSocket:
    s = _EmfileSocket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(100)
    s.setblocking(False)
    s.fail = fail
    return s


def _emfile_records(use_guard_accept: bool) -> int:
    """EMFILE on 30 accept() calls in a row: how many log records does the server write?"""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        guard = Guard(line_echo, GuardConfig(keepalive=None))
        lsock = _listening_emfile(30)
        if use_guard_accept:
            await guard.start_server(sock=lsock)
        else:  # asyncio's own accept loop, the guard deciding only in connection_made
            await loop.create_server(guard.protocol_factory(), sock=lsock, backlog=100)
        port = lsock.getsockname()[1]
        how, w = await request("127.0.2.90", port)
        assert how == "ok"  # served once accept() works again
        await close_all([w])
        if use_guard_accept:
            assert guard.stats()["accept_errors_total"] == {"EMFILE": 30}

    h = Keep()
    for name in ("tcpwise.guard", "asyncio"):
        logging.getLogger(name).addHandler(h)
    try:
        run_virtual(main())
    finally:
        for name in ("tcpwise.guard", "asyncio"):
            logging.getLogger(name).removeHandler(h)
    return sum(1 for r in records if r.levelno >= logging.WARNING)


def test_guard_emfile_pauses_and_logs_a_bounded_number_of_records() -> None:
    # 30 failures mean 30 pauses of 50 ms each: one record per pause through the rate limiter (burst 20).
    assert _emfile_records(use_guard_accept=True) <= 21


def test_guard_emfile_check_turns_red_under_asyncios_accept_loop() -> None:
    """The same failing accept() under asyncio's own accept loop: it keeps calling accept() and logs each
    failure (CPython 3.11 ``_accept_connection``), so the bound above would not hold."""
    assert _emfile_records(use_guard_accept=False) >= 30


# -- the checks above can fail ---------------------------------------------------------------------------------


def test_guard_limit_and_eviction_checks_turn_red_on_planted_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcpwise.guard import evict as evict_mod
    from tcpwise.guard.listener import GuardServer
    from tcpwise.guard.server import Guard as GuardCls

    orig_admit = Admission.admit

    def off_by_one(self: Admission, host: str, now: float, make_room: object = None) -> object:
        key = self.key(host)
        if self.limits.max_per_ip is not None and self.per_key.get(key, 0) == self.limits.max_per_ip:
            self.per_key[key] -= 1  # lets one more in per source
        return orig_admit(self, host, now, make_room)  # type: ignore[arg-type]

    with monkeypatch.context() as m:
        m.setattr(Admission, "admit", off_by_one)
        with pytest.raises(AssertionError):
            _limits_scenario("asyncio", "rst")
    with monkeypatch.context() as m:  # never evict: the newcomer is refused at the cap
        m.setattr(GuardCls, "_make_room", lambda self, key, now: False)
        with pytest.raises(AssertionError, match="legitimate newcomer was"):
            _eviction_scenario()
    with monkeypatch.context() as m:  # rank the *lightest* sources first
        orig_nsmallest = evict_mod.heapq.nsmallest
        m.setattr(
            evict_mod.heapq, "nsmallest", lambda n, it: orig_nsmallest(n, ((-a, b, c) for a, b, c in it))
        )
        with pytest.raises(AssertionError, match="slow client was evicted|oldest attacker"):
            _eviction_scenario()
    with monkeypatch.context() as m:  # never pause
        m.setattr(GuardServer, "pause", lambda self, why, in_use: None)
        with pytest.raises(AssertionError, match="never paused"):
            _headroom_scenario()


def test_guard_eviction_while_setup_in_flight_resets_when_the_transport_appears() -> None:
    """A connection evicted after its set-up started but before ``connection_made``: its slot is given back at
    once, and the transport is reset the moment it exists (never served, counted once)."""
    from tcpwise.guard.reasons import CloseReason
    from tcpwise.guard.server import GuardedProtocol

    class FakeTransport:
        aborted = False

        def get_extra_info(self, name: str) -> object:
            return None

        def abort(self) -> None:
            self.aborted = True

    async def main() -> None:
        guard = Guard(line_echo, GuardConfig(limits=Limits(max_connections=1)))
        key, reason = guard._admit("127.0.1.99", 0.0)
        assert reason is None and guard.admission.active == 1
        proto = GuardedProtocol(guard, asyncio.get_running_loop(), key)
        proto.evict()
        assert guard.admission.active == 0 and proto.reason is CloseReason.EVICTED
        tr = FakeTransport()
        proto.connection_made(tr)  # type: ignore[arg-type]
        assert tr.aborted and not guard.connections
        assert guard.stats()["closes_total"] == {"evicted": 1}
        proto.connection_lost(None)
        assert guard.stats()["closes_total"] == {"evicted": 1}

    run_virtual(main())


def _setup_order(light: int | None = None) -> list[str]:
    """Three busy sources (holding 10 connections each) queue 5 more each, then a new source one; return the
    set-up order."""
    from tcpwise.guard import server as server_mod

    order: list[str] = []
    socks: list[socket.socket] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        guard = Guard(line_echo, GuardConfig(keepalive=None))
        guard._attach = lambda lp, proto, conn, kw: order.append(proto._key or "")  # type: ignore[method-assign]
        for i in range(30):
            guard.admission.admit(f"127.0.1.{70 + i % 3}", 0.0)  # what they already hold
        peers = [f"127.0.1.{70 + i % 3}" for i in range(15)] + ["127.0.2.70"]
        for host in peers:
            a, b = socket.socketpair()
            socks.extend((a, b))
            guard._on_accept(loop, a, (host, 40000), {})
        for _ in range(3):
            await asyncio.sleep(0)

    orig = server_mod._LIGHT_SOURCE
    if light is not None:
        server_mod._LIGHT_SOURCE = light
    try:
        run_virtual(main())
    finally:
        server_mod._LIGHT_SOURCE = orig
        for s in socks:
            s.close()
    return order


def _check_new_source_first(order: list[str]) -> None:
    assert len(order) == 16
    assert order.index("127.0.2.70") == 0, order  # before all 15 of the busy sources


def test_guard_sets_up_a_new_source_before_the_busy_ones() -> None:
    _check_new_source_first(_setup_order())


def test_guard_setup_order_check_turns_red_without_the_front_queue() -> None:
    order = _setup_order(light=-1)  # planted bug: nobody goes to the front queue
    with pytest.raises(AssertionError):
        _check_new_source_first(order)

"""Guard deadlines on a virtual clock (tcpwise.sockets.vclock): real loopback sockets, no sleeping.

Each deadline is asserted to fire at its exact virtual instant (within 10 ms), not "somewhere within a
generous margin". The FIN/RST checks read the kernel's socket table (``ss``): a graceful close leaves the
server — the active closer — in TIME_WAIT; an abortive close (SO_LINGER {1,0}) leaves none. The last tests
plant a bug in each deadline computation and check that the assertions above turn red.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from guard_helpers import echo, line_echo, serve, time_wait_table_full, wait_for

from tcpwise.guard import Guard, GuardConfig, Timeouts
from tcpwise.guard import timeouts as timeouts_mod
from tcpwise.guard.server import GuardedProtocol
from tcpwise.sockets.procnet import count_states
from tcpwise.sockets.testing import connect_from, probe_closed
from tcpwise.sockets.vclock import run_virtual

EXACT = 0.01  # virtual seconds: a deadline fires at its instant, give or take the loop's clock resolution


def _states(port: int) -> Any:
    return count_states(local_port=port, local_addr="127.0.0.1")


def _idle_scenario(mode: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        guard = Guard(echo, GuardConfig(timeouts=Timeouts(idle=30), close_mode=mode))  # type: ignore[arg-type]
        port = await serve(guard)
        r, w = await connect_from("127.0.0.10", "127.0.0.1", port)
        w.write(b"a")
        assert await r.readexactly(1) == b"a"
        t_last = loop.time()
        how = await probe_closed(r, timeout=120)
        took = loop.time() - t_last
        assert how == ("fin" if mode == "graceful" else "rst")
        assert abs(took - 30) < EXACT, f"idle timeout fired after {took:.3f} s, configured 30 s"
        w.close()
        assert await wait_for(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"idle_timeout": 1}
        if mode == "graceful":
            assert time_wait_table_full() or await wait_for(lambda: _states(port)["TIME_WAIT"] == 1)
        else:
            st = _states(port)
            assert st["TIME_WAIT"] == 0 and st["FIN_WAIT_2"] == 0, st
        assert loop.jumps > 0  # type: ignore[attr-defined]  # it really ran on virtual time

    run_virtual(main())


@pytest.mark.parametrize("mode", ["graceful", "abortive"])
def test_guard_idle_timeout_fires_at_its_deadline_with_fin_or_rst(mode: str) -> None:
    _idle_scenario(mode)


def test_guard_first_byte_then_idle() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        guard = Guard(echo, GuardConfig(timeouts=Timeouts(first_byte=5, idle=30)))
        port = await serve(guard)
        t0 = loop.time()
        r1, w1 = await connect_from("127.0.0.11", "127.0.0.1", port)  # silent: the classic slowloris
        r2, w2 = await connect_from("127.0.0.11", "127.0.0.1", port)  # speaks once, then idles under 30 s
        w2.write(b"b")
        assert await r2.readexactly(1) == b"b"
        assert await probe_closed(r1, timeout=60) == "fin"
        assert abs(loop.time() - t0 - 5) < EXACT
        assert await probe_closed(r2, timeout=20) == "open"  # 25 s after its byte: idle (30 s) not reached
        assert await probe_closed(r2, timeout=60) == "fin"
        assert abs(loop.time() - t0 - 30) < EXACT
        for w in (w1, w2):
            w.close()
        assert await wait_for(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"first_byte_timeout": 1, "idle_timeout": 1}

    run_virtual(main())


def _trickle_scenario() -> None:
    """The slowloris of issue 17: one byte just inside the idle timeout, never a whole request. ``min_rate`` cuts
    it ``grace + bytes/min_rate`` after its first byte; no ``lifetime`` is configured."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        cfg = GuardConfig(
            timeouts=Timeouts(first_byte=5, idle=10, min_rate=100, min_rate_grace=2), close_mode="abortive"
        )
        guard = Guard(line_echo, cfg)
        port = await serve(guard)
        r, w = await connect_from("127.0.1.40", "127.0.0.1", port)
        fast_r, fast_w = await connect_from("127.0.2.40", "127.0.0.1", port)
        t_first = loop.time()
        sent = 0
        cut_at = None
        for _ in range(8):  # 8 bytes over ~80 s if nobody cuts it
            try:
                w.write(b"G")
                sent += 1
                if await asyncio.wait_for(r.read(1), 9.9) == b"":
                    cut_at = loop.time()
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                cut_at = loop.time()
                break
        assert cut_at is not None, (
            f"the trickling client survived {loop.time() - t_first:.0f} s ({sent} bytes)"
        )
        assert sent == 1 and abs(cut_at - t_first - 2.01) < EXACT, (sent, cut_at - t_first)
        # A client that sends its request at a decent rate is served: 300 bytes in 100-byte chunks, 0.5 s apart.
        for _ in range(3):
            fast_w.write(b"x" * 100)
            await asyncio.sleep(0.5)
        fast_w.write(b"\n")
        assert await asyncio.wait_for(fast_r.readline(), 5) == b"ok " + b"x" * 300 + b"\n"
        w.close()
        fast_w.close()
        assert await wait_for(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"min_rate": 1, "peer_closed": 1}

    run_virtual(main())


def test_guard_min_rate_cuts_the_trickling_slowloris_without_lifetime() -> None:
    _trickle_scenario()


def test_guard_request_timeout_on_client_time() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        guard = Guard(line_echo, GuardConfig(timeouts=Timeouts(idle=30, request=10), close_mode="abortive"))
        port = await serve(guard)
        r, w = await connect_from("127.0.1.41", "127.0.0.1", port)
        w.write(b"GET\n")
        assert await r.readline() == b"ok GET\n"  # one complete request: answered, clock stopped
        await asyncio.sleep(20)  # idle between requests is the idle timeout's business, not this one's
        t1 = loop.time()
        closed = None
        for _ in range(30):  # then a request at 1 byte/s that never ends
            try:
                w.write(b"x")
                if await asyncio.wait_for(r.read(1), 1.0) == b"":
                    closed = loop.time()
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed = loop.time()
                break
        assert closed is not None and abs(closed - t1 - 10) < EXACT, closed
        w.close()
        assert await wait_for(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"request_timeout": 1}

    run_virtual(main())


def _slow_handler_scenario() -> None:
    """A handler that computes for 60 s before answering does not make its client slow: the request and
    minimum-rate clocks run only while the handler waits for the client's bytes."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            await asyncio.sleep(60)
            writer.write(b"done " + line)
            await writer.drain()

    async def main() -> None:
        cfg = GuardConfig(timeouts=Timeouts(idle=300, request=10, min_rate=100, min_rate_grace=2))
        guard = Guard(slow, cfg)
        port = await serve(guard)
        r, w = await connect_from("127.0.2.42", "127.0.0.1", port)
        w.write(b"GET\n")
        assert await asyncio.wait_for(r.readline(), 120) == b"done GET\n"
        assert guard.stats()["closes_total"] == {}
        w.close()
        assert await wait_for(lambda: not guard.connections)

    run_virtual(main())


def test_guard_slow_handler_does_not_make_its_client_slow() -> None:
    _slow_handler_scenario()


def test_guard_stalled_write_and_lifetime() -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = b"z" * 65536
        for _ in range(10_000):  # bounded: ~655 MB, far beyond what loopback buffers hold
            writer.write(chunk)
            await writer.drain()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        guard = Guard(flood, GuardConfig(timeouts=Timeouts(write=30, drain=1), close_mode="abortive"))
        port = await serve(guard)
        t0 = loop.time()
        _r, w = await connect_from("127.0.0.12", "127.0.0.1", port)  # never reads
        assert await wait_for(lambda: guard.stats()["closes_total"].get("write_timeout") == 1, 120, 0.5)
        # Counted from the last time the transport paused: the kernel may reopen the window a little (buffer
        # autotuning) and resume writing once or twice before it stalls for good.
        assert 30 <= loop.time() - t0 < 60
        w.close()

        g2 = Guard(echo, GuardConfig(timeouts=Timeouts(idle=5, lifetime=20)))
        port2 = await serve(g2)
        t0 = loop.time()
        r, w = await connect_from("127.0.0.12", "127.0.0.1", port2)
        cut = None
        for _ in range(100):  # an active client: idle never fires, lifetime does
            try:
                w.write(b"p")
                if await asyncio.wait_for(r.read(1), 2.0) == b"":
                    cut = loop.time()
                    break
            except ConnectionError:
                cut = loop.time()
                break
            await asyncio.sleep(1)
        assert cut is not None and abs(cut - t0 - 20) < EXACT, cut
        w.close()
        assert await wait_for(lambda: not g2.connections)
        assert g2.stats()["closes_total"] == {"lifetime": 1}

    run_virtual(main())


def test_guard_always_closes_after_handler() -> None:
    async def forgetful(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if line == b"boom\n":
            raise RuntimeError("handler bug")
        writer.write(b"bye\n")  # ...and returns without writer.close(): the CLOSE_WAIT-leak pattern

    async def main() -> None:
        guard = Guard(forgetful)
        port = await serve(guard)
        for msg in (b"hi\n", b"boom\n"):
            r, w = await connect_from("127.0.0.13", "127.0.0.1", port)
            w.write(msg)
            data = await asyncio.wait_for(r.read(), 5)  # read() returns only at EOF: proves the close
            assert data == (b"bye\n" if msg == b"hi\n" else b"")
            w.close()
        assert await wait_for(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"handler_done": 1, "handler_error": 1}
        assert _states(port)["CLOSE_WAIT"] == 0

    run_virtual(main())


def test_guard_heartbeat_detects_asymmetric_timeouts_live() -> None:
    from tcpwise.guard import HeartbeatMismatch, heartbeat

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass

    async def main() -> None:
        guard = Guard(sink, GuardConfig(timeouts=Timeouts(idle=30)))
        port = await serve(guard)
        r, w = await connect_from("127.0.0.14", "127.0.0.1", port)
        assert await heartbeat(w, 10, reader=r, max_beats=8) == 8  # 10 s beats keep a 30 s idle timeout happy
        with pytest.raises(HeartbeatMismatch, match=r"closed this connection during a 50 s heartbeat gap"):
            await heartbeat(w, 50, reader=r, max_beats=3)  # the asymmetric mistake, found without knowing 30
        w.close()
        assert await wait_for(lambda: guard.stats()["closes_total"] == {"idle_timeout": 1})

    run_virtual(main())


def test_guard_graceful_close_lingers_for_peer_fin_then_gives_up() -> None:
    """Graceful mode sends FIN and keeps the connection until the peer's FIN — or the drain deadline."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        guard = Guard(echo, GuardConfig(timeouts=Timeouts(idle=2, drain=5)))
        port = await serve(guard)
        r, w = await connect_from("127.0.0.15", "127.0.0.1", port)
        r2, w2 = await connect_from("127.0.0.15", "127.0.0.1", port)
        for rr, ww in ((r, w), (r2, w2)):
            ww.write(b"a")
            assert await rr.readexactly(1) == b"a"
        assert await probe_closed(r, timeout=10) == "fin"
        t_fin = loop.time()
        await asyncio.sleep(1)
        assert len(guard.connections) == 2  # half-closed: waiting for the peers' FINs
        # FIN_WAIT_1 until the client's kernel ACKs our FIN (a delayed ACK: tens of *real* ms), then FIN_WAIT_2.
        st = _states(port)
        assert st["FIN_WAIT_1"] + st["FIN_WAIT_2"] == 2, st
        w.close()  # the first client's FIN: that connection ends now
        assert await wait_for(lambda: len(guard.connections) == 1)
        # The second client never answers: at the drain deadline the guard gives up and resets it.
        assert await wait_for(lambda: not guard.connections, 10, step=0.1)
        assert 5 <= loop.time() - t_fin < 5.11
        assert guard.stats()["closes_total"] == {"idle_timeout": 2}
        assert time_wait_table_full() or await wait_for(lambda: _states(port)["TIME_WAIT"] == 1)
        w2.close()

    run_virtual(main())


# -- the checks above can fail ---------------------------------------------------------------------------------


def test_guard_timeout_checks_turn_red_on_planted_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each family of deadline checks, run against a deliberately broken guard, must fail."""
    orig_silence = timeouts_mod._silence_deadline

    def late_by_one(t: Timeouts, c: timeouts_mod.ConnClock) -> Any:
        d = orig_silence(t, c)
        return None if d is None else (d[0] + 1.0, d[1])

    with monkeypatch.context() as m:  # an idle timeout one second late
        m.setattr(timeouts_mod, "_silence_deadline", late_by_one)
        with pytest.raises(AssertionError, match="idle timeout fired after 31"):
            _idle_scenario("abortive")
    with monkeypatch.context() as m:  # no request / minimum-rate deadline at all
        m.setattr(timeouts_mod, "_request_deadline", lambda t, c: None)
        with pytest.raises(AssertionError, match="trickling client survived"):
            _trickle_scenario()
    with monkeypatch.context() as m:  # client time that never stops while the handler computes
        m.setattr(GuardedProtocol, "_wait_ended", lambda self: None)
        with pytest.raises((AssertionError, ConnectionError, asyncio.IncompleteReadError)):
            _slow_handler_scenario()


def test_guard_handler_starts_at_first_byte_when_asked() -> None:
    """``handler_start="first_byte"``: a silent connection costs no handler task until it speaks; one that only
    sends FIN still has its handler run (and see EOF); the first-byte timeout closes the silent one."""
    started: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        started.append(line)
        writer.write(b"ok " + line)

    async def main() -> None:
        cfg = GuardConfig(timeouts=Timeouts(first_byte=5), handler_start="first_byte", close_mode="abortive")
        guard = Guard(handler, cfg)
        port = await serve(guard)
        silent = await connect_from("127.0.1.43", "127.0.0.1", port)
        speaks = await connect_from("127.0.2.43", "127.0.0.1", port)
        fin_only = await connect_from("127.0.2.44", "127.0.0.1", port)
        await asyncio.sleep(1)
        assert started == [] and len(guard.connections) == 3
        speaks[1].write(b"GET\n")
        assert await speaks[0].readline() == b"ok GET\n"
        fin_only[1].write_eof()
        assert await asyncio.wait_for(fin_only[0].read(), 5) == b"ok "
        assert sorted(started) == [b"", b"GET\n"]
        assert await probe_closed(silent[0], timeout=10) == "rst"
        assert guard.stats()["closes_total"]["first_byte_timeout"] == 1
        for _, w in (silent, speaks, fin_only):
            w.close()
        assert await wait_for(lambda: not guard.connections)

    run_virtual(main())

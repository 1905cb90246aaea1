"""A few deadlines on the real clock, on the default loop and on uvloop (whose timers the virtual clock cannot
drive): the same behaviour as the virtual-clock tests, with wide margins instead of exact instants."""

from __future__ import annotations

import asyncio

import pytest
from guard_helpers import echo, line_echo, serve, time_wait_table_full, wait_for

from tcpwise.guard import Guard, GuardConfig, Timeouts
from tcpwise.sockets.procnet import count_states
from tcpwise.sockets.testing import LOOPS, connect_from, probe_closed, run


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("mode", ["graceful", "abortive"])
def test_guard_idle_timeout_real_clock_fin_or_rst(loop: str, mode: str) -> None:
    async def main() -> None:
        guard = Guard(echo, GuardConfig(timeouts=Timeouts(idle=0.3), close_mode=mode))  # type: ignore[arg-type]
        port = await serve(guard)
        r, w = await connect_from("127.0.0.20", "127.0.0.1", port)
        w.write(b"a")
        assert await r.readexactly(1) == b"a"
        assert await probe_closed(r, timeout=10) == ("fin" if mode == "graceful" else "rst")
        w.close()
        assert await wait_for(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"idle_timeout": 1}
        st = count_states(local_port=port, local_addr="127.0.0.1")
        if mode == "graceful":
            assert time_wait_table_full() or await wait_for(
                lambda: count_states(local_port=port, local_addr="127.0.0.1")["TIME_WAIT"] == 1
            )
        else:
            assert st["TIME_WAIT"] == 0 and st["FIN_WAIT_2"] == 0, st

    run(main(), loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_guard_min_rate_real_clock(loop: str) -> None:
    """One byte every 0.5 s, idle timeout 3 s: only the minimum rate (after a 0.3 s grace) can cut it."""

    async def main() -> None:
        cfg = GuardConfig(timeouts=Timeouts(idle=3, min_rate=100, min_rate_grace=0.3), close_mode="abortive")
        guard = Guard(line_echo, cfg)
        port = await serve(guard)
        r, w = await connect_from("127.0.1.21", "127.0.0.1", port)
        sent = 0
        for _ in range(20):  # 10 s at most
            try:
                w.write(b"G")
                sent += 1
                if await asyncio.wait_for(r.read(1), 0.5) == b"":
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                break
        assert sent < 20, "the trickling client was never cut"
        w.close()
        assert await wait_for(lambda: not guard.connections)
        assert guard.stats()["closes_total"] == {"min_rate": 1}

    run(main(), loop)

"""An asyncio event loop whose clock only moves when nothing else can happen: timeout tests without sleeping.

Theory of operation
-------------------
``asyncio``'s loop asks its selector to wait for I/O for at most ``timeout`` seconds — the time until the
earliest timer. :class:`VirtualClockLoop` answers ``time()`` from a virtual clock and gives the loop a selector
that first polls for real I/O without blocking; only when no socket is ready (and stays not ready for a short
real ``settle`` time, because the kernel may finish delivering a loopback segment in softirq context a moment
after ``send()`` returned) does it *jump* the virtual clock by ``timeout`` and report no events, so the timer
fires at once. A test that waits 30 s for an idle timeout therefore takes a few milliseconds, and its timers
fire in exactly the order and at exactly the virtual instants the code asked for: deadlines can be asserted
to the millisecond instead of with wall-clock slack.

Real sockets keep working (loopback connections between a client and a server in the same loop are what the
guard and pool tests use); what arrives from the kernel is processed before the clock moves. What does *not*
fit: work done in threads (``run_in_executor``, ``to_thread``) or other processes, whose completion the loop
cannot foresee: the clock may jump past their timeouts. With no timer pending and no I/O for ``max_block`` real
seconds the loop raises instead of hanging.

Default loop only: uvloop keeps its timers in libuv, which reads the real clock. Timing-sensitive behaviour is
therefore tested on this loop and a few real-kernel tests with wide margins cover uvloop.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualClockLoop", "run_virtual"]

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """The platform selector, except that an idle wait jumps the owning loop's virtual clock."""

    def __init__(self, settle: float, max_block: float) -> None:
        super().__init__()
        self.settle = settle
        self.max_block = max_block
        self.clock = 0.0
        self.jumps = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return list(super().select(0))
        ready = list(super().select(self.settle))
        if ready:
            return ready
        if timeout is None:
            # Nothing scheduled: only real I/O can wake us. Wait for it for real, boundedly.
            ready = list(super().select(self.max_block))
            if not ready:
                raise RuntimeError(
                    f"virtual clock loop: no timer pending and no I/O for {self.max_block:g} s (deadlock?)"
                )
            return ready
        self.clock += timeout
        self.jumps += 1
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector event loop on a virtual clock (see the module docstring).

    Args:
        settle: real seconds the poller must stay idle before the clock jumps (default 10 ms).
        max_block: real seconds to wait for I/O when no timer is pending before raising (default 30 s).
        start: the clock's initial value.
    """

    def __init__(self, settle: float = 0.01, max_block: float = 30.0, start: float = 0.0) -> None:
        sel = _JumpingSelector(settle, max_block)
        sel.clock = start
        self._jsel = sel
        super().__init__(selector=sel)

    def time(self) -> float:
        return float(self._jsel.clock)

    @property
    def jumps(self) -> int:
        """How many times the clock jumped (a test can check it really ran on virtual time)."""
        return int(self._jsel.jumps)


def run_virtual(coro: Coroutine[Any, Any, T], settle: float = 0.01) -> T:
    """Run ``coro`` to completion on a fresh :class:`VirtualClockLoop`."""
    with asyncio.Runner(loop_factory=lambda: VirtualClockLoop(settle=settle)) as r:
        return r.run(coro)

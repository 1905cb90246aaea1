"""Test helpers for the endpoint: a two-stack in-memory link with explicit virtual time (never a wall clock).

``Pair`` joins two :class:`TcpStack`s; ``pump(now)`` moves segments both ways until quiet (optionally through a
filter that can drop), ``advance(to)`` fires timers in order up to ``to`` while delivering what they send after
``delay``. Everything that crossed is kept in ``log`` as (t, sender, segment) for assertions.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from tcpwise.endpoint import LINUX, EndpointConfig, TcpStack
from tcpwise.endpoint.events import EndpointEvent
from tcpwise.wire.segment import TcpSegment

A_ADDR = "198.18.0.1"
B_ADDR = "198.18.1.1"

Filter = Callable[[str, TcpSegment], bool]  # (sender name, segment) -> deliver?


class Pair:
    def __init__(
        self, cfg_a: EndpointConfig = LINUX, cfg_b: EndpointConfig = LINUX, delay: float = 0.05
    ) -> None:
        self.a = TcpStack(cfg_a, A_ADDR, b"a" * 32)
        self.b = TcpStack(cfg_b, B_ADDR, b"b" * 32)
        self.delay = delay
        self.now = 0.0
        self.log: list[tuple[float, str, TcpSegment]] = []
        self.events: list[tuple[float, str, EndpointEvent]] = []
        self.filter: Filter | None = None
        self._inflight: list[tuple[float, int, str, str, str, TcpSegment]] = []
        self._n = 0

    def _stack(self, name: str) -> TcpStack:
        return self.a if name == "A" else self.b

    def _collect(self, name: str) -> None:
        st = self._stack(name)
        for _ep, ev in st.take_events():
            self.events.append((self.now, name, ev))
        for src, dst, seg, _ep in st.poll(self.now):
            self.log.append((self.now, name, seg))
            if self.filter is not None and not self.filter(name, seg):
                continue
            self._n += 1
            heapq.heappush(self._inflight, (self.now + self.delay, self._n, name, src, dst, seg))
        for _ep, ev in st.take_events():
            self.events.append((self.now, name, ev))

    def advance(self, to: float) -> None:
        """Run virtual time forward to ``to``: deliver in-flight segments and fire timers in time order."""
        self._collect("A")
        self._collect("B")
        while True:
            cands = []
            if self._inflight:
                cands.append((self._inflight[0][0], 0))
            for i, name in ((1, "A"), (2, "B")):
                t = self._stack(name).get_timer()
                if t is not None:
                    cands.append((t, i))
            cands = [c for c in cands if c[0] <= to + 1e-9]
            if not cands:
                break
            t, which = min(cands)
            self.now = max(self.now, t)
            if which == 0:
                _, _, sender, src, dst, seg = heapq.heappop(self._inflight)
                rcv = "B" if sender == "A" else "A"
                self._stack(rcv).receive(src, dst, seg, self.now)
                self._collect(rcv)
            else:
                name = "A" if which == 1 else "B"
                self._stack(name).handle_timer(self.now)
                self._collect(name)
        self.now = max(self.now, to)

    def flush(self, name: str) -> None:
        """Put on the wire now what the host's user calls produced (the endpoints told their stack)."""
        self._collect(name)

    def sent(self, name: str | None = None, since: float = -1.0) -> list[TcpSegment]:
        return [s for (t, n, s) in self.log if (name is None or n == name) and t >= since]

    def flags(self, name: str | None = None, since: float = -1.0) -> list[str]:
        return [s.flag_str for s in self.sent(name, since)]

    def evs(self, name: str, kind: type) -> list[tuple[float, EndpointEvent]]:
        return [(t, e) for (t, n, e) in self.events if n == name and type(e) is kind]


def established(cfg_a: EndpointConfig = LINUX, cfg_b: EndpointConfig = LINUX, delay: float = 0.05):  # type: ignore[no-untyped-def]
    """A pair with one ESTABLISHED connection: returns (pair, client endpoint, server endpoint)."""
    p = Pair(cfg_a, cfg_b, delay)
    p.b.listen(80)
    c = p.a.connect(B_ADDR, 80, 0.0)
    p.advance(1.0)
    s = p.b.accept(80)
    assert s is not None and c.state.value == "ESTABLISHED" and s.state.value == "ESTABLISHED"
    return p, c, s

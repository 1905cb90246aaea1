"""Links: how a :class:`~tcpwise.stack.host.Host` exchanges IP packets with the world.

A link delivers batches of raw IP packets to the host's callback and sends single packets. Two kinds:

* :class:`TunLink` — a :class:`~tcpwise.stack.tun.TunDevice` watched by the event loop (``add_reader``): the
  real kernel on the other side;
* :class:`MemoryLink` — two hosts joined in one process (:func:`memory_pair`), for tests and for scripted
  targets that must not touch the kernel. Packets are handed over on the next loop iteration, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tcpwise.stack.tun import TunDevice

__all__ = ["Link", "TunLink", "MemoryLink", "memory_pair", "Deliver"]

Deliver = Callable[[list[bytes]], None]


class Link:
    """Base class: ``start`` attaches the host's receive callback, ``send`` transmits, ``close`` detaches."""

    name = "link"

    def start(self, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        raise NotImplementedError

    def send(self, packet: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class TunLink(Link):
    """A TUN device driven by the loop's selector."""

    def __init__(self, dev: TunDevice) -> None:
        self.dev = dev
        self.name = dev.name
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        self._loop = loop
        dev = self.dev

        def readable() -> None:
            # Bounded batches keep one busy link from starving timers and other callbacks.
            batch = dev.read_batch(64)
            if batch:
                deliver(batch)

        loop.add_reader(dev.fileno(), readable)

    def send(self, packet: bytes) -> None:
        self.dev.write(packet)

    def close(self) -> None:
        if self._loop is not None and self.dev.fd >= 0:
            self._loop.remove_reader(self.dev.fd)
        self._loop = None
        self.dev.close()


class MemoryLink(Link):
    """One end of an in-process wire; ``drop`` (a callable on the raw packet) lets a test lose packets."""

    def __init__(self, name: str = "mem") -> None:
        self.name = name
        self.peer: MemoryLink | None = None
        self._deliver: Deliver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.drop: Callable[[bytes], bool] | None = None
        self.sent = 0

    def start(self, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        self._loop = loop
        self._deliver = deliver

    def send(self, packet: bytes) -> None:
        peer = self.peer
        if peer is None or peer._deliver is None or peer._loop is None:
            return
        if self.drop is not None and self.drop(packet):
            return
        self.sent += 1
        peer._loop.call_soon(peer._deliver, [packet])

    def close(self) -> None:
        self._deliver = None


def memory_pair() -> tuple[MemoryLink, MemoryLink]:
    a, b = MemoryLink("mem-a"), MemoryLink("mem-b")
    a.peer, b.peer = b, a
    return a, b

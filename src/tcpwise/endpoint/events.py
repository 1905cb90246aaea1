"""What an endpoint tells its user: frozen dataclasses pulled with ``Endpoint.next_event()`` (h11/aioquic style).

Peer misbehaviour never raises; it becomes one of these (``ConnectionError`` with an errno name) or is silently
dropped / answered with RST or a challenge ACK inside the endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpwise.vocab import TcpState, TimerName, Trigger

__all__ = [
    "EndpointEvent",
    "StateChanged",
    "Connected",
    "DataReceived",
    "EndOfStream",
    "ConnectionError",
    "TimerFired",
    "Closed",
]


class EndpointEvent:
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class StateChanged(EndpointEvent):
    old: TcpState
    new: TcpState
    cause: Trigger  # what drove it: a key of the one transition table


@dataclass(frozen=True, slots=True)
class Connected(EndpointEvent):
    """The handshake completed (connect() returns / the connection is ready to be accept()ed)."""


@dataclass(frozen=True, slots=True)
class DataReceived(EndpointEvent):
    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfStream(EndpointEvent):
    """The peer's FIN was received in order: read() returns b"" from now on."""


@dataclass(frozen=True, slots=True)
class ConnectionError(EndpointEvent):  # noqa: A001 - the socket-level name is the clearest
    """The connection failed. ``errno`` is the name a socket user would see: ECONNRESET, ECONNREFUSED,
    ETIMEDOUT, EPIPE."""

    errno: str
    reason: str


@dataclass(frozen=True, slots=True)
class TimerFired(EndpointEvent):
    name: TimerName


@dataclass(frozen=True, slots=True)
class Closed(EndpointEvent):
    """The TCB is deleted (CLOSED): the stack may forget this connection."""

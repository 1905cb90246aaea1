"""Is an idle pooled connection still usable? Ask the kernel without blocking and without consuming data.

Theory of operation
-------------------
While a connection sits idle in the pool its transport is paused (``pause_reading``), so whatever the server
sends in the meantime stays in the kernel: a FIN, an RST, or stray bytes. At borrow time one non-blocking
``recv(1, MSG_PEEK | MSG_DONTWAIT)`` (recv(2)) tells them apart without taking anything off the queue:

* ``EAGAIN``/``EWOULDBLOCK`` -> nothing pending: the connection is alive as far as this host can know;
* ``b""`` -> the server sent FIN (it closed, e.g. its idle timeout): our socket is in CLOSE_WAIT;
* ``ECONNRESET`` -> the server sent RST (abortive close, or it answered our last segment after closing);
* one byte -> data nobody asked for (a late response to an abandoned request): using the connection would
  pair the next request with the wrong response, so it is discarded too.

This is what "validation on borrow" costs: one system call, no round trip. It cannot see a peer that vanished
silently (no FIN, no RST) — keepalive / TCP_USER_TIMEOUT and retry cover that case.
"""

from __future__ import annotations

import enum
import socket
from typing import Any

__all__ = ["Liveness", "peek_liveness"]

_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


class Liveness(enum.Enum):
    ALIVE = "alive"
    EOF = "eof"  # peer sent FIN
    RESET = "reset"  # peer sent RST (or another socket error is pending)
    DATA = "unexpected_data"
    CLOSED = "closed"  # our side already closed / no socket

    def __str__(self) -> str:
        return self.value


def peek_liveness(sock: Any) -> Liveness:
    """Classify a connected TCP socket (``socket.socket``, asyncio TransportSocket or uvloop pseudo-socket).

    Only its file descriptor is used: a temporary ``socket.socket`` object is wrapped around the same fd and
    detached again, so the caller's socket is neither duplicated nor closed.
    """
    if sock is None:
        return Liveness.CLOSED
    try:
        fd = sock.fileno()
    except (OSError, ValueError):
        return Liveness.CLOSED
    if fd < 0:
        return Liveness.CLOSED
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=fd)
    try:
        data = s.recv(1, _PEEK)
    except BlockingIOError:
        return Liveness.ALIVE
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, TimeoutError):
        return Liveness.RESET
    except OSError:
        return Liveness.RESET
    finally:
        s.detach()
    return Liveness.EOF if data == b"" else Liveness.DATA

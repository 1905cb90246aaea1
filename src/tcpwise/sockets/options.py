"""Socket options the guard sets on accepted sockets and the pool on its client sockets, and what they buy.

* ``SO_KEEPALIVE`` + ``TCP_KEEPIDLE``/``TCP_KEEPINTVL``/``TCP_KEEPCNT`` (tcp(7), socket(7)): after ``idle``
  seconds of silence the kernel sends up to ``cnt`` probes ``intvl`` apart and resets the connection with
  ``ETIMEDOUT`` if none is answered. Linux defaults are 7200/75/9 s — over two hours to notice a dead peer.
* ``TCP_USER_TIMEOUT`` (tcp(7), RFC 5482): the longest time transmitted data may stay unacknowledged before the
  kernel gives up with ``ETIMEDOUT``; it also bounds keepalive probing once probes start. Without it a peer
  that vanished while we had data in flight is only given up after ``tcp_retries2`` (about 15 minutes).
* ``SO_LINGER`` ``{l_onoff=1, l_linger=0}`` (socket(7)): ``close()`` discards unsent data and sends RST
  instead of FIN; the socket skips FIN_WAIT/TIME_WAIT entirely (RFC 9293 §3.10.7.x ABORT call). That is
  nginx's ``reset_timedout_connection``.

All functions take anything with ``setsockopt`` (a ``socket.socket``, asyncio's ``TransportSocket`` or uvloop's
pseudo-socket) and never raise for an option the platform lacks: they return what they could not set.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Keepalive", "apply_keepalive", "set_abortive", "set_nodelay"]

_LINGER_RST = struct.pack("ii", 1, 0)


class _Sock(Protocol):
    def setsockopt(self, level: int, opt: int, value: Any, /) -> None: ...


@dataclass(frozen=True, slots=True)
class Keepalive:
    """Dead-peer detection settings (seconds). ``None`` leaves the kernel default.

    With ``idle=10, interval=5, count=3`` a silent dead peer is found after about 10 + 5*3 = 25 s.
    ``user_timeout`` bounds unacknowledged data (and probing) in seconds; it is passed to the kernel in ms.
    """

    enabled: bool = True
    idle: float | None = 60.0
    interval: float | None = 10.0
    count: int | None = 3
    user_timeout: float | None = 30.0

    def detection_time(self) -> float | None:
        """Worst-case seconds for keepalive alone to notice a dead idle peer, ``None`` if unknown."""
        if not self.enabled or self.idle is None or self.interval is None or self.count is None:
            return None
        t = self.idle + self.interval * self.count
        if self.user_timeout is not None:
            # tcp(7): once probing starts, TCP_USER_TIMEOUT rather than TCP_KEEPCNT decides when to give up.
            t = min(t, self.idle + max(self.user_timeout, self.interval))
        return t


def apply_keepalive(sock: _Sock, ka: Keepalive) -> list[str]:
    """Set keepalive/user-timeout options; return the names of options this platform refused."""
    failed: list[str] = []

    def _set(level: int, name: str, value: int) -> None:
        opt = getattr(socket, name, None)
        if opt is None:
            failed.append(name)
            return
        try:
            sock.setsockopt(level, opt, value)
        except OSError:
            failed.append(name)

    if not ka.enabled:
        _set(socket.SOL_SOCKET, "SO_KEEPALIVE", 0)
    else:
        _set(socket.SOL_SOCKET, "SO_KEEPALIVE", 1)
        # The kernel takes whole seconds (minimum 1) for the keepalive knobs.
        if ka.idle is not None:
            _set(socket.IPPROTO_TCP, "TCP_KEEPIDLE", max(1, round(ka.idle)))
        if ka.interval is not None:
            _set(socket.IPPROTO_TCP, "TCP_KEEPINTVL", max(1, round(ka.interval)))
        if ka.count is not None:
            _set(socket.IPPROTO_TCP, "TCP_KEEPCNT", max(1, ka.count))
    if ka.user_timeout is not None:
        _set(socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", max(1, round(ka.user_timeout * 1000)))
    return failed


def set_abortive(sock: _Sock) -> bool:
    """Make the next ``close()`` send RST (SO_LINGER {1, 0}); ``False`` if the option could not be set."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        return False
    return True


def set_nodelay(sock: _Sock) -> None:
    """Disable Nagle (request/response servers); asyncio already does this for TCP since 3.6, uvloop too."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass

"""Application heartbeats and the asymmetric-timeout mistake.

Theory of operation
-------------------
A server that closes connections idle for ``T`` seconds and a client that sends a heartbeat every ``I`` seconds
only work together when ``I < T`` — with room for one late or lost heartbeat, ``2*I <= T`` is the usual rule.
When ``I > T`` (the classic case: client every 30 s, server idle timeout 10 s) the server closes every idle
connection first; the client does not notice (a FIN only makes its socket CLOSE_WAIT), and its next heartbeat
or request is answered with RST: "Connection reset by peer" / EPIPE, on a connection it believed healthy.

:func:`check_heartbeat` states that arithmetic and raises :class:`HeartbeatMismatch` (a ``ValueError``) with
the explanation; an interval that fits but leaves no room for one lost beat gives a :class:`HeartbeatWarning`.
:func:`heartbeat` is a small client-side sender that runs the check before it starts.
"""

from __future__ import annotations

import asyncio
import warnings

__all__ = ["HeartbeatMismatch", "HeartbeatWarning", "check_heartbeat", "heartbeat"]


class HeartbeatMismatch(ValueError):
    """Client heartbeat interval >= server idle timeout: the server will close connections first."""


class HeartbeatWarning(UserWarning):
    """The interval fits, but one lost or late heartbeat would trip the server's idle timeout."""


def check_heartbeat(client_interval: float, server_idle_timeout: float) -> str:
    """Check a heartbeat interval against the server's idle timeout; return a one-line verdict.

    Raises:
        HeartbeatMismatch: ``client_interval >= server_idle_timeout``; the message says what will happen and
            what interval to use instead.
        ValueError: a non-positive argument.

    Warns:
        HeartbeatWarning: ``2 * client_interval > server_idle_timeout`` (no margin for one lost heartbeat).
    """
    if client_interval <= 0 or server_idle_timeout <= 0:
        raise ValueError("heartbeat interval and server idle timeout must be > 0 seconds")
    safe = server_idle_timeout / 2
    if client_interval >= server_idle_timeout:
        raise HeartbeatMismatch(
            f"client heartbeat interval {client_interval:g} s >= server idle timeout {server_idle_timeout:g} s: "
            f"the server closes each idle connection after {server_idle_timeout:g} s, before the next heartbeat; "
            f"the client's socket sits in CLOSE_WAIT and its next write meets RST (Connection reset by peer). "
            f"Use an interval <= {safe:g} s (half the idle timeout), or raise the server's idle timeout above "
            f"{2 * client_interval:g} s."
        )
    if 2 * client_interval > server_idle_timeout:
        msg = (
            f"client heartbeat interval {client_interval:g} s fits under the server idle timeout "
            f"{server_idle_timeout:g} s only if no heartbeat is lost or late; use <= {safe:g} s for a margin"
        )
        warnings.warn(msg, HeartbeatWarning, stacklevel=2)
        return msg
    return (
        f"ok: heartbeat every {client_interval:g} s keeps connections alive under a {server_idle_timeout:g} s "
        f"idle timeout even with one lost heartbeat"
    )


async def heartbeat(
    writer: asyncio.StreamWriter,
    interval: float,
    payload: bytes = b"\n",
    *,
    reader: asyncio.StreamReader | None = None,
    server_idle_timeout: float | None = None,
    max_beats: int | None = None,
) -> int:
    """Write ``payload`` every ``interval`` seconds until cancelled or ``max_beats`` have been sent.

    The check against ``server_idle_timeout`` (when known) runs first, so a mismatched configuration fails at
    start-up with an explanation instead of as a reset hours later. Returns the number of heartbeats sent.

    When the server's idle timeout is *not* known, pass the connection's ``reader`` (the caller must not be
    reading it concurrently for this to work — e.g. a connection idle in a pool): if the server has closed the
    connection during a heartbeat gap, its FIN is seen before the next beat and :class:`HeartbeatMismatch` is
    raised saying that the server's idle timeout is evidently shorter than ``interval``. A connection the server
    closed while we were silent answers the next beat with RST, which is raised as the usual
    ``ConnectionResetError``/``BrokenPipeError``.
    """
    if server_idle_timeout is not None:
        check_heartbeat(interval, server_idle_timeout)
    sent = 0
    while max_beats is None or sent < max_beats:
        await asyncio.sleep(interval)
        if reader is not None:
            await asyncio.sleep(0)  # let a FIN that arrived during the gap reach the reader
            if reader.at_eof() or writer.is_closing():
                raise HeartbeatMismatch(
                    f"the server closed this connection during a {interval:g} s heartbeat gap (after {sent} "
                    f"heartbeats): its idle timeout is shorter than the heartbeat interval. Send heartbeats at "
                    f"most every half of the server's idle timeout."
                )
        writer.write(payload)
        await writer.drain()
        sent += 1
    return sent

"""Listening sockets with an accept loop that keeps file-descriptor headroom and never storms the log.

Theory of operation
-------------------
``loop.create_server`` accepts in the event loop's own code: the application sees a connection only after a
descriptor, a transport and a task exist for it, and on ``EMFILE`` CPython 3.11's loop logs the error *and keeps
calling accept()* for the rest of its batch (up to ``backlog`` times per wake-up, each logging and scheduling
another retry) — one flood beyond the fd limit writes hundreds of thousands of identical records. This module
accepts itself instead, on any loop that offers ``add_reader`` and ``connect_accepted_socket`` (the default loop
and uvloop):

* each wake-up accepts at most ``batch`` connections, then yields to the rest of the loop (fairness with
  the connections already being served);
* every accepted socket goes to ``on_accept(sock, peer)`` *before* any transport exists: refusing one is a
  ``close()`` on a bare socket;
* **headroom**: Linux hands out the lowest free descriptor number, so an accepted socket numbered ``n`` proves
  that ``n + 1`` descriptors are in use. When that comes within ``headroom / 2`` of the soft limit, or accept()
  fails with ``EMFILE``/``ENFILE``/``ENOBUFS``/``ENOMEM``, accepting *pauses*: the listening sockets leave the
  selector (new connections wait in the kernel's accept queue, bounded by ``backlog``), one record is logged,
  and every ``pause_check`` seconds the process's descriptor count is read; accepting resumes once it is back
  below ``limit - headroom``. The server's connection cap is set below ``limit - headroom`` as well (see
  :class:`~tcpwise.guard.server.Guard`), so in a well-behaved process a pause means something else is eating
  descriptors — and it is logged once per pause, not once per connection;
* other accept errors (``EPERM`` from a firewall hook, ``EPROTO``) are counted and logged through the same
  rate limiter; ``ECONNABORTED`` (the client gave up while queued) is skipped silently.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from tcpwise.sockets.fds import open_fd_count
from tcpwise.sockets.logfmt import LogLimiter

__all__ = ["GuardServer", "open_listening_sockets", "RESOURCE_ERRNOS"]

log = logging.getLogger("tcpwise.guard")

RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

OnAccept = Callable[[socket.socket, Any], None]


def _resolve(host: str | None, port: int, family: int) -> list[tuple[int, int, int, Any]]:
    flags = socket.AI_PASSIVE
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, flags)
    out: list[tuple[int, int, int, Any]] = []
    for af, typ, proto, _canon, sa in infos:
        if (af, typ, proto, sa) not in out:
            out.append((af, typ, proto, sa))
    return out


def open_listening_sockets(
    host: str | Sequence[str] | None,
    port: int,
    *,
    backlog: int,
    family: int = socket.AF_UNSPEC,
    reuse_port: bool = False,
) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for ``host`` (``None``/``""``: all interfaces) and ``port``.

    IPv6 sockets are ``IPV6_V6ONLY`` (as asyncio's ``create_server`` does), so ``None`` gives one IPv4 and one
    IPv6 socket on the same port. ``backlog`` is passed to listen(2); the kernel caps it at
    ``net.core.somaxconn``.
    """
    hosts: list[str | None] = (
        [None] if host in (None, "") else [host] if isinstance(host, str) else list(host)
    )
    socks: list[socket.socket] = []
    try:
        for h in hosts:
            for af, typ, proto, sa in _resolve(h, port, family):
                s = socket.socket(af, typ, proto)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if af == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s.bind(sa)
                except OSError as exc:
                    msg = f"error while attempting to bind on address {sa!r}: {exc.strerror}"
                    raise OSError(exc.errno, msg) from None
                if port == 0 and len(socks) == 1:
                    port = s.getsockname()[1]  # the other families bind the same ephemeral port
        for s in socks:
            s.listen(backlog)
            s.setblocking(False)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


class GuardServer:
    """The guard's listening sockets and accept loop (see the module docstring); what
    :meth:`Guard.start_server <tcpwise.guard.server.Guard.start_server>` returns. Quacks like
    ``asyncio.Server`` where it matters: ``sockets``, ``close()``, ``wait_closed()``, ``is_serving()``,
    ``serve_forever()``, ``async with``.

    Args:
        loop: the running loop.
        socks: listening, non-blocking sockets (this object owns and closes them).
        on_accept: called with each accepted non-blocking socket and its peer address.
        fd_limit / headroom: the descriptor budget (see :mod:`tcpwise.sockets.fds`).
        batch: most connections accepted per wake-up.
        limiter: rate limiter for this module's log records.
        pause_check: seconds between descriptor counts while paused.
        may_accept: asked before each accept(); ``False`` ends this batch early (e.g. the caller's per-iteration
            eviction budget is spent: better to leave a connection queued than to refuse it).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        socks: list[socket.socket],
        on_accept: OnAccept,
        *,
        fd_limit: int,
        headroom: int,
        batch: int,
        limiter: LogLimiter,
        pause_check: float = 0.05,
        may_accept: Callable[[], bool] | None = None,
    ) -> None:
        self.loop = loop
        self.sockets = socks
        self.on_accept = on_accept
        self.fd_limit = fd_limit
        self.headroom = headroom
        self.fd_high = fd_limit - max(1, headroom // 2)
        self.fd_low = fd_limit - headroom
        self.batch = batch
        self.limiter = limiter
        self.pause_check = pause_check
        self.may_accept = may_accept
        self.paused = False
        self.closed = False
        self.pauses: Counter[str] = Counter()
        self.accept_errors: Counter[str] = Counter()
        self._resume_timer: asyncio.TimerHandle | None = None
        self._closed_waiter: asyncio.Future[None] = loop.create_future()

    # -- reading ------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.closed or self.paused:
            return
        for s in self.sockets:
            self.loop.add_reader(s.fileno(), self._on_readable, s)

    def _stop_reading(self) -> None:
        for s in self.sockets:
            if s.fileno() >= 0:
                self.loop.remove_reader(s.fileno())

    def _on_readable(self, lsock: socket.socket) -> None:
        may_accept = self.may_accept
        for _ in range(self.batch):
            if self.paused or self.closed:
                return
            if may_accept is not None and not may_accept():
                return  # the rest wait in the kernel's queue until the next iteration (the socket stays readable)
            try:
                conn, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while queued (ECONNABORTED): nothing to do
            except OSError as exc:
                self._accept_failed(exc)
                return
            conn.setblocking(False)
            if conn.fileno() >= self.fd_high:
                self.pause("headroom", conn.fileno() + 1)
            self.on_accept(conn, peer)

    def _accept_failed(self, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        self.accept_errors[name] += 1
        if exc.errno in RESOURCE_ERRNOS:
            self.pause(name.lower(), None)
            return
        # Not a resource shortage: log (rate-limited) and try again on the next readiness.
        self._log(logging.WARNING, f"accept_error:{name}", "accept() failed: %s", exc, {"error": repr(exc)})

    # -- pausing ------------------------------------------------------------------------------------------

    def pause(self, why: str, in_use: int | None) -> None:
        """Stop accepting until the descriptor count is back below ``fd_limit - headroom``."""
        if self.paused or self.closed:
            return
        self.paused = True
        self.pauses[why] += 1
        self._stop_reading()
        used = in_use if in_use is not None else open_fd_count()
        self._log(
            logging.WARNING,
            "accept_paused",
            "accept paused (%s): %d of %d descriptors in use; resuming below %d",
            (why, used, self.fd_limit, self.fd_low),
            {"reason": why, "fds": used, "fd_limit": self.fd_limit},
        )
        self._resume_timer = self.loop.call_later(self.pause_check, self._maybe_resume)

    def _maybe_resume(self) -> None:
        self._resume_timer = None
        if self.closed:
            return
        used = open_fd_count()
        if used and used > self.fd_low:
            self._resume_timer = self.loop.call_later(self.pause_check, self._maybe_resume)
            return
        self.paused = False
        self._log(
            logging.INFO,
            "accept_resumed",
            "accept resumed: %d of %d descriptors in use",
            (used, self.fd_limit),
            {"fds": used, "fd_limit": self.fd_limit},
        )
        self.start()

    def _log(self, level: int, kind: str, msg: str, args: Any, extra: dict[str, Any]) -> None:
        if not log.isEnabledFor(level):
            return
        dropped = self.limiter.allow(kind, self.loop.time())
        if dropped is None:
            return
        if dropped:
            msg += f" ({dropped} similar records suppressed)"
        log.log(
            level,
            msg,
            *(args if isinstance(args, tuple) else (args,)),
            extra={"event": kind.split(":", 1)[0], "suppressed": dropped, **extra},
        )

    # -- closing ------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        if not self.paused:
            self._stop_reading()
        for s in self.sockets:
            s.close()
        if not self._closed_waiter.done():
            self._closed_waiter.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed_waiter)

    def is_serving(self) -> bool:
        return not self.closed

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    async def serve_forever(self) -> None:
        """Wait until :meth:`close`; cancelling this closes the server (as ``asyncio.Server.serve_forever``)."""
        try:
            await asyncio.shield(self._closed_waiter)
        finally:
            self.close()

    async def __aenter__(self) -> GuardServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

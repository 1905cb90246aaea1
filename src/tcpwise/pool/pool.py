"""An asyncio TCP client connection pool that never hands out a connection the server has closed.

Theory of operation
-------------------
The "connection count keeps growing" story every pool user meets: a server closes idle keep-alive connections (its idle
timeout, a restart, a load balancer); a naive pool does not notice — the FIN only moves the client socket to
CLOSE_WAIT — hands the dead connection out, the request fails with "Connection reset by peer", the caller
drops the connection without closing it, and the pool opens a fresh one. Dead sockets pile up in CLOSE_WAIT.

This pool closes every path:

* **validation on borrow**: idle connections are kept with reading paused so a FIN/RST/stray byte stays in the
  kernel, and one non-blocking ``MSG_PEEK`` (see :mod:`.validate`) classifies them before hand-out;
* **idle eviction and max lifetime**: a connection idle longer than ``max_idle_time`` (set it *below* the
  server's idle timeout, so the pool retires connections before the server does) or older than
  ``max_lifetime`` is closed instead of handed out, and by the background health check;
* **background health checks**: every ``health_check_interval`` idle connections are peeked and evicted,
  ``min_idle`` is topped up, and long borrows are reported;
* **retry with backoff**: :meth:`Pool.run` re-runs an (idempotent!) operation on a fresh connection when the
  server resets or closes mid-request — the race validation cannot close (the FIN may be in flight while we
  send) — with exponential backoff and full jitter;
* **always closing**: every connection leaving the pool is closed, with a counted reason;
* **leak detection**: a connection borrowed longer than ``leak_timeout`` is logged once with the file:line
  where it was borrowed.

Borrowing is LIFO (the most recently used connection first): a small warm set serves the load and the rest
age out through eviction instead of all being kept barely alive.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tcpwise.pool.validate import Liveness, peek_liveness
from tcpwise.sockets.metrics import Metrics
from tcpwise.sockets.options import Keepalive, apply_keepalive

__all__ = ["PoolConfig", "Pool", "PooledConnection", "PoolTimeout", "PoolClosed", "RETRYABLE"]

log = logging.getLogger("tcpwise.pool")
T = TypeVar("T")

#: Errors meaning "the server closed or reset this connection": safe to retry an idempotent request.
RETRYABLE: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    ConnectionRefusedError,
    asyncio.IncompleteReadError,
    EOFError,
)


class PoolTimeout(TimeoutError):
    """No connection became available within ``acquire_timeout``."""


class PoolClosed(RuntimeError):
    """The pool has been closed."""


@dataclass(frozen=True)
class PoolConfig:
    """Pool policy (seconds for times; ``None`` disables).

    Attributes:
        max_size: most connections open at once (idle + borrowed).
        min_idle: idle connections the health check keeps ready.
        max_idle_time: close connections idle longer than this; keep it below ``server_idle_timeout``.
        max_lifetime: close connections older than this (also below the server's idle timeout is safest).
        server_idle_timeout: the server's idle timeout if known; the config is rejected when
            ``max_idle_time`` is not below it (the asymmetric-timeout mistake).
        validate_on_borrow: peek idle connections before handing them out.
        health_check_interval: period of the background check.
        connect_timeout / acquire_timeout: bounds on connecting and on waiting for a free connection.
        retries / backoff_base / backoff_max: :meth:`Pool.run` retry policy.
        leak_timeout: report a borrow held longer than this.
        track_borrow_site: record where each borrow happened (costs a short stack walk per borrow).
        keepalive: TCP keepalive / TCP_USER_TIMEOUT for pooled sockets, so a server that vanished silently
            (no FIN, no RST: crash, cable, black-holing middlebox) is noticed while the connection idles.
    """

    max_size: int = 10
    min_idle: int = 0
    max_idle_time: float | None = 30.0
    max_lifetime: float | None = 600.0
    server_idle_timeout: float | None = None
    validate_on_borrow: bool = True
    health_check_interval: float | None = 5.0
    connect_timeout: float = 5.0
    acquire_timeout: float = 30.0
    retries: int = 3
    backoff_base: float = 0.005
    backoff_max: float = 1.0
    leak_timeout: float | None = 60.0
    track_borrow_site: bool = True
    keepalive: Keepalive | None = None

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {self.max_size}")
        if not 0 <= self.min_idle <= self.max_size:
            raise ValueError(f"min_idle must be in 0..max_size ({self.max_size}), got {self.min_idle}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.server_idle_timeout is not None:
            if self.max_idle_time is None or self.max_idle_time >= self.server_idle_timeout:
                raise ValueError(
                    f"max_idle_time ({self.max_idle_time}) must be below the server idle timeout "
                    f"({self.server_idle_timeout} s): otherwise the server closes idle pooled connections first "
                    f"and the pool hands out connections in CLOSE_WAIT"
                )


class _PoolProtocol(asyncio.StreamReaderProtocol):
    """Stream protocol that remembers whether the peer sent FIN or the connection died."""

    def __init__(self, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(reader, loop=loop)
        self.reader_ref = reader  # StreamReaderProtocol keeps only a weak reference
        self.eof = False
        self.lost = False

    def eof_received(self) -> bool:
        self.eof = True
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        super().connection_lost(exc)


_ids = itertools.count(1)


@dataclass(eq=False)
class PooledConnection:
    """A connection out of the pool: use :attr:`reader` / :attr:`writer` like ``asyncio.open_connection``'s."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    created: float
    protocol: _PoolProtocol
    id: int = field(default_factory=lambda: next(_ids))
    last_used: float = 0.0
    borrowed_at: float | None = None
    borrow_site: str = ""
    uses: int = 0
    leak_reported: bool = False
    broken: bool = False

    def discard(self) -> None:
        """Mark the connection unusable: the pool closes it on release instead of keeping it."""
        self.broken = True

    def _unusable(self) -> str | None:
        """Reason this connection must not be reused, judged from what asyncio already saw."""
        p = self.protocol
        if self.broken:
            return "discarded"
        if p.lost or self.writer.is_closing():
            return "closed"
        if p.eof:
            return "eof"
        # Bytes the borrower left unread would be read as the next borrower's response.
        if len(getattr(self.reader, "_buffer", b"")):
            return "unread_data"
        return None


class Pool:
    """Connection pool to one ``host:port``.

    Args:
        host, port: where to connect.
        config: :class:`PoolConfig`.
        local_addr: optional source address to bind (e.g. ``("127.0.0.2", 0)``).

    Use as ``async with Pool(...) as pool:`` (starts the health check, closes everything at the end), then
    ``async with pool.connection() as conn:`` or ``await pool.run(fn)`` with retry.
    """

    def __init__(
        self,
        host: str,
        port: int,
        config: PoolConfig | None = None,
        *,
        local_addr: tuple[str, int] | None = None,
        name: str = "",
    ) -> None:
        self.host, self.port = host, port
        self.config = config or PoolConfig()
        self.local_addr = local_addr
        self.name = name or f"{host}:{port}"
        self._idle: list[PooledConnection] = []
        self._borrowed: dict[int, PooledConnection] = {}
        self._connecting = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self.metrics = Metrics("tcpwise_pool")
        m = self.metrics
        self.opened = m.counter("opened_total", "Connections opened.")
        self.closed = m.counter("closed_total", "Connections closed by the pool, by reason.", "reason")
        self.borrows = m.counter("borrows_total", "Connections handed out.")
        self.rejected = m.counter(
            "validation_failures_total", "Idle connections found dead at borrow.", "why"
        )
        self.retries = m.counter("retries_total", "Operations retried after a reset/close.")
        self.leaks = m.counter("leaks_total", "Borrows held longer than leak_timeout.")
        m.gauge("idle", "Idle connections.", lambda: float(len(self._idle)))
        m.gauge("borrowed", "Borrowed connections.", lambda: float(len(self._borrowed)))

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Pool:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the background health check (also started lazily by the first borrow)."""
        if self._task is None and self.config.health_check_interval is not None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._maintain())

    async def close(self) -> None:
        """Close idle connections now and borrowed ones when released; stop the health check."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._idle:
            self._close(self._idle.pop(), "pool_closed")
        for w in self._waiters:
            if not w.done():
                w.set_exception(PoolClosed("pool closed"))
        await asyncio.sleep(0)

    @property
    def size(self) -> int:
        """Connections open or being opened (idle + borrowed + connecting)."""
        return len(self._idle) + len(self._borrowed) + self._connecting

    def stats(self) -> dict[str, Any]:
        return self.metrics.snapshot()

    # -- borrowing ----------------------------------------------------------------------------------------

    async def acquire(self) -> PooledConnection:
        """Borrow a validated connection (waits up to ``acquire_timeout`` when ``max_size`` are out)."""
        if self._closed:
            raise PoolClosed("pool closed")
        self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.acquire_timeout
        while True:
            now = loop.time()
            while self._idle:
                conn = self._idle.pop()
                why = self._check_idle(conn, now)
                if why is None:
                    return self._hand_out(conn, now)
                self.rejected[why] += 1
                self._close(conn, why)
            if self.size < self.config.max_size:
                self._connecting += 1
                try:
                    conn = await self._connect()
                finally:
                    self._connecting -= 1
                return self._hand_out(conn, loop.time())
            left = deadline - now
            if left <= 0:
                raise PoolTimeout(
                    f"no connection to {self.name} within {self.config.acquire_timeout} s "
                    f"({len(self._borrowed)} borrowed of max_size {self.config.max_size})"
                )
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, left)
            except TimeoutError:
                pass
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)

    def release(self, conn: PooledConnection, *, discard: bool = False) -> None:
        """Give a borrowed connection back; it is closed instead of kept if it is unusable or ``discard``."""
        if self._borrowed.pop(conn.id, None) is None:
            raise RuntimeError(f"connection {conn.id} is not borrowed from pool {self.name}")
        loop = asyncio.get_running_loop()
        now = loop.time()
        conn.borrowed_at = None
        why = "discarded" if discard else conn._unusable()
        cfg = self.config
        if why is None and self._closed:
            why = "pool_closed"
        if why is None and cfg.max_lifetime is not None and now - conn.created >= cfg.max_lifetime:
            why = "lifetime"
        if why is not None:
            self._close(conn, why)
        else:
            conn.last_used = now
            # Park the connection: with reading paused, a FIN/RST/stray byte waits in the kernel for the
            # borrow-time MSG_PEEK instead of being swallowed into the StreamReader.
            tr: Any = conn.writer.transport
            tr.pause_reading()
            self._idle.append(conn)
        self._wake()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PooledConnection]:
        """``async with pool.connection() as conn``: released on exit, discarded if the block raised."""
        conn = await self.acquire()
        try:
            yield conn
        except BaseException:
            self.release(conn, discard=True)
            raise
        else:
            self.release(conn)

    async def run(self, op: Callable[[PooledConnection], Awaitable[T]], *, retries: int | None = None) -> T:
        """Run ``op(conn)`` on a borrowed connection, retrying on a fresh one after a reset or close.

        Only for idempotent operations: a request may have reached the server before the reset.
        Errors in :data:`RETRYABLE` are retried up to ``retries`` times with exponential backoff and full
        jitter; anything else, or the last failure, propagates. The connection is discarded on any error.
        """
        limit = self.config.retries if retries is None else retries
        attempt = 0
        while True:
            conn: PooledConnection | None = None
            try:
                conn = await self.acquire()  # a refused connect (server restarting) is retried as well
                result = await op(conn)
            except RETRYABLE as exc:
                if conn is not None:
                    self.release(conn, discard=True)
                if attempt >= limit:
                    raise
                attempt += 1
                self.retries[""] += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "retry %d after %s",
                        attempt,
                        type(exc).__name__,
                        extra={"event": "retry", "pool": self.name, "error": repr(exc)},
                    )
                await asyncio.sleep(self._backoff(attempt))
                continue
            except BaseException:
                if conn is not None:
                    self.release(conn, discard=True)
                raise
            self.release(conn)
            return result

    # -- internals ----------------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): spreads a burst of clients
        # that all lost their connections at once, instead of having them reconnect in lockstep.
        cap = min(self.config.backoff_max, self.config.backoff_base * (2 ** (attempt - 1)))
        return self._rng.uniform(0, cap)

    def _check_idle(self, conn: PooledConnection, now: float) -> str | None:
        cfg = self.config
        why = conn._unusable()
        if why is not None:
            return why
        if cfg.max_lifetime is not None and now - conn.created >= cfg.max_lifetime:
            return "lifetime"
        if cfg.max_idle_time is not None and now - conn.last_used >= cfg.max_idle_time:
            return "idle"
        if cfg.validate_on_borrow:
            live = peek_liveness(conn.writer.get_extra_info("socket"))
            if live is not Liveness.ALIVE:
                return str(live)
        return None

    def _hand_out(self, conn: PooledConnection, now: float) -> PooledConnection:
        conn.borrowed_at = now
        conn.uses += 1
        conn.leak_reported = False
        if self.config.track_borrow_site:
            conn.borrow_site = _borrow_site()
        tr: Any = conn.writer.transport
        if not tr.is_reading():
            tr.resume_reading()
        self._borrowed[conn.id] = conn
        self.borrows[""] += 1
        return conn

    async def _connect(self) -> PooledConnection:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        proto = _PoolProtocol(reader, loop)
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: proto, self.host, self.port, local_addr=self.local_addr),
            self.config.connect_timeout,
        )
        writer = asyncio.StreamWriter(transport, proto, reader, loop)
        if self.config.keepalive is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                apply_keepalive(sock, self.config.keepalive)
        self.opened[""] += 1
        now = loop.time()
        return PooledConnection(reader=reader, writer=writer, created=now, protocol=proto, last_used=now)

    def _close(self, conn: PooledConnection, reason: str) -> None:
        self.closed[reason] += 1
        tr = conn.writer.transport
        if not tr.is_closing():
            tr.close()

    def _wake(self) -> None:
        for w in self._waiters:
            if not w.done():
                w.set_result(None)
                return

    async def _maintain(self) -> None:
        interval = self.config.health_check_interval
        assert interval is not None
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                await self.health_check()
            except Exception:  # a failed top-up connect must not kill the checker
                log.warning(
                    "pool %s health check failed", self.name, exc_info=True, extra={"pool": self.name}
                )

    async def health_check(self) -> None:
        """One round: evict dead/expired idle connections, report leaks, top up ``min_idle``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        keep: list[PooledConnection] = []
        for conn in self._idle:
            why = self._check_idle(conn, now)
            if why is None:
                keep.append(conn)
            else:
                self.rejected[why] += 1
                self._close(conn, why)
        self._idle[:] = keep
        lt = self.config.leak_timeout
        if lt is not None:
            for conn in self._borrowed.values():
                if conn.borrowed_at is not None and not conn.leak_reported and now - conn.borrowed_at > lt:
                    conn.leak_reported = True
                    self.leaks[""] += 1
                    log.warning(
                        "connection %d to %s borrowed %.1f s ago and not returned; borrowed at %s",
                        conn.id,
                        self.name,
                        now - conn.borrowed_at,
                        conn.borrow_site or "(site not tracked)",
                        extra={
                            "event": "leak",
                            "pool": self.name,
                            "held_for": round(now - conn.borrowed_at, 3),
                            "borrowed_at": conn.borrow_site,
                        },
                    )
        while (
            not self._closed and len(self._idle) < self.config.min_idle and self.size < self.config.max_size
        ):
            self._connecting += 1
            try:
                conn = await self._connect()
            finally:
                self._connecting -= 1
            tr: Any = conn.writer.transport
            tr.pause_reading()
            self._idle.insert(0, conn)
            self._wake()


def _borrow_site() -> str:
    """``file:line in func`` of the first caller frame outside this module and contextlib/asyncio."""
    for fr in reversed(traceback.extract_stack(limit=12)[:-1]):
        fn = fr.filename
        if fn == __file__ or "contextlib" in fn or "/asyncio/" in fn:
            continue
        return f"{fn}:{fr.lineno} in {fr.name}"
    return ""

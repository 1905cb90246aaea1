"""The guard: admission limits, eviction, timeouts, keepalive and close policy around an asyncio stream handler.

Theory of operation
-------------------
``Guard(handler, config)`` turns an ``asyncio.start_server``-style handler ``async def h(reader, writer)``
into a server. :meth:`Guard.start_server` accepts with its own loop (:mod:`.listener`: descriptor headroom, no
EMFILE storms) and decides about each connection while it is still a bare socket; :meth:`Guard.protocol_factory`
is for callers who want ``loop.create_server`` themselves (same policy, decided in ``connection_made``, without
the headroom). Both work on the default loop and on uvloop. Each admitted connection gets one
:class:`GuardedProtocol`, a :class:`asyncio.StreamReaderProtocol` that

1. holds a slot from :class:`~.limits.Admission` (global cap, per-source cap, per-source accept rate). At the
   cap the guard *evicts* rather than refuses when it can (:mod:`.evict`: a connection that has not completed
   a request, or trickles below the minimum rate, from the source holding the most). A refused connection is
   closed at once — with RST by default (SO_LINGER {1,0}, so the refusing server keeps no TIME_WAIT for it) or
   FIN — and never reaches the handler, so it cannot leak;
2. sets SO_KEEPALIVE/TCP_KEEPIDLE/INTVL/CNT and TCP_USER_TIMEOUT (see :mod:`tcpwise.sockets.options`);
3. keeps one lazy loop timer for the earliest of its first-byte / idle / request / minimum-rate /
   stalled-write / lifetime deadlines (see :mod:`.timeouts`); a read only stores ``loop.time()``. The handler's
   reader and writer are thin subclasses that tell the protocol when the handler waits for bytes and when it
   answers, which is what the request and minimum-rate deadlines are measured on;
4. runs the handler in a task and *always* closes the transport when the handler returns or raises — a
   handler that forgets ``writer.close()`` is how servers pile up CLOSE_WAIT sockets until EMFILE;
5. records exactly one :class:`~.reasons.CloseReason` per connection and, in ``connection_lost`` (the one
   place every connection passes through exactly once), releases its admission slot (unless an eviction already
   did), counts the reason and logs a structured record through a rate limiter.

Close modes for guard-initiated closes (timeouts, shutdown):
  * ``graceful``: ``shutdown(SHUT_WR)`` after the buffered data (our FIN), wait up to ``timeouts.drain`` for
    the peer's FIN, then ``close()``. The server is the active closer, so it holds TIME_WAIT for 60 s.
  * ``abortive``: SO_LINGER {1,0} + ``close()`` = RST (RFC 9293 §3.10.7.1 ABORT); unsent data is discarded and
    no TIME_WAIT is kept — nginx's ``reset_timedout_connection``.
Evictions are always abortive: the point is to free the descriptor now.

Graceful drain: :meth:`Guard.drain` stops listening, refuses new connections, waits for handlers to finish
until a deadline and then closes what is left with reason ``shutdown``; :meth:`Guard.install_signal_handlers`
wires it to SIGTERM.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tcpwise.guard.evict import EvictionIndex
from tcpwise.guard.limits import Admission, Limits
from tcpwise.guard.listener import GuardServer, open_listening_sockets
from tcpwise.guard.reasons import CloseReason
from tcpwise.guard.timeouts import ConnClock, Timeouts, below_min_rate, next_deadline
from tcpwise.sockets.fds import default_headroom, nofile_limit, open_fd_count
from tcpwise.sockets.logfmt import LogLimiter
from tcpwise.sockets.metrics import Metrics
from tcpwise.sockets.options import Keepalive, apply_keepalive, set_abortive

__all__ = ["GuardConfig", "Guard", "GuardedProtocol", "GuardServer", "Handler", "start_guarded_server"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

log = logging.getLogger("tcpwise.guard")

# Timers may fire up to the loop's clock resolution early (asyncio runs handles whose time is within
# ``_clock_resolution`` of now); treat a deadline this close as reached instead of re-arming a 0 s timer.
_EPS = 1e-3
# Connections set up per loop iteration from the fair per-source queue (see Guard._run_setup).
_SETUP_BATCH = 16
# A source holding only the connection being set up goes before the round-robin of the others.
_LIGHT_SOURCE = 1
# Connections closed for a passed deadline per loop iteration (see Guard._expire).
_CLOSE_BATCH = 32


@dataclass(frozen=True)
class GuardConfig:
    """Everything the guard enforces.

    Attributes:
        limits: global / per-IP counts, per-IP accept rate, descriptor headroom and eviction.
        timeouts: first-byte, idle, request, minimum-rate, stalled-write, lifetime and graceful-drain deadlines.
        keepalive: TCP keepalive + TCP_USER_TIMEOUT for accepted sockets; ``None`` leaves kernel defaults.
        close_mode: how guard timeouts and shutdown close: ``graceful`` (FIN, drain) or ``abortive`` (RST).
        refuse_mode: how over-limit connections are refused: ``rst`` (default, no TIME_WAIT) or ``fin``.
        stream_limit: StreamReader buffer limit (bytes) handed to the handler (bounds memory per connection:
            reading pauses while the handler has not consumed twice this much).
        accept_batch: most connections accepted per loop wake-up (default 64).
        log_rate / log_burst: guard log records let through per second (and at once) per kind of record;
            the rest are counted and reported as ``suppressed`` in the next record of that kind.
        handler_start: ``connect`` (default) starts the handler when the connection is made; ``first_byte``
            only when the client's first byte (or its FIN) arrives, as nginx does for HTTP: a silent connection
            then costs no handler task at all. Only for protocols where the client speaks first.
    """

    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    keepalive: Keepalive | None = field(default_factory=Keepalive)
    close_mode: Literal["graceful", "abortive"] = "graceful"
    refuse_mode: Literal["rst", "fin"] = "rst"
    stream_limit: int = 2**16
    accept_batch: int | None = None
    log_rate: float = 1.0
    log_burst: int = 20
    handler_start: Literal["connect", "first_byte"] = "connect"

    def __post_init__(self) -> None:
        if self.close_mode not in ("graceful", "abortive"):
            raise ValueError(f"close_mode must be 'graceful' or 'abortive', got {self.close_mode!r}")
        if self.handler_start not in ("connect", "first_byte"):
            raise ValueError(f"handler_start must be 'connect' or 'first_byte', got {self.handler_start!r}")
        if self.refuse_mode not in ("rst", "fin"):
            raise ValueError(f"refuse_mode must be 'rst' or 'fin', got {self.refuse_mode!r}")
        if self.accept_batch is not None and self.accept_batch < 1:
            raise ValueError(f"accept_batch must be >= 1, got {self.accept_batch}")
        if self.stream_limit < 1:
            raise ValueError(f"stream_limit must be >= 1 byte, got {self.stream_limit}")
        if not 0 < self.log_rate < float("inf") or self.log_burst < 1:
            raise ValueError(
                f"log_rate must be > 0 and log_burst >= 1, got {self.log_rate}, {self.log_burst}"
            )


def _classify(exc: BaseException | None, eof: bool) -> CloseReason:
    """Close reason for a connection lost without the guard or the handler closing it."""
    if exc is None:
        return CloseReason.PEER_CLOSED if eof else CloseReason.HANDLER_DONE
    code = getattr(exc, "errno", None)
    if isinstance(exc, TimeoutError) or code == errno.ETIMEDOUT:
        return CloseReason.DEAD_PEER  # tcp(7): user timeout / keepalive / retransmissions exhausted
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return CloseReason.PEER_RESET
    return CloseReason.ERROR


def _host_of(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


class _GuardedReader(asyncio.StreamReader):
    """A StreamReader that tells its protocol when the handler starts and stops waiting for bytes."""

    gp: GuardedProtocol | None = None

    async def read(self, n: int = -1) -> bytes:
        gp = self.gp
        if gp is None:
            return await super().read(n)
        gp._wait_started()
        try:
            return await super().read(n)
        finally:
            gp._wait_ended()

    async def readuntil(self, separator: Any = b"\n") -> bytes:  # readline() and iteration come here too
        gp = self.gp
        if gp is None:
            return await super().readuntil(separator)
        gp._wait_started()
        try:
            return await super().readuntil(separator)
        finally:
            gp._wait_ended()

    async def readexactly(self, n: int) -> bytes:
        gp = self.gp
        if gp is None:
            return await super().readexactly(n)
        gp._wait_started()
        try:
            return await super().readexactly(n)
        finally:
            gp._wait_ended()


class _GuardedWriter(asyncio.StreamWriter):
    """A StreamWriter whose writes tell the protocol that the request in progress has been answered."""

    def __init__(
        self,
        transport: Any,
        protocol: GuardedProtocol,
        reader: asyncio.StreamReader,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._gp = protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        if self._gp.clock.request_start is not None:
            self._gp._answered()

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        super().writelines(data)
        if self._gp.clock.request_start is not None:
            self._gp._answered()


class GuardedProtocol(asyncio.StreamReaderProtocol):
    """One accepted connection under guard.

    Created by the guard's accept loop with the admission slot already taken (``key``), or by
    :meth:`Guard.protocol_factory` (``key=None``: admission is decided in ``connection_made``).
    """

    def __init__(self, guard: Guard, loop: asyncio.AbstractEventLoop, key: str | None = None) -> None:
        t = guard.config.timeouts
        # Only the request and minimum-rate deadlines need to know when the handler waits: without them the
        # plain StreamReader serves (no extra frame per read).
        self._rate_deadlines = t.request is not None or t.min_rate is not None
        reader: asyncio.StreamReader
        if self._rate_deadlines:
            reader = _GuardedReader(limit=guard.config.stream_limit, loop=loop)
        else:
            reader = asyncio.StreamReader(limit=guard.config.stream_limit, loop=loop)
        super().__init__(reader, loop=loop)
        self._lp = loop
        self._guard = guard
        self._t = t
        # A connection that has answered a request can be evicted later only for a slow request (min_rate).
        self._slow_evictable = guard.config.limits.evict and t.min_rate is not None
        self._reader_strong: asyncio.StreamReader | None = reader
        self._key: str | None = key
        self._refused: CloseReason | None = None
        self.made = False
        self.reason: CloseReason | None = None
        self.peer: Any = None
        self.clock = ConnClock(accepted=0.0)
        self.bytes_in = 0
        self._eof = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._drain_timer: asyncio.TimerHandle | None = None
        self._handler_task: asyncio.Task[None] | None = None
        self._tr: asyncio.Transport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._guard_closing = False
        self._handler_started = False
        self.queued: socket.socket | None = None  # the accepted socket while it waits for its setup turn

    # -- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        g = self._guard
        loop = self._lp
        now = loop.time()
        self.made = True
        if (
            self.reason is CloseReason.EVICTED
        ):  # evicted while its set-up was in flight: slot already given back
            self._refused = self.reason
            sock = transport.get_extra_info("socket")
            if sock is not None:
                set_abortive(sock)
            transport.abort()  # type: ignore[attr-defined]  # a stream transport: it has abort()
            g.closes[CloseReason.EVICTED.value] += 1
            return
        # uvloop's transports implement the Transport interface without subclassing asyncio.Transport.
        self._tr = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        if self._key is None:
            key, reason = g._admit(_host_of(self.peer), now)
            if reason is not None:
                self._refused = reason
                g._refuse_transport(transport, reason, self.peer, key)
                return
            self._key = key
            g._index.add(key, self, now)  # no request completed yet: a candidate until it answers one
        self.clock.accepted = now
        sock = transport.get_extra_info("socket")
        if g.config.keepalive is not None and sock is not None:
            apply_keepalive(sock, g.config.keepalive)
        g._opened(self, now)
        self._arm()
        super().connection_made(transport)
        reader = self._reader_strong
        assert reader is not None
        if isinstance(reader, _GuardedReader):
            reader.gp = self
        writer = _GuardedWriter(self._tr, self, reader, loop)
        # Hold the writer for the connection's whole life: since CPython 3.11.5 a collected StreamWriter closes its
        # transport, which would cut short a graceful close still waiting for the peer's FIN.
        self._writer = writer
        if g.config.handler_start == "connect":
            self._start_handler()

    def _start_handler(self) -> None:
        reader, writer = self._reader_strong, self._writer
        if self._handler_started or reader is None or writer is None:
            return
        self._handler_started = True
        task: asyncio.Task[None] = self._lp.create_task(self._guard.handler(reader, writer))  # type: ignore[arg-type]
        task.add_done_callback(self._handler_done)
        self._handler_task = task

    def data_received(self, data: bytes) -> None:
        if self.reason is not None:
            return  # closing: whatever the peer still sends is of no use (and must not fill the buffer)
        clock = self.clock
        first = clock.last_read is None
        now = clock.last_read = self._lp.time()
        self.bytes_in += len(data)
        if clock.request_start is None:
            clock.request_start = now  # ConnClock.start_request, inlined: this runs once per request
            clock.request_bytes = 0
            clock.request_waited = 0.0
            if clock.answered and self._slow_evictable and self._key is not None:
                self._guard._index.add(self._key, self, now)  # a request in progress may be evicted if slow
            if self._rate_deadlines:
                self._arm()
        clock.request_bytes += len(data)
        if first:
            t = self._t
            # The deadline only moves later on a read, except when idle < first_byte: re-arm for that case.
            if t.idle is not None and (t.first_byte is None or t.idle < t.first_byte):
                self._arm(force=True)
        reader = self._reader_strong
        if reader is not None:
            reader.feed_data(data)
        if not self._handler_started:
            self._start_handler()  # handler_start="first_byte": the first byte is here

    def eof_received(self) -> bool:
        self._eof = True
        if not self._handler_started and self.reason is None:
            self._start_handler()  # let the handler see the EOF (and be closed after it, as always)
        if self.reason is not None and self._tr is not None:
            # Graceful close: our FIN is out and the peer's has arrived; nothing left to wait for.
            self._tr.close()
            return True
        return bool(super().eof_received())

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._refused is None and self.reason is None:
            self.clock.write_paused_since = self._lp.time()
            self._arm()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.clock.write_paused_since = None

    def connection_lost(self, exc: Exception | None) -> None:
        g = self._guard
        if self._refused is not None:
            super().connection_lost(exc)
            return
        if self.reason is None:
            self.reason = _classify(exc, self._eof)
        for h in (self._timer, self._drain_timer):
            if h is not None:
                h.cancel()
        self._timer = self._drain_timer = None
        self._release()
        g._closed(self, exc)
        super().connection_lost(exc)
        if isinstance(self._reader_strong, _GuardedReader):
            self._reader_strong.gp = None
        self._reader_strong = None
        self._writer = None
        self._tr = None

    # -- requests (called by the reader and writer) --------------------------------------------------------

    def _wait_started(self) -> None:
        c = self.clock
        c.waiting = True
        if c.request_start is None:
            c.wait_since = float("-inf")  # a request that starts during this wait counts from its first byte
            return
        c.wait_since = self._lp.time()
        if self._rate_deadlines and self.reason is None:
            self._arm()

    def _wait_ended(self) -> None:
        c = self.clock
        if c.waiting and c.request_start is not None:
            c.end_wait(self._lp.time())
        c.waiting = False

    def _answered(self) -> None:
        clock = self.clock
        first = clock.answered == 0
        clock.answer()
        if self._key is not None and (first or self._slow_evictable):
            self._guard._index.discard(self._key, self)

    def evictable(self, now: float) -> bool:
        """May this connection be evicted for a newcomer: closing already, never answered a request, or its
        request in progress arrives below the minimum rate."""
        c = self.clock
        return self.reason is not None or c.answered == 0 or below_min_rate(self._t, c, now)

    # -- handler ------------------------------------------------------------------------------------------

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        # A done-callback rather than a wrapper coroutine: a wrapper would add a frame to every resumption of
        # the handler (every read), this runs once per connection.
        self._handler_task = None
        if task.cancelled():
            # Cancelled by the guard after it decided to close (timeout/shutdown): the reason is already set.
            if self.reason is None:
                self.reason = CloseReason.SHUTDOWN
        else:
            exc = task.exception()
            if exc is not None and self.reason is None and self._tr is not None and not self._tr.is_closing():
                self.reason = CloseReason.HANDLER_ERROR
                self._guard._handler_error(self.peer, exc)
        tr = self._tr
        if self._guard_closing:
            return  # close() owns the transport now (a graceful close may be waiting for the peer's FIN)
        if self.reason is None:
            self.reason = CloseReason.PEER_CLOSED if self._eof else CloseReason.HANDLER_DONE
        if tr is not None and not tr.is_closing():
            tr.close()  # the handler is finished with the connection: close it whatever it did or forgot

    # -- timers -------------------------------------------------------------------------------------------

    def _arm(self, force: bool = False) -> None:
        nd = next_deadline(self._t, self.clock)
        if nd is None:
            return
        when = nd[0]
        if self._timer is not None:
            if not force and self._timer_when <= when:
                return  # the armed timer fires first and will re-check
            self._timer.cancel()
        self._timer_when = when
        self._timer = self._lp.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.reason is not None or self._tr is None:
            return
        nd = next_deadline(self._t, self.clock)
        if nd is None:
            return
        when, reason = nd
        if when - self._lp.time() <= _EPS:
            self._guard._expire(self, reason)
        else:
            self._timer_when = when
            self._timer = self._lp.call_at(when, self._on_timer)

    # -- closing ------------------------------------------------------------------------------------------

    def _release(self) -> None:
        """Give back the admission slot and leave the eviction index (once)."""
        key = self._key
        if key is not None:
            self._key = None
            self._guard.admission.release(key)
            self._guard._index.discard(key, self)

    def close(self, reason: CloseReason, mode: Literal["graceful", "abortive"] | None = None) -> None:
        """Close this connection for ``reason`` with the configured (or given) close mode. Idempotent."""
        tr = self._tr
        if self.reason is not None or tr is None or tr.is_closing():
            return
        self.reason = reason
        self._guard_closing = True
        mode = mode or self._guard.config.close_mode
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if mode == "abortive":
            self.abort()
        elif tr.can_write_eof():
            tr.write_eof()  # our FIN goes out after any buffered data (shutdown(2) SHUT_WR)
            if self._eof:
                tr.close()
            else:
                self._drain_timer = self._lp.call_later(self._t.drain, self._drain_expired)
        else:
            tr.close()
        task = self._handler_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def abort(self) -> None:
        """Reset the connection now (SO_LINGER {1,0} + close: RST, no TIME_WAIT)."""
        tr = self._tr
        if tr is None:
            return
        sock = tr.get_extra_info("socket")
        if sock is not None:
            set_abortive(sock)
        tr.abort()

    def evict(self) -> None:
        """Free this connection's slot now and reset it (reason ``evicted`` unless already closing)."""
        self._release()
        raw = self.queued
        if raw is not None:  # still waiting for its setup: no transport yet, the socket is ours to reset
            self.queued = None
            self.reason = CloseReason.EVICTED
            set_abortive(raw)
            raw.close()
            self._guard.closes[CloseReason.EVICTED.value] += 1
            return
        if not self.made:  # its transport is being created: connection_made resets it (and counts it)
            self.reason = CloseReason.EVICTED
            return
        if self.reason is None:
            self.close(CloseReason.EVICTED, "abortive")
        else:
            self.abort()  # a graceful close still waiting for the peer's FIN: cut it short

    def _drain_expired(self) -> None:
        self._drain_timer = None
        if self._tr is not None:
            self._tr.abort()  # FIN already sent; the peer never answered with its own


class Guard:
    """Wraps a stream handler with limits, eviction, timeouts, keepalive and a close policy.

    Args:
        handler: ``async def handler(reader, writer)`` as for :func:`asyncio.start_server`.
        config: what to enforce; defaults enforce nothing but keepalive, always-close and descriptor headroom.

    Use :meth:`start_server` (or pass :meth:`protocol_factory` to ``loop.create_server`` yourself).
    """

    def __init__(self, handler: Handler, config: GuardConfig | None = None) -> None:
        self.handler = handler
        self.config = config or GuardConfig()
        self.admission = Admission(self.config.limits)
        self.connections: set[GuardedProtocol] = set()
        self.draining = False
        self.peak_active = 0
        self.servers: list[GuardServer] = []
        self._index: EvictionIndex[GuardedProtocol] = EvictionIndex()
        self._attaching: set[asyncio.Task[Any]] = set()
        self._setup: dict[str, deque[tuple[GuardedProtocol, socket.socket, dict[str, Any]]]] = {}
        self._setup_first: deque[tuple[GuardedProtocol, socket.socket, dict[str, Any]]] = deque()
        self._setup_scheduled = False
        self._expired: deque[tuple[GuardedProtocol, CloseReason]] = deque()
        self._expire_scheduled = False
        self._evicted_now = 0
        self._evict_budget = 1 << 30  # lowered by start_server to fit the descriptor headroom
        self._idle_event: asyncio.Event | None = None
        self._loglim = LogLimiter(self.config.log_rate, self.config.log_burst)
        m = self.metrics = Metrics("tcpwise_guard")
        self._accepted = m.counter("accepted_total", "Connections admitted by the guard.")
        self.closes = m.counter("closes_total", "Connections closed, by close reason.", "reason")
        self.accept_pauses = m.counter("accept_pauses_total", "Times accepting paused, by cause.", "cause")
        self.accept_errors = m.counter("accept_errors_total", "accept() failures, by errno.", "errno")
        m.gauge("active", "Connections open now.", lambda: float(self.admission.active))
        m.gauge("peak_active", "Most connections open at once.", lambda: float(self.peak_active))
        m.gauge(
            "connection_cap", "Connection cap in force (0: none).", lambda: float(self.admission.cap or 0)
        )
        m.gauge("accept_paused", "1 while accepting is paused.", lambda: float(self.paused))

    @property
    def paused(self) -> bool:
        """Accepting is paused on some listener (descriptor headroom reached)."""
        return any(s.paused for s in self.servers)

    # -- wiring -------------------------------------------------------------------------------------------

    def protocol_factory(self) -> Callable[[], GuardedProtocol]:
        """A factory for ``loop.create_server``; must be called inside the loop that will serve.

        That path decides admission in ``connection_made``, after asyncio's own accept: limits, eviction and
        timeouts apply, descriptor headroom does not (use :meth:`start_server` for that)."""
        loop = asyncio.get_running_loop()

        def make() -> GuardedProtocol:
            return GuardedProtocol(self, loop)

        return make

    async def start_server(
        self,
        host: str | Sequence[str] | None = None,
        port: int = 0,
        *,
        backlog: int = 4096,
        sock: socket.socket | None = None,
        family: int = socket.AF_UNSPEC,
        reuse_port: bool = False,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
    ) -> GuardServer:
        """Listen on ``host:port`` (or the given listening ``sock``) and serve with this guard.

        ``backlog`` is the kernel accept queue (listen(2), capped by ``net.core.somaxconn``): while accepting is
        paused, connections wait there instead of being refused.
        """
        loop = asyncio.get_running_loop()
        if sock is not None:
            sock.listen(backlog)
            sock.setblocking(False)
            socks = [sock]
        else:
            socks = open_listening_sockets(host, port, backlog=backlog, family=family, reuse_port=reuse_port)
        limit, headroom = self._fit_fd_budget()
        # Accepting, refusing and queueing are cheap, so drain the kernel's accept queue in batches of 64: a
        # legitimate client waits behind everything queued before it there. The descriptors that outlive a
        # batch are those of evicted connections (closed on the next iteration): bounded separately.
        batch = self.config.accept_batch or 64
        self._evict_budget = max(1, headroom // 4)
        ssl_kw: dict[str, Any] = {}
        if ssl is not None:
            ssl_kw = {"ssl": ssl, "ssl_handshake_timeout": ssl_handshake_timeout}

        def on_accept(conn: socket.socket, peer: Any) -> None:
            self._on_accept(loop, conn, peer, ssl_kw)

        srv = GuardServer(
            loop,
            socks,
            on_accept,
            fd_limit=limit,
            headroom=headroom,
            batch=batch,
            limiter=self._loglim,
            may_accept=self._may_accept,
        )
        srv.pauses = self.accept_pauses
        srv.accept_errors = self.accept_errors
        srv.start()
        self.servers.append(srv)
        return srv

    def _fit_fd_budget(self) -> tuple[int, int]:
        """Lower the connection cap so that guarded connections alone never come within the headroom of the
        descriptor limit; returns ``(limit, headroom)``."""
        lim = self.config.limits
        limit = nofile_limit()
        headroom = lim.fd_headroom if lim.fd_headroom is not None else default_headroom(limit)
        in_use = open_fd_count() - self.admission.active  # descriptors the rest of the process holds
        room = max(1, limit - in_use - headroom)
        cap = lim.max_connections
        if cap is None or room < cap:
            self.admission.cap = room
            if cap is not None:
                log.warning(
                    "max_connections %d lowered to %d to keep %d of %d descriptors free (RLIMIT_NOFILE)",
                    cap,
                    room,
                    headroom,
                    limit,
                    extra={"event": "cap_lowered", "fds": in_use, "fd_limit": limit},
                )
        return limit, headroom

    # -- admission ------------------------------------------------------------------------------------------

    def _admit(self, host: str, now: float) -> tuple[str, CloseReason | None]:
        if self.draining:
            return "", CloseReason.REFUSED_DRAINING
        make_room = self._make_room if self.config.limits.evict else None
        return self.admission.admit(host, now, make_room)

    def _make_room(self, key: str, now: float) -> bool:
        """At the cap: evict one connection for a newcomer from ``key`` if the policy allows (see .evict)."""
        if self._evicted_now >= self._evict_budget:
            return False  # evicted descriptors close on the next iteration: keep them within the headroom
        victim = self._index.pick(
            self.admission.per_key, key, now, GuardedProtocol.evictable, self.config.limits.evict_min_age
        )
        if victim is None:
            return False
        if self._evicted_now == 0:
            asyncio.get_running_loop().call_soon(self._reset_evicted)
        self._evicted_now += 1
        victim.evict()
        return True

    def _reset_evicted(self) -> None:
        self._evicted_now = 0

    def _may_accept(self) -> bool:
        """Accept more in this loop iteration? Not at the cap once this iteration's evictions are spent: the
        newcomer would be refused although the next iteration could make room for it."""
        cap = self.admission.cap
        return self._evicted_now < self._evict_budget or cap is None or self.admission.active < cap

    def _on_accept(
        self, loop: asyncio.AbstractEventLoop, conn: socket.socket, peer: Any, ssl_kw: dict[str, Any]
    ) -> None:
        key, reason = self._admit(_host_of(peer), loop.time())
        if reason is not None:
            self._refuse_socket(conn, reason, peer, key)
            return
        # Setting a connection up (transport, protocol, handler task) costs several times more than accepting
        # or refusing it. A source holding few connections goes to the front queue; the others are queued per
        # source and set up round-robin, so a burst of thousands from a few addresses (or a hundred) does not
        # sit in front of a client from another one (fair queuing).
        proto = GuardedProtocol(self, loop, key)
        proto.queued = conn
        self._index.add(key, proto, loop.time())  # evictable while it waits, as once it is set up
        item = (proto, conn, ssl_kw)
        if self.admission.per_key.get(key, 0) <= _LIGHT_SOURCE:
            self._setup_first.append(item)
        else:
            q = self._setup.get(key)
            if q is None:
                q = self._setup[key] = deque()
            q.append(item)
        if not self._setup_scheduled:
            self._setup_scheduled = True
            loop.call_soon(self._run_setup, loop)

    def _run_setup(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set up at most ``_SETUP_BATCH`` queued connections, one per source in turn, then yield to the loop."""
        self._setup_scheduled = False
        setup, first = self._setup, self._setup_first
        if self.servers and all(srv.closed for srv in self.servers):
            self._drop_queued()  # shutting down: no new transports or tasks the loop would never finish
            return
        for _ in range(_SETUP_BATCH):
            if first:
                proto, conn, ssl_kw = first.popleft()
            elif setup:
                key = next(iter(setup))
                q = setup.pop(key)
                proto, conn, ssl_kw = q.popleft()
                if q:
                    setup[key] = q  # back of the line: the other sources go first
            else:
                return
            if proto.queued is None:
                continue  # evicted while it waited
            proto.queued = None
            self._attach(loop, proto, conn, ssl_kw)
        if setup or first:
            self._setup_scheduled = True
            loop.call_soon(self._run_setup, loop)

    def _drop_queued(self) -> None:
        """Reset every connection still waiting for its set-up (the server is closing)."""
        items = list(self._setup_first)
        for q in self._setup.values():
            items.extend(q)
        self._setup_first.clear()
        self._setup.clear()
        for proto, conn, _kw in items:
            if proto.queued is None:
                continue
            proto.queued = None
            proto._release()
            set_abortive(conn)
            conn.close()
            self.closes[CloseReason.SHUTDOWN.value] += 1

    def _attach(
        self,
        loop: asyncio.AbstractEventLoop,
        proto: GuardedProtocol,
        conn: socket.socket,
        ssl_kw: dict[str, Any],
    ) -> None:
        task = loop.create_task(loop.connect_accepted_socket(lambda: proto, conn, **ssl_kw))
        self._attaching.add(task)

        def attached(t: asyncio.Task[Any]) -> None:
            self._attaching.discard(t)
            exc = None if t.cancelled() else t.exception()
            if (t.cancelled() or exc is not None) and not proto.made:
                # No transport was made (TLS handshake failed, loop closing): the slot and socket are ours.
                proto._release()
                conn.close()
                self.closes[CloseReason.ERROR.value] += 1

        task.add_done_callback(attached)

    def _expire(self, p: GuardedProtocol, reason: CloseReason) -> None:
        """A deadline passed: close ``p`` — in batches, because connections accepted in one burst time out in one
        burst, and a thousand closes in one loop iteration stall every other connection for that long."""
        self._expired.append((p, reason))
        if not self._expire_scheduled:
            self._expire_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_expired)

    def _run_expired(self) -> None:
        self._expire_scheduled = False
        q = self._expired
        for _ in range(_CLOSE_BATCH):
            if not q:
                return
            p, reason = q.popleft()
            p.close(reason)  # a no-op if it closed meanwhile
        if q:
            self._expire_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_expired)

    def _refuse_socket(self, conn: socket.socket, reason: CloseReason, peer: Any, key: str) -> None:
        if self.config.refuse_mode == "rst":
            set_abortive(conn)
        conn.close()
        self._count_refusal(reason, peer, key)

    def _refuse_transport(self, transport: Any, reason: CloseReason, peer: Any, key: str) -> None:
        if self.config.refuse_mode == "rst":
            sock = transport.get_extra_info("socket")
            if sock is not None:
                set_abortive(sock)
            transport.abort()
        else:
            transport.close()
        self._count_refusal(reason, peer, key)

    def _count_refusal(self, reason: CloseReason, peer: Any, key: str) -> None:
        self.closes[reason.value] += 1
        self._log(
            logging.INFO,
            f"refuse:{reason.value}",
            "refused %s: %s",
            (peer, reason.value),
            {"event": "refuse", "peer": peer, "reason": reason.value, "source_key": key},
        )

    # -- bookkeeping ----------------------------------------------------------------------------------------

    def _opened(self, p: GuardedProtocol, now: float) -> None:
        self.connections.add(p)
        self._accepted[""] += 1
        if self.admission.active > self.peak_active:
            self.peak_active = self.admission.active

    def _closed(self, p: GuardedProtocol, exc: BaseException | None) -> None:
        self.connections.discard(p)
        reason = p.reason or CloseReason.ERROR
        self.closes[reason.value] += 1
        quiet = reason in (CloseReason.HANDLER_DONE, CloseReason.PEER_CLOSED)
        level = logging.DEBUG if quiet else logging.INFO
        if log.isEnabledFor(level):
            duration = self._lp_time() - p.clock.accepted
            self._log(
                level,
                f"close:{reason.value}",
                "close %s: %s after %.3fs (%d bytes in)",
                (p.peer, reason.value, duration, p.bytes_in),
                {
                    "event": "close",
                    "peer": p.peer,
                    "reason": reason.value,
                    "duration": round(duration, 6),
                    "bytes_in": p.bytes_in,
                    "error": repr(exc) if exc is not None else None,
                },
            )
        if not self.connections and self._idle_event is not None:
            self._idle_event.set()

    def _handler_error(self, peer: Any, exc: BaseException) -> None:
        self._log(
            logging.WARNING,
            "handler_error",
            "handler raised %s for %s",
            (type(exc).__name__, peer),
            {"event": "handler_error", "peer": peer},
            exc_info=(type(exc), exc, exc.__traceback__),
        )

    def _log(
        self,
        level: int,
        kind: str,
        msg: str,
        args: tuple[Any, ...],
        extra: dict[str, Any],
        exc_info: Any = None,
    ) -> None:
        """Log through the rate limiter: a flood of one kind of record is cut to ``log_rate`` per second."""
        if not log.isEnabledFor(level):
            return
        dropped = self._loglim.allow(kind, self._lp_time())
        if dropped is None:
            return
        if dropped:
            msg += f" ({dropped} similar records suppressed)"
        log.log(level, msg, *args, extra={**extra, "suppressed": dropped}, exc_info=exc_info)

    @staticmethod
    def _lp_time() -> float:
        return asyncio.get_running_loop().time()

    def stats(self) -> dict[str, Any]:
        """Counters and gauges as a plain dict (what Prometheus would scrape)."""
        return self.metrics.snapshot()

    def check_client_heartbeat(self, interval: float) -> str:
        """Check a client heartbeat interval against this guard's idle timeout (see
        :func:`tcpwise.guard.heartbeat.check_heartbeat`): raises ``HeartbeatMismatch`` with the explanation when
        the interval is not below the idle timeout. Publish the result next to the server's configuration."""
        from tcpwise.guard.heartbeat import check_heartbeat

        idle = self.config.timeouts.idle
        if idle is None:
            return f"ok: no idle timeout configured, a heartbeat every {interval:g} s is never cut off"
        return check_heartbeat(interval, idle)

    # -- shutdown -----------------------------------------------------------------------------------------

    async def drain(self, timeout: float = 30.0) -> int:
        """Stop accepting, let handlers finish for up to ``timeout`` s, then close the rest (``shutdown``).

        Returns the number of connections that had to be closed at the deadline.
        """
        self.draining = True
        for s in self.servers:
            s.close()
        self._drop_queued()
        if self.connections:
            self._idle_event = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle_event.wait(), timeout)
            except TimeoutError:
                pass
        left = list(self.connections)
        for p in left:
            p.close(CloseReason.SHUTDOWN)
        if self.connections:
            # Give the graceful closes their drain time, then stop waiting whatever happens.
            self._idle_event = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle_event.wait(), self.config.timeouts.drain + 0.5)
            except TimeoutError:
                for p in list(self.connections):
                    p.abort()
        return len(left)

    def install_signal_handlers(
        self, timeout: float = 30.0, signals: Iterable[signal.Signals] = (signal.SIGTERM,)
    ) -> asyncio.Future[int]:
        """On any of ``signals`` start :meth:`drain`; returns a future with its result (await it in main)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()

        def _start() -> None:
            if self.draining:
                return
            task = loop.create_task(self.drain(timeout))

            def _finish(t: asyncio.Task[int]) -> None:
                if not done.done():
                    done.set_result(t.result())

            task.add_done_callback(_finish)

        for sig in signals:
            loop.add_signal_handler(sig, _start)
        return done


async def start_guarded_server(
    handler: Handler,
    host: str | Sequence[str] | None = None,
    port: int = 0,
    config: GuardConfig | None = None,
    **kw: Any,
) -> tuple[GuardServer, Guard]:
    """Like :func:`asyncio.start_server`, with a guard; returns ``(server, guard)``."""
    guard = Guard(handler, config)
    server = await guard.start_server(host, port, **kw)
    return server, guard

"""The guard: admission limits, timeouts, keepalive and close policy around an asyncio stream handler.

Theory of operation
-------------------
``Guard(handler, config)`` turns an ``asyncio.start_server``-style handler ``async def h(reader, writer)``
into a protocol factory for ``loop.create_server`` (works on the default loop and on uvloop, which both
accept any :class:`asyncio.Protocol`). Each accepted connection gets one :class:`GuardedProtocol`, a
:class:`asyncio.StreamReaderProtocol` that

1. asks :class:`~.limits.Admission` for a slot in ``connection_made``, *before* the handler exists. A refused
   connection is closed at once — with RST by default (SO_LINGER {1,0}, so the refusing server keeps no
   TIME_WAIT for it) or FIN — and never reaches the handler, so it cannot leak;
2. sets SO_KEEPALIVE/TCP_KEEPIDLE/INTVL/CNT and TCP_USER_TIMEOUT (see :mod:`tcpwise.sockets.options`);
3. keeps one lazy loop timer for the earliest of its first-byte / idle / stalled-write / lifetime deadlines
   (see :mod:`.timeouts`); a read only stores ``loop.time()``;
4. runs the handler in a task and *always* closes the transport when the handler returns or raises — a
   handler that forgets ``writer.close()`` is how servers pile up CLOSE_WAIT sockets until EMFILE;
5. records exactly one :class:`~.reasons.CloseReason` per connection and, in ``connection_lost`` (the one
   place every connection passes through exactly once), releases its admission slot, counts the reason and
   logs a structured record (``extra={"event": "close", "peer", "reason", "duration", "bytes_in", ...}``).

Close modes for guard-initiated closes (timeouts, shutdown):
  * ``graceful``: ``shutdown(SHUT_WR)`` after the buffered data (our FIN), wait up to ``timeouts.drain`` for
    the peer's FIN, then ``close()``. The server is the active closer, so it holds TIME_WAIT for 60 s.
  * ``abortive``: SO_LINGER {1,0} + ``close()`` = RST (RFC 9293 §3.10.7.1 ABORT); unsent data is discarded and
    no TIME_WAIT is kept — nginx's ``reset_timedout_connection``.

Graceful drain: :meth:`Guard.drain` stops listening, refuses new connections, waits for handlers to finish
until a deadline and then closes what is left with reason ``shutdown``; :meth:`Guard.install_signal_handlers`
wires it to SIGTERM.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tcpwise.guard.limits import Admission, Limits
from tcpwise.guard.reasons import CloseReason
from tcpwise.guard.timeouts import ConnClock, Timeouts, next_deadline
from tcpwise.sockets.metrics import Metrics
from tcpwise.sockets.options import Keepalive, apply_keepalive, set_abortive

__all__ = ["GuardConfig", "Guard", "GuardedProtocol", "Handler", "start_guarded_server"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

log = logging.getLogger("tcpwise.guard")

# Timers may fire up to the loop's clock resolution early (asyncio runs handles whose time is within
# ``_clock_resolution`` of now); treat a deadline this close as reached instead of re-arming a 0 s timer.
_EPS = 1e-3


@dataclass(frozen=True)
class GuardConfig:
    """Everything the guard enforces.

    Attributes:
        limits: global / per-IP counts and per-IP accept rate.
        timeouts: first-byte, idle, stalled-write, lifetime and graceful-drain deadlines.
        keepalive: TCP keepalive + TCP_USER_TIMEOUT for accepted sockets; ``None`` leaves kernel defaults.
        close_mode: how guard timeouts and shutdown close: ``graceful`` (FIN, drain) or ``abortive`` (RST).
        refuse_mode: how over-limit connections are refused: ``rst`` (default, no TIME_WAIT) or ``fin``.
        stream_limit: StreamReader buffer limit (bytes) handed to the handler.
    """

    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    keepalive: Keepalive | None = field(default_factory=Keepalive)
    close_mode: Literal["graceful", "abortive"] = "graceful"
    refuse_mode: Literal["rst", "fin"] = "rst"
    stream_limit: int = 2**16

    def __post_init__(self) -> None:
        if self.close_mode not in ("graceful", "abortive"):
            raise ValueError(f"close_mode must be 'graceful' or 'abortive', got {self.close_mode!r}")
        if self.refuse_mode not in ("rst", "fin"):
            raise ValueError(f"refuse_mode must be 'rst' or 'fin', got {self.refuse_mode!r}")


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


class GuardedProtocol(asyncio.StreamReaderProtocol):
    """One accepted connection under guard. Created by :meth:`Guard.protocol_factory`."""

    def __init__(self, guard: Guard, loop: asyncio.AbstractEventLoop) -> None:
        reader = asyncio.StreamReader(limit=guard.config.stream_limit, loop=loop)
        super().__init__(reader, loop=loop)
        self._lp = loop
        self._guard = guard
        self._reader_strong: asyncio.StreamReader | None = reader
        self._key: str | None = None
        self._refused: CloseReason | None = None
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

    # -- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        g = self._guard
        loop = self._lp
        now = loop.time()
        # uvloop's transports implement the Transport interface without subclassing asyncio.Transport.
        self._tr = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer
        host = peer[0] if isinstance(peer, tuple) and peer else str(peer or "")
        reason: CloseReason | None
        if g.draining:
            key, reason = "", CloseReason.REFUSED_DRAINING
        else:
            key, reason = g.admission.admit(host, now)
        if reason is not None:
            self._refused = reason
            g._refuse(transport, reason, peer, key)
            return
        self._key = key
        self.clock.accepted = now
        sock = transport.get_extra_info("socket")
        if g.config.keepalive is not None and sock is not None:
            apply_keepalive(sock, g.config.keepalive)
        g.connections.add(self)
        g._accepted[""] += 1
        if g.admission.active > g.peak_active:
            g.peak_active = g.admission.active
        self._arm()
        super().connection_made(transport)
        reader = self._reader_strong
        assert reader is not None
        writer = asyncio.StreamWriter(self._tr, self, reader, loop)  # type: ignore[arg-type]
        # Hold the writer for the connection's whole life: since CPython 3.11.5 a collected StreamWriter closes its
        # transport, which would cut short a graceful close still waiting for the peer's FIN.
        self._writer = writer
        task: asyncio.Task[None] = loop.create_task(self._guard.handler(reader, writer))  # type: ignore[arg-type]
        task.add_done_callback(self._handler_done)
        self._handler_task = task

    def data_received(self, data: bytes) -> None:
        if self.reason is not None:
            return  # closing: whatever the peer still sends is of no use (and must not fill the buffer)
        clock = self.clock
        first = clock.last_read is None
        clock.last_read = self._lp.time()
        self.bytes_in += len(data)
        if first:
            t = self._guard.config.timeouts
            # The deadline only moves later on a read, except when idle < first_byte: re-arm for that case.
            if t.idle is not None and (t.first_byte is None or t.idle < t.first_byte):
                self._arm(force=True)
        reader = self._reader_strong
        if reader is not None:
            reader.feed_data(data)

    def eof_received(self) -> bool:
        self._eof = True
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
        if self._key is not None:
            g.admission.release(self._key)
            self._key = None
        g.connections.discard(self)
        g._record_close(self, exc)
        super().connection_lost(exc)
        self._reader_strong = None
        self._writer = None
        self._tr = None
        if not g.connections and g._idle_event is not None:
            g._idle_event.set()

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
                log.warning(
                    "handler raised %s for %s",
                    type(exc).__name__,
                    self.peer,
                    exc_info=(type(exc), exc, exc.__traceback__),
                    extra={"event": "handler_error", "peer": self.peer},
                )
        tr = self._tr
        if self._guard_closing:
            return  # close() owns the transport now (a graceful close may be waiting for the peer's FIN)
        if tr is not None and not tr.is_closing():
            # The handler is finished with the connection: close it whatever it did or forgot.
            if self.reason is None:
                self.reason = CloseReason.PEER_CLOSED if self._eof else CloseReason.HANDLER_DONE
            tr.close()
        elif self.reason is None:
            self.reason = CloseReason.PEER_CLOSED if self._eof else CloseReason.HANDLER_DONE

    # -- timers -------------------------------------------------------------------------------------------

    def _arm(self, force: bool = False) -> None:
        nd = next_deadline(self._guard.config.timeouts, self.clock)
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
        nd = next_deadline(self._guard.config.timeouts, self.clock)
        if nd is None:
            return
        when, reason = nd
        if when - self._lp.time() <= _EPS:
            self.close(reason)
        else:
            self._timer_when = when
            self._timer = self._lp.call_at(when, self._on_timer)

    # -- closing ------------------------------------------------------------------------------------------

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
            sock = tr.get_extra_info("socket")
            if sock is not None:
                set_abortive(sock)
            tr.abort()
        elif tr.can_write_eof():
            tr.write_eof()  # our FIN goes out after any buffered data (shutdown(2) SHUT_WR)
            if self._eof:
                tr.close()
            else:
                self._drain_timer = self._lp.call_later(
                    self._guard.config.timeouts.drain, self._drain_expired
                )
        else:
            tr.close()
        task = self._handler_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def _drain_expired(self) -> None:
        self._drain_timer = None
        if self._tr is not None:
            self._tr.abort()  # FIN already sent; the peer never answered with its own


@dataclass
class _Servers:
    items: list[asyncio.base_events.Server] = field(default_factory=list)


class Guard:
    """Wraps a stream handler with limits, timeouts, keepalive and a close policy.

    Args:
        handler: ``async def handler(reader, writer)`` as for :func:`asyncio.start_server`.
        config: what to enforce; defaults enforce nothing but keepalive and always-close.

    Use :meth:`start_server` (or pass :meth:`protocol_factory` to ``loop.create_server`` yourself).
    """

    def __init__(self, handler: Handler, config: GuardConfig | None = None) -> None:
        self.handler = handler
        self.config = config or GuardConfig()
        self.admission = Admission(self.config.limits)
        self.connections: set[GuardedProtocol] = set()
        self.draining = False
        self.peak_active = 0
        self._servers = _Servers()
        self._idle_event: asyncio.Event | None = None
        self.metrics = Metrics("tcpwise_guard")
        self._accepted = self.metrics.counter("accepted_total", "Connections admitted by the guard.")
        self.closes = self.metrics.counter("closes_total", "Connections closed, by close reason.", "reason")
        self.metrics.gauge("active", "Connections open now.", lambda: float(self.admission.active))
        self.metrics.gauge("peak_active", "Most connections open at once.", lambda: float(self.peak_active))

    # -- wiring -------------------------------------------------------------------------------------------

    def protocol_factory(self) -> Callable[[], GuardedProtocol]:
        """A factory for ``loop.create_server``; must be called inside the loop that will serve."""
        loop = asyncio.get_running_loop()

        def make() -> GuardedProtocol:
            return GuardedProtocol(self, loop)

        return make

    async def start_server(
        self, host: str | Sequence[str] | None = None, port: int = 0, *, backlog: int = 4096, **kw: Any
    ) -> asyncio.base_events.Server:
        """``loop.create_server`` with this guard; extra keywords go to it (``sock=``, ``reuse_port=``...)."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self.protocol_factory(), host, port, backlog=backlog, **kw)
        self._servers.items.append(server)
        return server

    # -- refusals and bookkeeping ----------------------------------------------------------------------------

    def _refuse(self, transport: Any, reason: CloseReason, peer: Any, key: str) -> None:
        if self.config.refuse_mode == "rst":
            sock = transport.get_extra_info("socket")
            if sock is not None:
                set_abortive(sock)
            transport.abort()
        else:
            transport.close()
        self.closes[reason.value] += 1
        if log.isEnabledFor(logging.INFO):
            log.info(
                "refused %s: %s",
                peer,
                reason.value,
                extra={"event": "refuse", "peer": peer, "reason": reason.value, "source_key": key},
            )

    def _record_close(self, p: GuardedProtocol, exc: BaseException | None) -> None:
        reason = p.reason or CloseReason.ERROR
        self.closes[reason.value] += 1
        quiet = reason in (CloseReason.HANDLER_DONE, CloseReason.PEER_CLOSED)
        level = logging.DEBUG if quiet else logging.INFO
        if log.isEnabledFor(level):
            duration = self._loop_time() - p.clock.accepted
            log.log(
                level,
                "close %s: %s after %.3fs (%d bytes in)",
                p.peer,
                reason.value,
                duration,
                p.bytes_in,
                extra={
                    "event": "close",
                    "peer": p.peer,
                    "reason": reason.value,
                    "duration": round(duration, 6),
                    "bytes_in": p.bytes_in,
                    "error": repr(exc) if exc is not None else None,
                },
            )

    @staticmethod
    def _loop_time() -> float:
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
        for s in self._servers.items:
            s.close()
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
                    if p._tr is not None:
                        p._tr.abort()
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
) -> tuple[asyncio.base_events.Server, Guard]:
    """Like :func:`asyncio.start_server`, with a guard; returns ``(server, guard)``."""
    guard = Guard(handler, config)
    server = await guard.start_server(host, port, **kw)
    return server, guard

"""Application behaviours as simulator actors: servers that leak, clients that never close, pools, slow accept().

Theory of operation
-------------------
The endpoint models the kernel; what the *application* does with its sockets (when it accept()s, whether it ever
calls close(), how a pool hands out connections) lives here, as small actor objects attached to a
:class:`~tcpwise.sim.core.SimHost`. An actor

* registers one reaction in ``host.reactions`` (called by the simulator's drain loop for every endpoint event of
  that host, after the kernel has produced it), and
* schedules its own timed actions with ``sim.at`` (a client's next request, a pool's idle sweep, a slow server's
  next accept()).

Inside a reaction an actor only calls endpoint methods (which tell their stack themselves): the drain loop that called it
collects the output. From a scheduled action it calls ``host.after_call(ep)``, which drains the host.

Actors keep counters (what an application would log or export) and never keep per-connection state beyond the
connections that are open, so large runs stay bounded. Unlabelled sockets are read by the actor itself
(``host.policy[""]`` turns the simulator's default read-everything off), so no receive buffers accumulate.

Nothing here touches the endpoint's internals except through its user calls (connect/accept/send/recv/close/abort)
and its observable ``state`` — exactly what a socket API exposes (``state`` standing in for what
``getsockopt(TCP_INFO)``, ``recv(MSG_PEEK)`` or ``poll(POLLRDHUP)`` would tell a careful application).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tcpwise.endpoint.events import (
    Closed,
    Connected,
    ConnectionError,
    DataReceived,
    EndOfStream,
    EndpointEvent,
)
from tcpwise.endpoint.stack import ConnectError
from tcpwise.endpoint.tcb import Endpoint, LocalProtocolError
from tcpwise.sim.core import SimHost, Simulator
from tcpwise.vocab import AppCall, AppWhy, TcpState

__all__ = [
    "Server",
    "ServerStats",
    "ShortConnClient",
    "ClientStats",
    "LeakyClient",
    "PoolClient",
    "PoolStats",
    "StateSampler",
    "quiet_reads",
]

S = TcpState
# File descriptors a server process holds before its first client: stdin, stdout, stderr and the listener.
BASE_FDS = 4


def quiet_reads(host: SimHost) -> None:
    """Let actors read unlabelled sockets themselves (no simulator-side buffering of every byte)."""
    host.policy[""] = {"auto_read": False, "on_eof": ""}


# ============================================================================================================
# server
# ============================================================================================================
@dataclass
class ServerStats:
    accepted: int = 0
    emfile: int = 0  # accept() calls that failed with EMFILE (fd limit reached)
    refused: int = 0  # connections closed at once by the per-IP limit
    responses: int = 0
    idle_closed: int = 0
    closed: int = 0
    open_fds: int = BASE_FDS
    peak_fds: int = BASE_FDS


class Server:
    """A request/response server on ``port``.

    Knobs (each one an application habit the catalogue talks about):

    * ``on_eof``: ``"close"`` (a correct server: read EOF -> close()) or ``"leak"`` (never close(): CLOSE_WAIT
      piles up — the close-wait-leak bug);
    * ``close_after_response``: HTTP/1.0 style, the server closes first;
    * ``fd_limit``: RLIMIT_NOFILE of the process. accept(2) fails with EMFILE when every fd is taken; the
      connection then stays in the kernel's accept queue (accept(2) does not remove it) until the queue overflows;
    * ``accept_interval``: a slow server that accept()s one connection every so many seconds (None = at once);
    * ``per_ip_limit``: refuse (close with RST, SO_LINGER {1,0}) a connection beyond N open ones per source IP;
    * ``idle_timeout``: close a connection idle for that long (keep-alive timeout, like nginx
      ``keepalive_timeout``).
    """

    def __init__(
        self,
        sim: Simulator,
        host: SimHost,
        port: int = 80,
        *,
        backlog: int | None = None,
        response_bytes: int = 200,
        on_eof: str = "close",
        close_after_response: bool = False,
        fd_limit: int | None = None,
        accept_interval: float | None = None,
        per_ip_limit: int = 0,
        idle_timeout: float | None = None,
    ) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self.response_bytes = response_bytes
        self.on_eof = on_eof
        self.close_after_response = close_after_response
        self.fd_limit = fd_limit
        self.accept_interval = accept_interval
        self.per_ip_limit = per_ip_limit
        self.idle_timeout = idle_timeout
        self.stats = ServerStats()
        self.open: dict[Endpoint, Endpoint] = {}  # accepted, not yet close()d by the application
        self.per_ip: dict[str, int] = {}
        self.last_active: dict[Endpoint, float] = {}
        self.listener = host.stack.listen(port, backlog, sim.now, auto_accept=False)
        host.listen_policy[port] = {"accept": False}  # this actor accept()s, not the simulator
        quiet_reads(host)
        host.reactions.append(self._react)
        host.app(AppCall.LISTEN, port=port, backlog=self.listener.backlog)
        sim.drain(host)  # logs the listener's CLOSED -> LISTEN
        if accept_interval is not None:
            sim.at(sim.now + accept_interval, self._slow_accept)
        if idle_timeout is not None:
            sim.at(sim.now + idle_timeout / 4, self._idle_sweep)

    # -- accept ------------------------------------------------------------------------------------------
    def _accept_one(self, now: float) -> bool:
        """One accept(2) call. Returns False when nothing could be accepted (empty queue or EMFILE)."""
        if not self.listener.accept_queue:
            return False
        if self.fd_limit is not None and self.stats.open_fds >= self.fd_limit:
            # accept(2) -> EMFILE: the kernel leaves the connection in the accept queue (man 2 accept, ERRORS).
            self.stats.emfile += 1
            if self.stats.emfile == 1:
                self.host.app(AppCall.ACCEPT, errno="EMFILE", why=AppWhy.FD_LIMIT, value=self.fd_limit)
            return False
        ep = self.host.stack.accept(self.port)
        if ep is None:
            return False
        self.stats.accepted += 1
        self.stats.open_fds += 1
        self.stats.peak_fds = max(self.stats.peak_fds, self.stats.open_fds)
        self.open[ep] = ep
        self.last_active[ep] = now
        self.host.app(AppCall.ACCEPT, ep)
        if self.per_ip_limit:
            n = self.per_ip.get(ep.raddr, 0) + 1
            self.per_ip[ep.raddr] = n
            if n > self.per_ip_limit:
                self.stats.refused += 1
                self.host.app(AppCall.ABORT, ep, why=AppWhy.PER_IP_LIMIT, value=self.per_ip_limit)
                self._release(ep)
                ep.abort(now)
                return True
        # Data may already be waiting (it arrived while the connection sat in the accept queue).
        if ep.readable:
            self._on_data(ep, now)
        if ep.state is S.CLOSE_WAIT and self.on_eof == "close":
            self._close(ep, now)
        return True

    def _slow_accept(self) -> None:
        now = self.sim.now
        if self._accept_one(now):
            self.sim.drain(self.host)
        self.sim.at(now + (self.accept_interval or 1.0), self._slow_accept)

    # -- reactions -----------------------------------------------------------------------------------------
    def _react(self, host: SimHost, ep: Endpoint, ev: EndpointEvent, now: float) -> None:
        tev = type(ev)
        if tev is Connected and ep.passive:
            if self.accept_interval is None:
                while self._accept_one(now):
                    pass
            return
        if ep not in self.open:
            return
        if tev is DataReceived:
            self._on_data(ep, now)
        elif tev is EndOfStream:
            self.host.app(AppCall.EOF, ep)
            if self.on_eof == "close":
                self._close(ep, now)
        elif isinstance(ev, ConnectionError):
            self.host.app(AppCall.ERROR, ep, errno=ev.errno)
        elif tev is Closed and self.on_eof == "close":
            # The kernel gave up (RST): a correct server closes its fd too.
            self._release(ep)

    def _on_data(self, ep: Endpoint, now: float) -> None:
        data = ep.recv()
        if not data:
            return
        self.last_active[ep] = now
        if ep.state not in (S.ESTABLISHED, S.CLOSE_WAIT):
            return
        try:
            ep.send(b"r" * self.response_bytes, now)
        except LocalProtocolError:
            return
        self.stats.responses += 1
        if self.close_after_response:
            self._close(ep, now)
        # A new accept() becomes possible whenever an fd is freed; handled in _release.

    def _release(self, ep: Endpoint) -> None:
        if self.open.pop(ep, None) is None:
            return
        self.last_active.pop(ep, None)
        self.stats.open_fds -= 1
        if self.per_ip_limit:
            self.per_ip[ep.raddr] = max(0, self.per_ip.get(ep.raddr, 1) - 1)

    def _close(self, ep: Endpoint, now: float, why: AppWhy | None = None, value: float | None = None) -> None:
        self._release(ep)
        self.stats.closed += 1
        self.host.app(AppCall.CLOSE, ep, why=why, value=value)
        try:
            ep.close(now)
        except LocalProtocolError:
            pass

    def _idle_sweep(self) -> None:
        now = self.sim.now
        limit = self.idle_timeout or 0.0
        for key, ep in list(self.open.items()):
            if now - self.last_active.get(key, now) >= limit - 1e-9 and ep.state is S.ESTABLISHED:
                self.stats.idle_closed += 1
                self._close(ep, now, AppWhy.IDLE_TIMEOUT, limit)
        self.sim.drain(self.host)
        self.sim.at(now + limit / 4, self._idle_sweep)


# ============================================================================================================
# clients
# ============================================================================================================
@dataclass
class ClientStats:
    attempts: int = 0
    connect_failed: int = 0  # connect() failed locally (EADDRNOTAVAIL: no free ephemeral port)
    established: int = 0
    completed: int = 0  # response fully read
    timeouts: int = 0  # the application gave up waiting (connect or response)
    errors: dict[str, int] = field(default_factory=dict)  # errno -> count (ECONNRESET, ETIMEDOUT, ...)
    failed_at: list[float] = field(default_factory=list)  # times of local connect() failures (bounded use)


class ShortConnClient:
    """One connection per request: connect(), send the request, read the response, then close.

    ``close_mode``: ``"close"`` (FIN: this side is the active closer and holds TIME_WAIT), ``"linger"``
    (close() with SO_LINGER {1, 0}: RST, no TIME_WAIT) or ``"never"`` (the leaky client: never closes).
    ``times`` is an iterable of request start times (consumed lazily, so a million-request schedule costs
    nothing up front). ``timeout``: the application's own deadline for connect + response (None = wait forever).
    """

    def __init__(
        self,
        sim: Simulator,
        host: SimHost,
        peer_addr: str,
        port: int = 80,
        *,
        times: Any = (),
        request_bytes: int = 100,
        response_bytes: int = 200,
        close_mode: str = "close",
        timeout: float | None = None,
        keep_failures: int = 0,
        on_fail: Callable[[float], None] | None = None,
    ) -> None:
        self.sim = sim
        self.host = host
        self.peer_addr = peer_addr
        self.port = port
        self.request_bytes = request_bytes
        self.response_bytes = response_bytes
        self.close_mode = close_mode
        self.timeout = timeout
        self.keep_failures = keep_failures
        self.on_fail = on_fail
        self.stats = ClientStats()
        self.got: dict[Endpoint, int] = {}  # response bytes read so far
        self.eps: dict[Endpoint, Endpoint] = {}
        self._times = iter(times)
        quiet_reads(host)
        host.reactions.append(self._react)
        self._next()

    def _next(self) -> None:
        t = next(self._times, None)
        if t is not None:
            self.sim.at(max(t, self.sim.now), self._start)

    def _start(self) -> None:
        self._next()
        now = self.sim.now
        self.stats.attempts += 1
        try:
            ep = self.host.stack.connect(self.peer_addr, self.port, now)
        except ConnectError as exc:
            self.stats.connect_failed += 1
            self.stats.errors[exc.errno] = self.stats.errors.get(exc.errno, 0) + 1
            if len(self.stats.failed_at) < self.keep_failures:
                self.stats.failed_at.append(now)
            if self.on_fail is not None:
                self.on_fail(now)
            if self.stats.connect_failed == 1 or self.sim.record:
                self.host.app(AppCall.CONNECT, errno=exc.errno)
            return
        self.got[ep] = 0
        self.eps[ep] = ep
        self.host.app(AppCall.CONNECT, ep)
        if self.timeout is not None:
            self.sim.at(now + self.timeout, self._deadline, ep)
        self.host.after_call()

    def _deadline(self, ep: Endpoint) -> None:
        if ep not in self.got:
            return  # finished in time
        self.stats.timeouts += 1
        why = AppWhy.CONNECT_TIMEOUT if ep.state in (S.SYN_SENT, S.SYN_RCVD) else AppWhy.READ_TIMEOUT
        self.host.app(AppCall.GIVE_UP, ep, why=why, value=self.timeout)
        # Giving up on a connect: close() in SYN_SENT just deletes the TCB (RFC 9293 §3.10.4), nothing is sent.
        self._finish(ep, self.sim.now, "close" if ep.state is S.SYN_SENT else self.close_mode)
        self.host.after_call()

    def _finish(self, ep: Endpoint, now: float, mode: str) -> None:
        self.got.pop(ep, None)
        self.eps.pop(ep, None)
        if mode == "never" or ep.state is S.CLOSED:
            return
        if mode == "linger":
            self.host.app(AppCall.ABORT, ep)
            ep.abort(now)
        else:
            self.host.app(AppCall.CLOSE, ep)
            try:
                ep.close(now)
            except LocalProtocolError:
                pass

    def _react(self, host: SimHost, ep: Endpoint, ev: EndpointEvent, now: float) -> None:
        key = ep
        if key not in self.got:
            return
        tev = type(ev)
        if tev is Connected:
            self.stats.established += 1  # (the simulator logs "connect() returns")
            if not self.request_bytes:
                return  # connect-only client: it just holds the connection
            try:
                ep.send(b"q" * self.request_bytes, now)
            except LocalProtocolError:
                return
        elif tev is DataReceived:
            n = len(ep.recv())
            self.got[key] += n
            if self.got[key] >= self.response_bytes:
                self.stats.completed += 1
                host.app(AppCall.RECV, ep, nbytes=self.got[key], why=AppWhy.RESPONSE_DONE)
                self._finish(ep, now, self.close_mode)
        elif tev is EndOfStream:
            host.app(AppCall.EOF, ep)
            self._finish(ep, now, "close" if self.close_mode != "never" else "never")
        elif isinstance(ev, ConnectionError):
            errno = ev.errno
            self.stats.errors[errno] = self.stats.errors.get(errno, 0) + 1  # (the simulator logs the error)
            self.got.pop(key, None)
            self.eps.pop(key, None)


class LeakyClient(ShortConnClient):
    """Opens connections and never closes them (the client-leak bug): each one stays ESTABLISHED on both ends."""

    def __init__(self, sim: Simulator, host: SimHost, peer_addr: str, port: int = 80, **kw: Any) -> None:
        kw["close_mode"] = "never"
        super().__init__(sim, host, peer_addr, port, **kw)


# ============================================================================================================
# pool
# ============================================================================================================
@dataclass
class PoolStats:
    requests: int = 0
    opened: int = 0
    reused: int = 0
    errors: int = 0  # requests that failed with "Connection reset by peer" (or EPIPE) on a pooled connection
    errnos: dict[str, int] = field(default_factory=dict)
    discarded_dead: int = 0  # dead connections a validating pool found and closed before use
    evicted_idle: int = 0
    completed: int = 0


class PoolClient:
    """An HTTP-style keep-alive connection pool (one request in flight per connection).

    ``validate``: before handing out an idle connection, check whether the peer already closed it (EOF seen:
    the socket is in CLOSE_WAIT, or it was reset) — what ``recv(MSG_PEEK | MSG_DONTWAIT)`` returning 0 tells a
    careful pool — and close + discard it. ``max_idle``: close connections idle longer than this (set it below
    the server's idle timeout). The naive pool (``validate=False, max_idle=None``) hands out whatever is idle,
    most recently used first, and forgets a connection that failed without close()ing it: the dead ones at
    the bottom of the stack stay in CLOSE_WAIT forever.
    On an error the request is retried once on a new connection (what most HTTP clients do for idempotent
    requests).
    """

    def __init__(
        self,
        sim: Simulator,
        host: SimHost,
        peer_addr: str,
        port: int = 80,
        *,
        times: Any = (),
        request_bytes: int = 100,
        response_bytes: int = 200,
        validate: bool = False,
        max_idle: float | None = None,
    ) -> None:
        self.sim = sim
        self.host = host
        self.peer_addr = peer_addr
        self.port = port
        self.request_bytes = request_bytes
        self.response_bytes = response_bytes
        self.validate = validate
        self.max_idle = max_idle
        self.stats = PoolStats()
        self.idle: deque[tuple[Endpoint, float]] = (
            deque()
        )  # (connection, idle since); right end = most recent
        self.busy: dict[Endpoint, list[Any]] = {}  # [ep, bytes read, retried?]
        self.waiting: deque[bool] = deque()  # requests waiting for a new connection to open (retried flag)
        self.opening: dict[Endpoint, bool] = {}  # retried flag of the request it carries
        self.leaked: list[Endpoint] = []  # dead connections the naive pool dropped without close()
        self._times = iter(times)
        quiet_reads(host)
        host.reactions.append(self._react)
        self._next()
        if max_idle is not None:
            sim.at(sim.now + max_idle / 2, self._sweep)

    def _next(self) -> None:
        t = next(self._times, None)
        if t is not None:
            self.sim.at(max(t, self.sim.now), self._request)

    def _request(self) -> None:
        self._next()
        self.stats.requests += 1
        self._dispatch(self.sim.now, retried=False)
        self.sim.drain(self.host)

    def _dispatch(self, now: float, retried: bool) -> None:
        while self.idle:
            ep, _since = self.idle.pop()  # most recently used first (LIFO, as most pools do)
            if self.validate and ep.state is not S.ESTABLISHED:
                self.stats.discarded_dead += 1
                self.host.app(AppCall.CLOSE, ep, why=AppWhy.POOL_PEER_CLOSED, text=ep.state.value)
                self._close(ep, now)
                continue
            self.stats.reused += 1
            self._send(ep, now, retried)
            return
        self._open(now, retried)

    def _open(self, now: float, retried: bool) -> None:
        try:
            ep = self.host.stack.connect(self.peer_addr, self.port, now)
        except ConnectError as exc:
            self.host.app(AppCall.CONNECT, errno=exc.errno)
            return
        self.stats.opened += 1
        self.opening[ep] = retried
        self.host.app(AppCall.CONNECT, ep, why=AppWhy.POOL_NEW)

    def _send(self, ep: Endpoint, now: float, retried: bool) -> None:
        self.busy[ep] = [ep, 0, retried]
        try:
            ep.send(b"q" * self.request_bytes, now)
            self.host.app(AppCall.SEND, ep, nbytes=self.request_bytes, why=AppWhy.REQUEST)
        except LocalProtocolError:
            self._fail(ep, now, "EPIPE")
            return

    def _fail(self, ep: Endpoint, now: float, errno: str) -> None:
        entry = self.busy.pop(ep, None)
        self.stats.errors += 1
        self.stats.errnos[errno] = self.stats.errnos.get(errno, 0) + 1
        self.host.app(AppCall.ERROR, ep, errno=errno, why=AppWhy.REQUEST)
        if self.validate:
            self._close(ep, now)
        else:
            self.leaked.append(ep)  # the naive pool forgets it without close(): the fd stays open
        if entry is not None and not entry[2]:
            self._open(now, retried=True)  # retry once on a fresh connection

    def _close(self, ep: Endpoint, now: float) -> None:
        if ep.state is S.CLOSED:
            return
        try:
            ep.close(now)
        except LocalProtocolError:
            pass

    def _react(self, host: SimHost, ep: Endpoint, ev: EndpointEvent, now: float) -> None:
        key = ep
        tev = type(ev)
        if key in self.opening and tev is Connected:
            retried = self.opening.pop(key)
            self._send(ep, now, retried)
            return
        entry = self.busy.get(key)
        if entry is None:
            if tev is ConnectionError and key in self.opening:
                self.opening.pop(key)
                self.stats.errors += 1
            return
        if tev is DataReceived:
            entry[1] += len(ep.recv())
            if entry[1] >= self.response_bytes:
                del self.busy[key]
                self.stats.completed += 1
                host.app(AppCall.RECV, ep, nbytes=entry[1], why=AppWhy.POOL_RETURN)
                self.idle.append((ep, now))
        elif isinstance(ev, ConnectionError):
            self._fail(ep, now, ev.errno)

    def _sweep(self) -> None:
        now = self.sim.now
        limit = self.max_idle or 0.0
        keep: deque[tuple[Endpoint, float]] = deque()
        for ep, since in self.idle:
            if now - since >= limit - 1e-9:
                self.stats.evicted_idle += 1
                self.host.app(AppCall.CLOSE, ep, why=AppWhy.POOL_MAX_IDLE, value=limit)
                self._close(ep, now)
            else:
                keep.append((ep, since))
        self.idle = keep
        self.sim.drain(self.host)
        self.sim.at(now + limit / 2, self._sweep)

    def held(self) -> list[Endpoint]:
        """Connections the application still holds an fd for (idle, busy, or leaked by the naive pool)."""
        return [e for e, _ in self.idle] + [v[0] for v in self.busy.values()] + self.leaked


# ============================================================================================================
# sampling
# ============================================================================================================
class StateSampler:
    """Every ``interval`` seconds, count each host's connections per state (what ``ss -s``/``ss -tan`` would
    show) into time series. ``extra`` adds more columns: name -> function() -> number."""

    def __init__(
        self,
        sim: Simulator,
        hosts: dict[str, SimHost],
        states: tuple[str, ...],
        interval: float = 1.0,
        until: float = 0.0,
        extra: dict[str, Callable[[], float]] | None = None,
    ) -> None:
        self.sim = sim
        self.hosts = hosts
        self.states = states
        self.interval = interval
        self.until = until
        self.extra = extra or {}
        self.series: dict[str, list[float]] = {"t": []}
        for h in hosts:
            for st in states:
                self.series[f"{h}.{st}"] = []
        for name in self.extra:
            self.series[name] = []
        sim.at(sim.now, self._sample)

    def _sample(self) -> None:
        now = self.sim.now
        self.series["t"].append(round(now, 6))
        for h, host in self.hosts.items():
            counts = host.stack.state_counts()
            for st in self.states:
                self.series[f"{h}.{st}"].append(counts.get(st, 0))
        for name, fn in self.extra.items():
            self.series[name].append(fn())
        if now + self.interval <= self.until + 1e-9:
            self.sim.at(now + self.interval, self._sample)


# ============================================================================================================
# attacker
# ============================================================================================================
class SynFlood:
    """A raw-socket program on host ``sender`` that sends bare SYNs to ``dst``:``dport`` with spoofed source
    addresses from ``sources`` (addresses nobody answers for: the SYN-ACKs go nowhere). ``rate`` SYNs per second
    from ``start`` for ``duration`` seconds. It never completes a handshake, so each SYN leaves one SYN_RCVD
    entry in the server's SYN queue for as long as the server keeps retransmitting its SYN-ACK."""

    def __init__(
        self,
        sim: Simulator,
        sender: str,
        dst: str,
        dport: int,
        sources: list[str],
        *,
        rate: float,
        start: float,
        duration: float,
    ) -> None:
        from tcpwise.sim.rng import Rng

        self.sim = sim
        self.sender = sender
        self.dst = dst
        self.dport = dport
        self.sources = sources
        self.rng: Rng = sim.rng_for(f"synflood|{sender}")
        self.sent = 0
        n = int(rate * duration)
        for i in range(n):
            sim.at(start + i / rate, self._send_one)

    def _send_one(self) -> None:
        from tcpwise.sim.network import Packet
        from tcpwise.vocab import SYN
        from tcpwise.wire.segment import MssOption, TcpSegment

        src = self.sources[self.sent % len(self.sources)]
        sport = 1024 + self.rng.randbelow(64000)
        seg = TcpSegment(sport, self.dport, self.rng.randbelow(1 << 32), 0, SYN, 64240, (MssOption(1460),))
        self.sent += 1
        self.sim.transmit(self.sender, Packet(src, self.dst, seg, self.sender), self.sim.now)

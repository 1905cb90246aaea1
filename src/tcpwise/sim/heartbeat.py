"""Application actors for the liveness scenarios: a heartbeat client, idle-timeout and send-timeout servers, a
reader that stalls.

Theory of operation
-------------------
An actor is an application on a :class:`~tcpwise.sim.core.SimHost`: it is attached as a host *reaction* (called
for every endpoint event of that host, see ``SimHost.reactions``) and schedules its own wake-ups on the
simulator heap. It only uses the socket API the endpoint offers (``send``/``recv``/``close``/``abort``) and
logs what it does as ``app`` events, exactly as a script step would — there is no special case for it inside
the endpoint or the simulator.

* :class:`HeartbeatClient` writes ``size`` bytes every ``interval`` seconds and, like most clients, never reads:
  it does not notice the server's FIN (EOF) and learns about a dead connection only when a write fails.
* :class:`IdleTimeoutServer` closes an accepted connection after ``timeout`` seconds without a byte from the
  client (nginx ``keepalive_timeout``, Redis ``timeout``, a gRPC server's max idle): with ``close()`` (FIN) or,
  with ``reset=True``, with SO_LINGER {1, 0} (RST).
* :class:`SendTimeoutServer` writes a response and closes the connection when the client has not taken all of
  it within ``timeout`` seconds (nginx ``send_timeout``; with ``reset_timedout_connection on`` it closes with
  RST, which throws away whatever is still queued in the send buffer).
* :class:`StalledReader` is a client application that stops reading (its receive window fills to zero) and
  resumes at ``resume_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcpwise.endpoint.events import Connected, DataReceived, EndpointEvent
from tcpwise.endpoint.tcb import Endpoint, LocalProtocolError
from tcpwise.sim.core import SimHost, Simulator
from tcpwise.vocab import AppCall, AppWhy, TcpState

__all__ = ["HeartbeatClient", "IdleTimeoutServer", "SendTimeoutServer", "StalledReader"]

S = TcpState


def _errno_of(ep: Endpoint) -> str:
    # A write on a socket whose connection is gone: the pending error if there is one, else EPIPE (Linux
    # tcp_sendmsg -> sk_stream_error: sk_err first, then EPIPE once the socket is shut for sending).
    return ep.error or "EPIPE"


@dataclass
class HeartbeatClient:
    """Writes a heartbeat on socket ``sock`` of ``host`` every ``interval`` s from ``start``; stops at the first
    failed write. ``writes`` holds (time, bytes accepted or None for a failure, errno)."""

    sim: Simulator
    host: SimHost
    interval: float
    start: float
    until: float
    size: int = 8
    sock: str = "c"
    writes: list[tuple[float, int | None, str]] = field(default_factory=list)
    failed_at: float | None = None

    def attach(self) -> HeartbeatClient:
        self.sim.at(self.start, self._beat)
        return self

    def _beat(self) -> None:
        now = self.sim.now
        ep = self.host.socks.get(self.sock)
        if ep is None or self.failed_at is not None:
            return
        # The client ignores EOF: it never reads, so a FIN from the server goes unnoticed (CLOSE_WAIT).
        self.host.policy.setdefault(self.sock, {})["auto_read"] = False
        if ep.state is S.CLOSED:
            err = _errno_of(ep)
            self.writes.append((now, None, err))
            self.failed_at = now
            self.host.app(AppCall.SEND, ep, errno=err, why=AppWhy.HEARTBEAT)
            return
        try:
            n = ep.send(b"PING" + b"." * max(0, self.size - 4), now)
        except LocalProtocolError:
            err = _errno_of(ep)
            self.writes.append((now, None, err))
            self.failed_at = now
            self.host.app(AppCall.SEND, ep, errno=err, why=AppWhy.HEARTBEAT)
            return
        self.writes.append((now, n, ""))
        self.host.app(AppCall.SEND, ep, nbytes=n, why=AppWhy.HEARTBEAT)
        self.host.after_call()
        nxt = now + self.interval
        if nxt <= self.until + 1e-9:
            self.sim.at(nxt, self._beat)


@dataclass
class IdleTimeoutServer:
    """Closes every accepted connection on ``port`` that has been idle (nothing received) for ``timeout`` s.
    ``closed`` holds (time, label) for every connection it closed."""

    sim: Simulator
    host: SimHost
    timeout: float
    port: int = 80
    reset: bool = False
    last_rx: dict[Endpoint, float] = field(default_factory=dict)
    closed: list[tuple[float, str]] = field(default_factory=list)

    def attach(self) -> IdleTimeoutServer:
        self.host.reactions.append(self.react)
        return self

    def react(self, host: SimHost, ep: Endpoint, ev: EndpointEvent, now: float) -> None:
        if not ep.passive or ep.lport != self.port:
            return
        t = type(ev)
        if t is Connected or t is DataReceived:
            self.last_rx[ep] = now
            self.sim.at(now + self.timeout, self._check, ep)

    def _check(self, ep: Endpoint) -> None:
        now = self.sim.now
        last = self.last_rx.get(ep)
        if last is None or ep.state not in (S.ESTABLISHED, S.CLOSE_WAIT) or ep.orphan:
            return
        if now - last < self.timeout - 1e-9:
            return  # data arrived meanwhile: a later check is already scheduled
        label = self.host.label_of(ep)
        self.closed.append((now, label))
        if self.reset:
            self.host.app(AppCall.ABORT, ep, why=AppWhy.IDLE_TIMEOUT, value=self.timeout)
            ep.abort(now)
        else:
            self.host.app(AppCall.CLOSE, ep, why=AppWhy.IDLE_TIMEOUT, value=self.timeout)
            ep.close(now)
        self.host.after_call()


@dataclass
class SendTimeoutServer:
    """On the first request on an accepted connection, write ``response`` bytes; if the client has not taken
    them all ``timeout`` s later (nginx send_timeout: no progress between two writes), close — with RST when
    ``reset`` (nginx reset_timedout_connection on: SO_LINGER {1, 0}), else with a FIN. A connection whose
    response went out completely is closed at once (HTTP/1.0 style: the server closes first).

    ``unsent_at_close``: bytes still in the send buffer (unacknowledged or never sent) when it closed."""

    sim: Simulator
    host: SimHost
    response: int
    timeout: float
    reset: bool = True
    port: int = 80
    written: int = 0
    unsent_at_close: int | None = None
    closed_at: float | None = None
    started: set[Endpoint] = field(default_factory=set)

    def attach(self) -> SendTimeoutServer:
        self.host.reactions.append(self.react)
        return self

    def react(self, host: SimHost, ep: Endpoint, ev: EndpointEvent, now: float) -> None:
        if not ep.passive or ep.lport != self.port or type(ev) is not DataReceived or ep in self.started:
            return
        self.started.add(ep)
        data = bytes(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i % 26] for i in range(self.response))
        self.written = ep.send(data, now)
        host.app(AppCall.SEND, ep, nbytes=self.written)
        self.sim.at(now + self.timeout, self._check, ep)

    def _check(self, ep: Endpoint) -> None:
        now = self.sim.now
        if ep.state is not S.ESTABLISHED and ep.state is not S.CLOSE_WAIT:
            return
        queued = ep.send_queue  # bytes not yet acknowledged by the client (sent or not): SIOCOUTQ
        self.closed_at = now
        self.unsent_at_close = queued
        if queued == 0:
            self.host.app(AppCall.CLOSE, ep, why=AppWhy.RESPONSE_DONE)
            ep.close(now)
        elif self.reset:  # nginx reset_timedout_connection on: SO_LINGER {1, 0}
            self.host.app(AppCall.ABORT, ep, why=AppWhy.SEND_TIMEOUT, value=self.timeout, nbytes=queued)
            ep.abort(now)
        else:
            self.host.app(AppCall.CLOSE, ep, why=AppWhy.SEND_TIMEOUT, value=self.timeout, nbytes=queued)
            ep.close(now)
        self.host.after_call()


@dataclass
class StalledReader:
    """The application owning socket ``sock`` does not read until ``resume_at``; then it reads everything and
    keeps reading (what it read is in ``host.received[sock]``)."""

    sim: Simulator
    host: SimHost
    resume_at: float
    sock: str = "c"
    resumed: bool = False

    def attach(self) -> StalledReader:
        self.host.policy.setdefault(self.sock, {})["auto_read"] = False
        self.host.reactions.append(self.react)
        self.sim.at(self.resume_at, self._resume)
        return self

    def react(self, host: SimHost, ep: Endpoint, ev: EndpointEvent, now: float) -> None:
        # connect() (re)sets the socket's policy; stop reading as soon as the connection is up.
        if type(ev) is Connected and not self.resumed and host.label_of(ep) == self.sock:
            host.policy.setdefault(self.sock, {})["auto_read"] = False

    def _resume(self) -> None:
        self.resumed = True
        ep = self.host.socks.get(self.sock)
        if ep is None:
            return
        # What was buffered; Linux keeps it readable even after a RST (tcp_recvmsg copies the receive queue
        # before it reports sk_err), and so does the model.
        data = ep.recv()
        self.host.app(AppCall.RECV, ep, nbytes=len(data), why=AppWhy.RESUME_READING)
        self.host.policy.setdefault(self.sock, {})["auto_read"] = True
        self.host.received.setdefault(self.sock, bytearray()).extend(data)
        if ep.state is not S.CLOSED:
            self.host.after_call()

"""asyncio streams over a tcpwise :class:`~tcpwise.stack.host.Host`: ``open_connection`` and ``start_server``.

Theory of operation
-------------------
asyncio's streams are built from a *transport* (moves bytes) and a *protocol* (reacts to them);
:class:`asyncio.StreamReader`/:class:`asyncio.StreamWriter` sit on a :class:`asyncio.StreamReaderProtocol`.
:class:`StackTransport` is an :class:`asyncio.Transport` whose bytes go to and come from one sans-IO
:class:`~tcpwise.endpoint.tcb.Endpoint`, so the reader and writer handed out here are asyncio's own classes and
code written for ``asyncio.open_connection`` runs unchanged.

Mapping of the socket semantics the kernel would give:

* ``write`` queues into the endpoint's send buffer (``Endpoint.send`` takes what fits, like a socket buffer);
  what does not fit waits in the transport and is topped up on every pump; above the high-water mark the
  protocol is paused, so ``drain()`` waits exactly while the peer does not take data;
* received data is pulled out of the endpoint (``recv``) as it arrives and fed to the protocol, unless reading
  is paused (the StreamReader's buffer is full): then it stays in the endpoint, whose advertised window
  closes — the peer sees the zero window a slow application causes;
* ``write_eof`` is ``shutdown(SHUT_WR)``, ``close`` is ``close(2)`` after the queued data (so unread received
  data means RST, as Linux does), ``abort`` is close with ``SO_LINGER {1, 0}`` (RST);
* errors the endpoint reports become the exceptions a socket raises (ECONNRESET -> ConnectionResetError,
  ETIMEDOUT -> TimeoutError, ...).
"""

from __future__ import annotations

import asyncio
import errno as errno_mod
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any, cast

from tcpwise.endpoint import (
    Closed,
    Connected,
    ConnectError,
    ConnectionError,
    DataReceived,
    EndOfStream,
    EndpointConfig,
    EndpointEvent,
    LocalProtocolError,
)
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.stack.host import Host
from tcpwise.vocab import TcpState

__all__ = ["StackTransport", "StackServer", "open_connection", "start_server", "os_error"]

ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None]

_HIGH_WATER = 64 * 1024
_LIMIT = 2**16
_PEER_FIN_STATES = frozenset({TcpState.CLOSE_WAIT, TcpState.CLOSING, TcpState.LAST_ACK, TcpState.TIME_WAIT})


def os_error(name: str, text: str = "") -> OSError:
    """The OSError subclass a socket raises for errno ``name`` (ECONNRESET -> ConnectionResetError ...)."""
    code = getattr(errno_mod, name, errno_mod.EIO)
    exc = OSError(code, text or f"{name}")
    return exc  # OSError(errno, ...) picks the subclass (ConnectionResetError, TimeoutError, ...) itself


class StackTransport(asyncio.Transport):
    """An asyncio transport over one endpoint of a :class:`Host`."""

    def __init__(
        self,
        host: Host,
        ep: Endpoint,
        protocol: asyncio.BaseProtocol,
        connecting: asyncio.Future[None] | None = None,
    ) -> None:
        super().__init__()
        self.host = host
        self.ep = ep
        self._protocol = protocol
        self._connecting = connecting
        self._buf = bytearray()
        self._high = _HIGH_WATER
        self._low = _HIGH_WATER // 4
        self._write_paused = False
        self._read_paused = False
        self._eof_wanted = False
        self._close_wanted = False
        self._closing = False
        self._lost = False
        self._made = False
        self._fin_seen = False
        self._eof_delivered = False
        self._error: OSError | None = None
        self._icmp_soft: str | None = None
        family = ":" in ep.laddr
        peer: tuple[Any, ...] = (ep.raddr, ep.rport, 0, 0) if family else (ep.raddr, ep.rport)
        sock: tuple[Any, ...] = (ep.laddr, ep.lport, 0, 0) if family else (ep.laddr, ep.lport)
        self._extra = {"peername": peer, "sockname": sock, "endpoint": ep, "host": host, "socket": None}
        host.watch(ep, self)

    # -- asyncio.Transport ---------------------------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_reading(self) -> bool:
        return not self._read_paused and not self._lost

    def pause_reading(self) -> None:
        self._read_paused = True

    def resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            self.host.loop.call_soon(self._pull)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = _HIGH_WATER if high is None else high
        self._low = self._high // 4 if low is None else low

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def get_write_buffer_size(self) -> int:
        return len(self._buf)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof_wanted:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data or self._closing or self._lost:
            return
        self._buf += data
        self._push()
        if len(self._buf) > self._high and not self._write_paused:
            self._write_paused = True
            self._protocol.pause_writing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._eof_wanted or self._lost:
            return
        self._eof_wanted = True
        self._push()

    def close(self) -> None:
        if self._closing or self._lost:
            return
        self._closing = True
        self._close_wanted = True
        self._read_paused = True
        self._push()

    def abort(self) -> None:
        if self._lost:
            return
        self._closing = True
        self._buf.clear()
        now = self.host.now()
        if self.ep.state is not TcpState.CLOSED:
            self.ep.abort(now)
            self.host.kick(self.ep)
        self._connection_lost(None)

    # -- moving bytes ---------------------------------------------------------------------------------------
    def _push(self) -> None:
        """Hand queued bytes to the endpoint; then the pending shutdown / close once everything is in."""
        ep = self.ep
        if self._lost:
            return
        if self._buf:
            try:
                # The endpoint only slices what it is given (and copies what fits): no need to copy it first.
                n = ep.send(cast(bytes, self._buf), self.host.now())
            except LocalProtocolError:
                self._buf.clear()  # the connection died under us; the error arrives as an event
                n = 0
            if n:
                del self._buf[:n]
                self.host.kick(ep)
            if self._write_paused and len(self._buf) <= self._low:
                self._write_paused = False
                self._protocol.resume_writing()
        if self._buf:
            self.host.want_push(id(self), self._push)
            return
        self.host.want_push(id(self), None)
        now = self.host.now()
        if self._close_wanted:
            self._close_wanted = False
            if ep.state is not TcpState.CLOSED:
                ep.close(now)
                self.host.kick(ep)
            self.host.watch(ep, None)  # the TCB lives on as an orphan; nobody listens to it any more
            self._connection_lost(None)
        elif self._eof_wanted and ep.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.SYN_RCVD):
            ep.shutdown(now)
            self.host.kick(ep)

    def _pull(self) -> None:
        if self._lost or not self._made:
            return
        ep = self.ep
        if not self._read_paused and ep.readable:
            data = ep.recv()
            self.host.kick(ep)  # reading opens the window: a window update may be due
            cast(asyncio.Protocol, self._protocol).data_received(data)
        if self._fin_seen and not self._eof_delivered and not ep.readable and not self._read_paused:
            self._eof_delivered = True
            keep_open = cast(asyncio.Protocol, self._protocol).eof_received()
            if not keep_open:
                self.close()

    # -- endpoint events ------------------------------------------------------------------------------------
    def on_event(self, ev: EndpointEvent) -> None:
        tev = type(ev)
        if tev is DataReceived:
            self._pull()
        elif tev is EndOfStream:
            self._fin_seen = True
            self._pull()
        elif tev is Connected:
            if self._connecting is not None and not self._connecting.done():
                self._connecting.set_result(None)
        elif tev is ConnectionError:
            name: str = ev.errno  # type: ignore[attr-defined]
            if name == "ETIMEDOUT" and self._icmp_soft:
                name = self._icmp_soft  # Linux reports the last ICMP soft error instead (tcp_write_err)
            self._error = os_error(name, ev.reason)  # type: ignore[attr-defined]
        elif tev is Closed:
            self._on_closed()

    def on_icmp_error(self, errno: str, hard: bool) -> None:
        if hard:
            self._error = os_error(errno)
        else:
            self._icmp_soft = errno

    def _on_closed(self) -> None:
        fut = self._connecting
        if fut is not None and not fut.done():
            fut.set_exception(
                self._error or os_error("ECONNREFUSED", "connection closed during the handshake")
            )
            self._lost = True
            return
        if self._error is None and self.ep.state is TcpState.CLOSED and not self._fin_seen:
            self._error = os_error("ECONNRESET", "connection closed")
        self._connection_lost(self._error)

    def _connection_lost(self, exc: OSError | None) -> None:
        if self._lost:
            return
        self._lost = True
        self.host.want_push(id(self), None)
        if self._write_paused:
            self._write_paused = False
            self._protocol.resume_writing()
        if self._made:
            self.host.loop.call_soon(self._protocol.connection_lost, exc)

    def _made_now(self) -> None:
        """connection_made, then whatever arrived before the application got the connection."""
        self._made = True
        self._protocol.connection_made(self)
        if self.ep.state in _PEER_FIN_STATES:
            self._fin_seen = True
        self._pull()
        if self.ep.state is TcpState.CLOSED and not self._lost:
            self._on_closed()


# ----------------------------------------------------------------------------------------------------------
# client and server
# ----------------------------------------------------------------------------------------------------------
async def open_connection(
    host: Host,
    addr: str,
    port: int,
    *,
    limit: int = _LIMIT,
    local_port: int | None = None,
    cfg: EndpointConfig | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` on a tcpwise host: connect to ``addr:port``, return (reader, writer).

    Raises what a socket would: ConnectionRefusedError (RST to the SYN), TimeoutError (tcp_syn_retries
    exhausted), OSError(EHOSTUNREACH ...) from an ICMP error, OSError(EADDRNOTAVAIL) without a free port."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    fut: asyncio.Future[None] = loop.create_future()
    try:
        ep = host.connect(addr, port, sport=local_port, cfg=cfg)
    except ConnectError as exc:
        raise os_error(exc.errno, str(exc)) from None
    transport = StackTransport(host, ep, protocol, connecting=fut)
    try:
        await fut
    except asyncio.CancelledError:
        transport.abort()
        raise
    transport._made_now()
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


class StackServer:
    """What :func:`start_server` returns; shaped like :class:`asyncio.Server`."""

    def __init__(self, host: Host, port: int, addrs: list[str]) -> None:
        self.host = host
        self.port = port
        self.addrs = addrs
        self._serving = True
        self._closed = host.loop.create_future()

    @property
    def sockets(self) -> tuple[()]:
        return ()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.host.loop

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        """Stop listening; connections nobody accepted yet are reset (Linux inet_csk_listen_stop)."""
        if not self._serving:
            return
        self._serving = False
        for a in self.addrs:
            self.host.unlisten(self.port, a)
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        await asyncio.shield(self._closed)

    async def start_serving(self) -> None:
        return None

    async def __aenter__(self) -> StackServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


async def start_server(
    host: Host,
    client_connected_cb: ClientConnected,
    addr: str | None = None,
    port: int = 0,
    *,
    limit: int = _LIMIT,
    backlog: int = 100,
    cfg: EndpointConfig | None = None,
) -> StackServer:
    """``asyncio.start_server`` on a tcpwise host: ``client_connected_cb(reader, writer)`` for every accepted
    connection. ``addr`` None listens on every address of the host (IPv4 and IPv6)."""
    if port <= 0 or port > 65535:
        raise ValueError(f"port {port} out of range 1-65535 (a tcpwise host does not pick listening ports)")
    loop = asyncio.get_running_loop()

    def accepted(ep: Endpoint) -> None:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)
        StackTransport(host, ep, protocol)._made_now()

    if addr is not None:
        addr = ipaddress.ip_address(addr).compressed
    addrs = host.listen(port, accepted, addr=addr, backlog=backlog, cfg=cfg)
    return StackServer(host, port, addrs)

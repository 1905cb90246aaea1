"""A small HTTP/1.1 server for a read-only endpoint that holds under hostile load (asyncio, one thread).

Theory of operation
-------------------
The exporter is bound to 0.0.0.0 so Prometheus can reach it — and so can anyone else. What a thread-per-
connection server (``http.server``, prometheus_client's ``start_http_server``) gets wrong, and what this one
does instead:

- **Connection cap with eviction, not refusal.** At most ``max_conns`` connections are open: the server
  accepts one connection at a time, and only when there is room. At the cap, the connection that has waited
  longest *without having completed a request* is closed to make room (idle or trickling clients are the cheap
  attack; a scraper sends its request at once); if every open connection is being answered, accepting waits
  for one to finish while newcomers queue in the kernel backlog. Open fds therefore stay below ``max_conns`` + a
  few, whatever the attacker does, so ``accept()`` does not meet the fd limit (if it does anyway, the error is
  logged, rate-limited, and accepting pauses 50 ms instead of spinning).
- **Deadlines.** The request head must arrive complete within ``header_timeout`` of the connection (or of the
  previous response, on keep-alive: ``idle_timeout``); the head may not exceed ``max_header`` bytes (431). A
  response must be written within ``write_timeout`` (a reader that never reads is cut). Methods other than GET
  and HEAD get 405, other paths 404; bodies are not accepted (411/413 instead of reading them).
- **A real backlog.** ``listen(backlog)`` (default 1024, capped by net.core.somaxconn by the kernel), so bursts
  of honest connections queue in the kernel instead of being dropped.
- **Bounded work.** The page is produced by ``render()`` in one worker thread; scrapes that arrive while one is
  being rendered wait for that same render (coalescing), and a page younger than ``min_interval`` is served
  again: 200 concurrent scrapes cost one collection, not 200.
- **Rate-limited logging.** Every problem is logged through :class:`RateLimitedLog` (at most ``burst`` lines per
  kind per window, then one line saying how many were suppressed) — and the event loop's own exception handler
  too, so an accept() error storm cannot flood stderr.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["ServerConfig", "BoundedHTTPServer", "RateLimitedLog"]

_EVICT_SLACK = 32  # fds of evicted connections not yet released, on top of the cap


class RateLimitedLog:
    """``log(kind, text)``: at most ``burst`` lines per ``kind`` per ``window`` seconds, then a summary line."""

    def __init__(
        self, out: TextIO | None = None, burst: int = 5, window: float = 10.0, prefix: str = ""
    ) -> None:
        self.out = out if out is not None else sys.stderr
        self.burst = burst
        self.window = window
        self.prefix = prefix
        self._state: dict[str, list[float]] = {}  # kind -> [window start, lines, suppressed]
        self._lock = threading.Lock()
        self.lines = 0

    def log(self, kind: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            st = self._state.get(kind)
            if st is None or now - st[0] >= self.window:
                if st is not None and st[2]:
                    self._write(
                        f"{kind}: {int(st[2])} similar messages suppressed in the last {self.window:g} s"
                    )
                st = self._state[kind] = [now, 0, 0]
            if st[1] < self.burst:
                st[1] += 1
                self._write(text)
            else:
                st[2] += 1

    def _write(self, text: str) -> None:
        self.lines += 1
        try:
            self.out.write(f"{self.prefix}{text}\n")
            self.out.flush()
        except (OSError, ValueError):
            pass


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 9477
    path: str = "/metrics"
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    max_conns: int = 512
    backlog: int = 1024
    header_timeout: float = 5.0
    idle_timeout: float = 15.0
    write_timeout: float = 10.0
    max_header: int = 8192
    min_interval: float = 0.5
    max_requests_per_conn: int = 1000


@dataclass
class _Conn:
    writer: asyncio.StreamWriter
    t0: float
    busy: bool = False  # a complete request is being answered
    requests: int = 0
    evicted: bool = False


@dataclass
class _Stats:
    accepted: int = 0
    evicted: int = 0
    header_timeouts: int = 0
    bad_requests: int = 0
    responses: int = 0
    renders: int = 0
    render_failures: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class BoundedHTTPServer:
    """Serve ``render()`` (bytes) at ``cfg.path``. Start with :meth:`serve_forever` or :meth:`start_in_thread`."""

    def __init__(
        self, render: Callable[[], bytes], cfg: ServerConfig, log: RateLimitedLog | None = None
    ) -> None:
        self.render = render
        self.cfg = cfg
        self.log = log or RateLimitedLog(prefix="tcpwise exporter: ")
        self.stats = _Stats()
        self.conns: dict[int, _Conn] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tcpwise-render")
        self._inflight: asyncio.Future[bytes] | None = None
        self._page: tuple[float, bytes] | None = None
        self.n_open = 0  # accepted and not yet finished (registered in conns or about to be)
        self.evicting = 0  # evicted, their tasks not yet finished
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = threading.Event()
        self.ready = threading.Event()
        self.address: tuple[str, int] | None = None

    # -- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind and listen, then accept in our own loop: one accept at a time, each only once there is room
        (asyncio.start_server would accept up to ``backlog`` connections in one go, past any cap and into the
        fd limit)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        loop.set_exception_handler(self._loop_error)
        info = socket.getaddrinfo(
            self.cfg.host or None, self.cfg.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        lsock = socket.socket(info[0], socket.SOCK_STREAM)
        try:
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind(info[4])
            lsock.listen(self.cfg.backlog)
            lsock.setblocking(False)
        except BaseException:
            lsock.close()
            raise
        self._lsock = lsock
        self.address = lsock.getsockname()[:2]
        self._accept_task = asyncio.ensure_future(self._accept_loop())
        self.ready.set()

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        await self.start()
        try:
            await (stop.wait() if stop is not None else asyncio.Event().wait())
        finally:
            await self.close()

    async def close(self) -> None:
        task = getattr(self, "_accept_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        lsock = getattr(self, "_lsock", None)
        if lsock is not None:
            lsock.close()
        for c in list(self.conns.values()):
            c.writer.transport.abort()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        lsock = self._lsock
        while True:
            if self.n_open >= self.cfg.max_conns + _EVICT_SLACK:
                await asyncio.sleep(0.005)  # evicted connections still hold their fds: let them go first
                continue
            if self.n_open - self.evicting >= self.cfg.max_conns and not self._make_room():
                await asyncio.sleep(0.01)  # every slot is answering a request: let one finish
                continue
            try:
                sock, _ = await loop.sock_accept(lsock)
            except (ConnectionAbortedError, InterruptedError):
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.log.log("accept", f"accept() failed: {exc.strerror}; pausing 50 ms")
                    self._make_room()
                    await asyncio.sleep(0.05)
                    continue
                raise
            self.stats.accepted += 1
            self.n_open += 1
            asyncio.ensure_future(self._client_sock(sock))

    async def _client_sock(self, sock: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=self.cfg.max_header)
        except OSError:
            sock.close()
            self.n_open -= 1
            return
        try:
            await self._client(reader, writer)
        finally:
            self.n_open -= 1

    def start_in_thread(self) -> threading.Thread:
        """Run the server on its own event loop in a daemon thread (tests, benchmarks); :meth:`stop` ends it."""
        stop_holder: dict[str, asyncio.Event] = {}

        def main() -> None:
            async def go() -> None:
                stop_holder["e"] = asyncio.Event()
                await self.serve(stop_holder["e"])

            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(go())
            finally:
                loop.close()
                self._stopped.set()

        th = threading.Thread(target=main, name="tcpwise-http", daemon=True)
        th.start()
        self._stop_holder = stop_holder
        if not self.ready.wait(10):
            raise RuntimeError("HTTP server did not start")
        return th

    def stop(self) -> None:
        loop, holder = self._loop, getattr(self, "_stop_holder", {})
        if loop is not None and "e" in holder:
            loop.call_soon_threadsafe(holder["e"].set)
            self._stopped.wait(10)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
        exc = ctx.get("exception")
        msg = ctx.get("message", "event loop error")
        self.log.log("loop", f"{msg}: {type(exc).__name__}: {exc}" if exc else str(msg))

    # -- connections ------------------------------------------------------------------------------------
    def _make_room(self) -> bool:
        """At the cap: close the oldest connection that has not completed a request. False if none."""
        idle = [c for c in self.conns.values() if not c.busy]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.t0)
        self.stats.evicted += 1
        victim.evicted = True
        self.evicting += 1  # its slot frees when its task ends; do not evict again for the same room
        victim.writer.transport.abort()
        self.conns.pop(id(victim.writer), None)
        return True

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer, time.monotonic())
        self.conns[id(writer)] = conn
        try:
            await self._serve_conn(reader, conn)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback per connection
            self.log.log("handler", f"error while serving a client: {type(exc).__name__}: {exc}")
        finally:
            self.conns.pop(id(writer), None)
            if conn.evicted:
                self.evicting -= 1
            if not writer.transport.is_closing():
                writer.close()

    async def _serve_conn(self, reader: asyncio.StreamReader, conn: _Conn) -> None:
        timeout = self.cfg.header_timeout
        while conn.requests < self.cfg.max_requests_per_conn:
            try:
                head = await asyncio.wait_for(self._read_head(reader), timeout)
            except TimeoutError:
                if conn.requests == 0:
                    self.stats.header_timeouts += 1
                return
            if head is None:
                return
            if head == b"":  # too large
                await self._respond(conn, 431, b"request head too large\n", close=True)
                return
            conn.busy = True
            keep = await self._handle(conn, head)
            conn.busy = False
            conn.requests += 1
            conn.t0 = time.monotonic()  # for eviction: waiting again
            if not keep:
                return
            timeout = self.cfg.idle_timeout

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes | None:
        """The request head up to the blank line; None at EOF before a request, b"" when too large."""
        try:
            data = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return b""
        except asyncio.IncompleteReadError as exc:
            if exc.partial and len(exc.partial) > self.cfg.max_header:
                return b""
            return None
        if len(data) > self.cfg.max_header:
            return b""
        return data

    async def _handle(self, conn: _Conn, head: bytes) -> bool:
        try:
            line, _, rest = head.partition(b"\r\n")
            method, target, version = line.decode("latin-1").split(" ")
        except ValueError:
            self.stats.bad_requests += 1
            await self._respond(conn, 400, b"bad request line\n", close=True)
            return False
        headers = rest.lower()
        close = version != "HTTP/1.1" or b"connection: close" in headers
        if (
            b"content-length:" in headers
            and b"content-length: 0" not in headers
            or b"transfer-encoding:" in headers
        ):
            await self._respond(conn, 413, b"no request bodies here\n", close=True)
            return False
        if method not in ("GET", "HEAD"):
            await self._respond(conn, 405, b"only GET and HEAD\n", close=True, extra=b"Allow: GET, HEAD\r\n")
            return False
        path = target.split("?", 1)[0]
        if path == "/":
            body = f'<html><body><a href="{self.cfg.path}">{self.cfg.path}</a></body></html>\n'.encode()
            await self._respond(
                conn, 200, body, close=close, ctype=b"text/html; charset=utf-8", head=method == "HEAD"
            )
            return not close
        if path != self.cfg.path:
            await self._respond(conn, 404, b"not found\n", close=close)
            return not close
        try:
            page = await self._page_now()
        except Exception as exc:  # noqa: BLE001
            self.stats.render_failures += 1
            self.log.log("render", f"could not produce {self.cfg.path}: {type(exc).__name__}: {exc}")
            await self._respond(conn, 503, b"metrics temporarily unavailable\n", close=True)
            return False
        await self._respond(
            conn, 200, page, close=close, ctype=self.cfg.content_type.encode(), head=method == "HEAD"
        )
        return not close

    async def _page_now(self) -> bytes:
        now = time.monotonic()
        if self._page is not None and now - self._page[0] < self.cfg.min_interval:
            return self._page[1]
        if self._inflight is None or self._inflight.done():
            loop = asyncio.get_running_loop()
            self._inflight = asyncio.ensure_future(loop.run_in_executor(self._pool, self._render_counted))
        page = await asyncio.shield(self._inflight)
        return page

    def _render_counted(self) -> bytes:
        self.stats.renders += 1
        page = self.render()
        self._page = (time.monotonic(), page)
        return page

    async def _respond(
        self,
        conn: _Conn,
        status: int,
        body: bytes,
        close: bool,
        ctype: bytes = b"text/plain; charset=utf-8",
        head: bool = False,
        extra: bytes = b"",
    ) -> None:
        self.stats.responses += 1
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
        hdr = (
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n".encode()
            + b"Content-Type: "
            + ctype
            + f"\r\nContent-Length: {len(body)}\r\n".encode()
            + (b"Connection: close\r\n" if close else b"Connection: keep-alive\r\n")
            + extra
            + b"\r\n"
        )
        conn.writer.write(hdr if head else hdr + body)
        try:
            await asyncio.wait_for(conn.writer.drain(), self.cfg.write_timeout)
        except TimeoutError:
            self.log.log("write", "a client did not read its response in time: connection closed")
            conn.writer.transport.abort()
            raise ConnectionError("write timeout") from None
        if close:
            conn.writer.close()

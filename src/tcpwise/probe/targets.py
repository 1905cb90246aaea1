"""Reference targets for the probe: one tiny HTTP/1.1 keep-alive server written three ways.

``python -m tcpwise.probe.targets MODE --port P [options]`` serves ``GET`` requests with a body of ``--body``
bytes, keeps connections open between requests (HTTP/1.1 keep-alive) and closes after a request that says
``Connection: close``. The modes differ only in how they treat misbehaving clients:

* ``plain`` — what most first versions look like: ``asyncio.start_server`` with no timeouts at all, and a
  handler that returns on end-of-file *without* ``writer.close()`` (the CLOSE_WAIT leak). ``--idle S`` adds the
  naive idle timeout (``wait_for`` then ``close()``), which closes abruptly under a request in flight.
* ``guard`` — the same handler under :mod:`tcpwise.guard`: first-byte / idle / write / lifetime deadlines,
  keepalive with TCP_USER_TIMEOUT, always-close, and a graceful close that keeps reading until the client's FIN.
* ``naive`` — a blocking, single-threaded accept loop without error handling: one client at a time, and an
  unhandled ECONNRESET ends the process.

They exist so that the probe's verdicts can be checked against servers whose behaviour is known (tests and
docs/probe.md); they are not examples to copy — except ``guard``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

__all__ = ["main", "respond", "read_request"]

_MAX_HEADER = 16 * 1024


def respond(request: bytes, body: int) -> tuple[bytes, bool]:
    """The response to one request head and whether to keep the connection open."""
    close = b"connection: close" in request.lower()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {body}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    ).encode()
    return head + b"x" * body, not close


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request head (up to the blank line), or None at end-of-file."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        return None


def _plain_handler(body: int, idle: float | None):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            if idle is None:
                req = await read_request(reader)
            else:
                try:
                    req = await asyncio.wait_for(read_request(reader), idle)
                except TimeoutError:
                    writer.close()  # the naive idle timeout: close(2) whatever may be arriving
                    return
            if req is None:
                return  # the bug: no writer.close() -> the socket stays in CLOSE_WAIT
            data, keep = respond(req, body)
            writer.write(data)
            await writer.drain()
            if not keep:
                writer.close()
                return

    return handle


async def _guarded_handler_factory(body: int):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            req = await read_request(reader)
            if req is None:
                return  # the guard closes when the handler returns
            data, keep = respond(req, body)
            writer.write(data)
            await writer.drain()
            if not keep:
                return

    return handle


async def _serve_plain(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(
        _plain_handler(args.body, args.idle), args.addr, args.port, backlog=args.backlog
    )
    print(f"plain target on port {args.port}", flush=True)
    async with server:
        await server.serve_forever()


async def _serve_guard(args: argparse.Namespace) -> None:
    from tcpwise.guard import Guard, GuardConfig, Keepalive, Limits, Timeouts

    cfg = GuardConfig(
        limits=Limits(max_per_ip=args.per_ip),
        timeouts=Timeouts(
            first_byte=args.first_byte,
            idle=args.idle,
            write=args.write,
            lifetime=args.lifetime,
            drain=args.drain,
        ),
        keepalive=Keepalive(idle=args.ka_idle, interval=1, count=2, user_timeout=args.user_timeout),
        close_mode="abortive" if args.abortive else "graceful",
    )
    guard = Guard(await _guarded_handler_factory(args.body), cfg)
    server = await guard.start_server(args.addr, args.port, backlog=args.backlog)
    print(f"guard target on port {args.port}", flush=True)
    async with server:
        await server.serve_forever()


def _naive_client(conn: socket.socket, body: int) -> None:
    buf = b""
    while True:
        chunk = conn.recv(65536)  # an ECONNRESET here, or in sendall below, ends the process
        if not chunk:
            conn.close()
            return
        buf += chunk
        while b"\r\n\r\n" in buf:
            req, buf = buf.split(b"\r\n\r\n", 1)
            data, keep = respond(req + b"\r\n\r\n", body)
            conn.sendall(data)
            if not keep:
                conn.close()
                return


def _serve_naive(args: argparse.Namespace) -> None:
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.addr or "::", args.port))  # "::" without IPV6_V6ONLY takes IPv4 too
    s.listen(args.backlog)
    print(f"naive target on port {args.port}", flush=True)
    while True:
        conn, _ = s.accept()
        _naive_client(conn, args.body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tcpwise.probe.targets", description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("plain", "guard", "naive"))
    p.add_argument("--addr", default=None, help="address to listen on (default: every IPv4 and IPv6 address)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--body", type=int, default=65536, help="response body bytes (default 65536)")
    p.add_argument("--backlog", type=int, default=100, help="listen backlog (default 100)")
    p.add_argument(
        "--idle", type=float, default=None, help="idle timeout s (plain: naive close; guard: idle)"
    )
    p.add_argument("--first-byte", type=float, default=2.0, help="guard: first-byte timeout s (default 2)")
    p.add_argument("--write", type=float, default=2.0, help="guard: stalled-write timeout s (default 2)")
    p.add_argument("--lifetime", type=float, default=None, help="guard: connection lifetime s (default none)")
    p.add_argument("--drain", type=float, default=1.0, help="guard: graceful-close wait s (default 1)")
    p.add_argument("--ka-idle", type=float, default=2.0, help="guard: keepalive idle s (default 2)")
    p.add_argument("--user-timeout", type=float, default=3.0, help="guard: TCP_USER_TIMEOUT s (default 3)")
    p.add_argument("--per-ip", type=int, default=None, help="guard: connections per source IP (default none)")
    p.add_argument("--abortive", action="store_true", help="guard: close timed-out connections with RST")
    args = p.parse_args(argv)
    try:
        if args.mode == "plain":
            asyncio.run(_serve_plain(args))
        elif args.mode == "guard":
            if args.idle is None:
                args.idle = 2.0
            asyncio.run(_serve_guard(args))
        else:
            _serve_naive(args)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

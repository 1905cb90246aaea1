"""``tcpwise guard ...``: a guarded echo server to test clients against, and the heartbeat arithmetic check.

Import stays cheap (argparse only); asyncio and the guard are imported inside the handlers.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]

EPILOG = """examples:
  tcpwise guard heartbeat --interval 30 --server-idle 10    is this heartbeat safe? (no: exit 1, says why)
  tcpwise guard serve --port 7070 --idle 10 --per-ip 20     guarded echo server; Ctrl-C drains and prints counts
  tcpwise guard serve --port 7070 --idle 5 --rst            time out with RST: no TIME_WAIT on the server
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "guard",
        help="asyncio server remedies: limits, timeouts, keepalive, close modes",
        description="Guarded echo server and heartbeat check (library: tcpwise.guard, docs/guard.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gsub = p.add_subparsers(dest="guard_command", metavar="SUBCOMMAND")
    p.set_defaults(handler=lambda _a: (p.print_help(), 2)[1])

    hb = gsub.add_parser("heartbeat", help="check a client heartbeat interval against a server idle timeout")
    hb.add_argument("--interval", type=float, required=True, help="client heartbeat interval, seconds")
    hb.add_argument("--server-idle", type=float, required=True, help="server idle timeout, seconds")
    hb.set_defaults(handler=_heartbeat)

    s = gsub.add_parser("serve", help="run a guarded echo server on loopback until Ctrl-C/SIGTERM")
    s.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=7070)
    s.add_argument("--max-conns", type=int, default=None)
    s.add_argument("--per-ip", type=int, default=None)
    s.add_argument("--rate", type=float, default=None, help="new connections per second per source")
    s.add_argument("--first-byte", type=float, default=None)
    s.add_argument("--idle", type=float, default=None)
    s.add_argument("--rst", action="store_true", help="abortive close (RST) on timeouts")
    s.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    s.add_argument("--drain", type=float, default=5.0)
    s.set_defaults(handler=_serve)


def _heartbeat(args: argparse.Namespace) -> int:
    import warnings

    from tcpwise.errors import UsageError
    from tcpwise.guard.heartbeat import HeartbeatMismatch, HeartbeatWarning, check_heartbeat

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            verdict = check_heartbeat(args.interval, args.server_idle)
    except HeartbeatMismatch as exc:
        print(f"MISMATCH: {exc}")
        return 1
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if any(issubclass(w.category, HeartbeatWarning) for w in caught):
        print(f"WARNING: {verdict}")
        return 0
    print(verdict)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import ipaddress
    import json
    import signal

    from tcpwise.errors import UsageError
    from tcpwise.guard import Guard, GuardConfig, Limits, Timeouts
    from tcpwise.sockets.testing import run

    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            raise UsageError(f"--host must be a loopback address (127.0.0.0/8 or ::1), got {args.host}")
        cfg = GuardConfig(
            limits=Limits(max_connections=args.max_conns, max_per_ip=args.per_ip, accept_rate=args.rate),
            timeouts=Timeouts(first_byte=args.first_byte, idle=args.idle),
            close_mode="abortive" if args.rst else "graceful",
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def main() -> int:
        guard = Guard(echo, cfg)
        try:
            server = await guard.start_server(args.host, args.port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
        print(
            f"guarded echo server on {args.host}:{server.sockets[0].getsockname()[1]} (Ctrl-C drains)",
            flush=True,
        )
        left = await guard.install_signal_handlers(args.drain, (signal.SIGTERM, signal.SIGINT))
        print(json.dumps({"closed_at_deadline": left, **guard.stats()}))
        return 0

    return run(main(), args.loop)

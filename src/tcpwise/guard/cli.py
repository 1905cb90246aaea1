"""``tcpwise guard ...``: a guarded echo server to test clients against, and the heartbeat arithmetic check.

Import stays cheap (argparse only); asyncio and the guard are imported inside the handlers.
"""

from __future__ import annotations

import argparse
from typing import Any

from tcpwise.term import HelpFormatter

__all__ = ["register"]

EPILOG = """examples:
  tcpwise guard heartbeat --interval 30 --server-idle 10
      is this heartbeat safe? (no: exit 1, and it says why)
  tcpwise guard serve --port 7070
      guarded echo server with the hostile-load defaults
  tcpwise guard serve --port 7070 --idle 10 --per-ip 20
      shorter idle timeout, at most 20 connections per source
  tcpwise guard serve --port 7070 --graceful
      time out with FIN (the server then keeps TIME_WAIT)
  tcpwise guard serve --port 0 --log-format json
      any free port; one JSON log record per line
"""

SERVE_EPILOG = """The defaults hold under hostile load (docs/guard.md): a silent connection is
cut after --first-byte; a request trickling in slower than --min-rate bytes/s
after --min-rate-grace, or taking longer than --request, is cut; an idle one
after --idle. At the connection cap (--max-conns, lowered to fit RLIMIT_NOFILE
minus --fd-headroom) connections that have not completed a request are evicted
from the source holding the most; accepting pauses before the descriptor
limit. Log records are rate-limited per kind (--log-rate); the counters stay
exact and are printed as JSON when the server drains (Ctrl-C, SIGTERM).

examples:
  tcpwise guard serve --port 7070
  tcpwise guard serve --port 7070 --max-conns 500 --per-ip 50 --rate 20
  tcpwise guard serve --port 7070 --min-rate 500 --request 5 --log-level ERROR
"""


MAX_BACKLOG = 65535  # listen(2)'s queue is capped by net.core.somaxconn anyway (4096 by default)


def _positive(kind: type[Any]) -> Any:
    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 0 < v < float("inf"):
            raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {text}")
        return v

    return parse


def _port(text: str) -> int:
    """A TCP port, 0..65535 (0: any free one)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {v}")
    return v


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "guard",
        help="asyncio server remedies: limits, timeouts, keepalive, close modes",
        description="Guarded echo server and heartbeat check (library: tcpwise.guard, docs/guard.md).",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    gsub = p.add_subparsers(dest="guard_command", metavar="SUBCOMMAND")
    p.set_defaults(handler=lambda _a: (p.print_help(), 2)[1])

    hb = gsub.add_parser(
        "heartbeat",
        help="check a client heartbeat interval against a server idle timeout",
        description="Is a client's heartbeat frequent enough for the server's idle timeout, even when one "
        "heartbeat is lost? Exit 1 (MISMATCH) when the server would close idle connections first.",
        epilog="examples:\n"
        "  tcpwise guard heartbeat --interval 30 --server-idle 10   MISMATCH, exit 1\n"
        "  tcpwise guard heartbeat --interval 4 --server-idle 10    ok\n",
        formatter_class=HelpFormatter,
    )
    hb.add_argument(
        "--interval",
        type=float,
        required=True,
        metavar="S",
        help="client heartbeat interval, seconds (required)",
    )
    hb.add_argument(
        "--server-idle",
        type=float,
        required=True,
        metavar="S",
        help="server idle timeout, seconds (required)",
    )
    hb.set_defaults(handler=_heartbeat)

    s = gsub.add_parser(
        "serve",
        help="run a guarded echo server on loopback until Ctrl-C/SIGTERM",
        description="Guarded line-echo server on loopback: every line received is sent back.",
        epilog=SERVE_EPILOG,
        formatter_class=HelpFormatter,
    )
    pos_f, pos_i = _positive(float), _positive(int)
    s.add_argument(
        "--host",
        metavar="ADDR",
        default="127.0.0.1",
        help="loopback address to listen on (default 127.0.0.1)",
    )
    s.add_argument(
        "--port", metavar="PORT", type=_port, default=7070, help="TCP port, 0 for any free one (default 7070)"
    )
    s.add_argument(
        "--backlog",
        metavar="N",
        type=pos_i,
        default=4096,
        help=f"listen(2) accept queue, 1..{MAX_BACKLOG} (default 4096)",
    )
    s.add_argument(
        "--max-conns",
        metavar="N",
        type=pos_i,
        default=None,
        help="connection cap (default: RLIMIT_NOFILE - headroom)",
    )
    s.add_argument(
        "--fd-headroom",
        metavar="N",
        type=pos_i,
        default=None,
        help="fds kept free (default: limit/16, >= 16)",
    )
    s.add_argument(
        "--per-ip",
        metavar="N",
        type=pos_i,
        default=None,
        help="connections per source address (default none)",
    )
    s.add_argument(
        "--rate", metavar="N", type=pos_f, default=None, help="new connections/s per source (default none)"
    )
    s.add_argument(
        "--first-byte", metavar="SEC", type=pos_f, default=5.0, help="seconds to first byte (default 5)"
    )
    s.add_argument(
        "--idle", metavar="SEC", type=pos_f, default=30.0, help="seconds without a byte (default 30)"
    )
    s.add_argument(
        "--request",
        metavar="SEC",
        type=pos_f,
        default=10.0,
        help="seconds for one whole request (default 10)",
    )
    s.add_argument(
        "--min-rate",
        metavar="B/S",
        type=pos_f,
        default=100.0,
        help="bytes/s a request must keep (default 100)",
    )
    s.add_argument(
        "--min-rate-grace",
        metavar="SEC",
        type=pos_f,
        default=2.0,
        help="seconds before --min-rate (default 2)",
    )
    s.add_argument("--graceful", action="store_true", help="close on timeout with FIN (default: RST)")
    s.add_argument(
        "--rst", action="store_true", help="close on timeout with RST (the default; kept for old scripts)"
    )
    s.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="event loop (default asyncio)"
    )
    s.add_argument(
        "--drain",
        metavar="SEC",
        type=pos_f,
        default=5.0,
        help="seconds to finish on Ctrl-C/SIGTERM (default 5)",
    )
    s.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="log threshold on stderr (default INFO: refusals, evictions, timeouts)",
    )
    s.add_argument(
        "--log-rate",
        metavar="N",
        type=pos_f,
        default=1.0,
        help="records/s per kind, after a burst of 20 (default 1)",
    )
    s.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="stderr log format (default text)"
    )
    s.set_defaults(handler=_serve)


def _heartbeat(args: argparse.Namespace) -> int:
    import math
    import warnings

    from tcpwise.errors import UsageError
    from tcpwise.guard.heartbeat import HeartbeatMismatch, HeartbeatWarning, check_heartbeat

    if not all(math.isfinite(x) for x in (args.interval, args.server_idle)):
        raise UsageError("heartbeat interval and server idle timeout must be finite numbers of seconds")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            verdict = check_heartbeat(args.interval, args.server_idle)
    except HeartbeatMismatch as exc:
        _say(f"MISMATCH: {exc}")
        return 1
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if any(issubclass(w.category, HeartbeatWarning) for w in caught):
        _say(f"WARNING: {verdict}")
        return 0
    _say(str(verdict))
    return 0


def _say(text: str) -> None:
    """One verdict, wrapped to 80 columns (or a narrower terminal)."""
    from tcpwise.term import output_width, wrap

    print("\n".join(wrap(text, output_width() or 80)))


def _serve_config(args: argparse.Namespace) -> Any:
    import ipaddress

    from tcpwise.errors import UsageError
    from tcpwise.guard import GuardConfig, Limits, Timeouts
    from tcpwise.sockets.fds import nofile_limit, open_fd_count

    if not 1 <= args.backlog <= MAX_BACKLOG:
        # listen(2) takes an int and the kernel caps it at net.core.somaxconn: 2**63 was an OverflowError.
        raise UsageError(f"--backlog must be between 1 and {MAX_BACKLOG}, not {args.backlog}")
    if args.fd_headroom is not None:
        limit, in_use = nofile_limit(), open_fd_count()
        if args.fd_headroom >= limit - in_use:
            # Every free descriptor would be headroom: accepting would pause at once and clients wait, silently.
            raise UsageError(
                f"--fd-headroom {args.fd_headroom} leaves no descriptor for a connection: the limit "
                f"(RLIMIT_NOFILE, ulimit -n) is {limit} and {in_use} are in use; use fewer, or raise the limit"
            )
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            raise UsageError(f"--host must be a loopback address (127.0.0.0/8 or ::1), got {args.host}")
        return GuardConfig(
            limits=Limits(
                max_connections=args.max_conns,
                max_per_ip=args.per_ip,
                accept_rate=args.rate,
                fd_headroom=args.fd_headroom,
            ),
            timeouts=Timeouts(
                first_byte=args.first_byte,
                idle=args.idle,
                request=args.request,
                min_rate=args.min_rate,
                min_rate_grace=args.min_rate_grace,
                drain=min(args.drain, 5.0),
            ),
            close_mode="graceful" if args.graceful else "abortive",
            log_rate=args.log_rate,
            handler_start="first_byte",  # a line protocol: the client speaks first
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _setup_logging(level: str, fmt: str) -> None:
    import logging
    import sys

    from tcpwise.sockets.logfmt import JsonFormatter

    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    lg = logging.getLogger("tcpwise.guard")
    lg.handlers[:] = [h]
    lg.setLevel(level)
    lg.propagate = False


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from tcpwise.errors import STOP_SIGNALS, UsageError
    from tcpwise.guard import Guard
    from tcpwise.sockets.fds import nofile_limit
    from tcpwise.sockets.testing import run

    cfg = _serve_config(args)
    _setup_logging(args.log_level, args.log_format)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Line echo: a line is a request, so a client that never finishes one is on the request clock.
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except ValueError:  # a line longer than the stream limit (64 KiB): drop the connection
            return

    async def main() -> int:
        guard = Guard(echo, cfg)
        try:
            server = await guard.start_server(args.host, args.port, backlog=args.backlog)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
        t = cfg.timeouts
        print(
            f"guarded line-echo server on {args.host}:{server.sockets[0].getsockname()[1]} (Ctrl-C drains)\n"
            f"  cap {guard.admission.cap} connections (RLIMIT_NOFILE {nofile_limit()}), backlog {args.backlog}\n"
            f"  timeouts: first byte {t.first_byte:g} s, idle {t.idle:g} s, request {t.request:g} s, "
            f"min rate {t.min_rate:g} B/s after {t.min_rate_grace:g} s",
            flush=True,
        )
        left = await guard.install_signal_handlers(args.drain, STOP_SIGNALS)
        print(json.dumps({"closed_at_deadline": left, **guard.stats()}))
        return 0

    return int(run(main(), args.loop))

"""``tcpwise watch``: argparse registration and the handler (heavy imports inside it)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.linux.kernel import netns_arg
from tcpwise.term import HelpFormatter, add_color_option

__all__ = ["register"]

STATES = "CLOSED LISTEN SYN_SENT SYN_RCVD ESTABLISHED FIN_WAIT_1 FIN_WAIT_2 CLOSE_WAIT CLOSING LAST_ACK TIME_WAIT".split()
CONN_FORMATS = ("text", "svg", "html", "mermaid", "json")

EPILOG = """examples:
  tcpwise watch                           each connection's life as it ends
  tcpwise watch --port 443 --duration 10  10 s of connections on port 443
  tcpwise watch --format json --duration 5 | jq -c 'select(.closer=="local")'
  tcpwise watch --format zeek > conn.log  a Zeek conn.log, rows as they end
  tcpwise watch --comm nginx --state CLOSE_WAIT
  tcpwise watch --netns blue              one namespace (see `ip netns list`)
  tcpwise watch --port 8080 --conn        draw each finished connection
  tcpwise watch --port 8080 --conn --conn-format svg -o c.svg   the first
  tcpwise watch --poll --interval 0.05    sock_diag polling, no tracepoints
  tcpwise watch --clean                   remove instances of killed watches
"""


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0: {text!r}")
    return v


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {text!r}")
    return int(text)


def _state(text: str) -> str:
    s = text.upper().replace("-", "_")
    if s not in STATES:
        raise argparse.ArgumentTypeError(f"unknown state {text!r} (valid: {', '.join(STATES)})")
    return s


def _addr(text: str) -> str:
    """An IPv4 or IPv6 address, as the kernel prints it (a typo would silently match nothing)."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


COMM_MAX = 15  # TASK_COMM_LEN - 1: the kernel keeps the first 15 bytes of a process name


def _comm(text: str) -> str:
    """A process name as the kernel keeps it: a longer one can never match (the kernel cut it to 15 bytes)."""
    if not text:
        raise argparse.ArgumentTypeError("the process name is empty")
    if len(text.encode()) > COMM_MAX:
        raise argparse.ArgumentTypeError(
            f"{text!r} is longer than {COMM_MAX} bytes and can never match: the kernel keeps the first {COMM_MAX} "
            f"of a process name (TASK_COMM_LEN), give {text.encode()[:COMM_MAX].decode(errors='ignore')!r}"
        )
    return text


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1: {text!r}")
    return int(text)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "watch",
        help="every TCP connection's life on this host, live, from kernel tracepoints",
        description="Watch every TCP socket on this host open, change state and end: who closed\n"
        "first (and so holds TIME_WAIT), resets by origin and state, retransmissions,\n"
        "duration, owning process. Reads the kernel's tracepoints (root); falls back to\n"
        "sock_diag polling when it cannot. One row per socket when it ends; sockets\n"
        "still open when the watch stops are listed as open.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--duration", type=_positive, metavar="S", help="stop after S seconds (default: until Ctrl-C)"
    )
    p.add_argument("--count", type=_count, metavar="N", help="stop after N connections (default: no limit)")
    p.add_argument(
        "--format",
        choices=("table", "json", "zeek"),
        default="table",
        help="table (default), json (JSON Lines + a summary line), zeek (conn.log)",
    )
    p.add_argument(
        "--port", type=_port, action="append", metavar="P", help="local or remote port P (repeatable)"
    )
    p.add_argument(
        "--addr", type=_addr, action="append", metavar="A", help="local or remote address A (repeatable)"
    )
    p.add_argument(
        "--pid", type=_count, action="append", metavar="PID", help="owned by process PID (repeatable)"
    )
    p.add_argument(
        "--comm",
        action="append",
        type=_comm,
        metavar="NAME",
        help=f"owned by a process named NAME, at most {COMM_MAX} bytes as the kernel keeps it (repeatable)",
    )
    p.add_argument(
        "--netns",
        type=netns_arg,
        metavar="NAME",
        help="only network namespace NAME (/run/netns/NAME, 'self', or an inode number; default: all)",
    )
    p.add_argument(
        "--state",
        type=_state,
        action="append",
        metavar="STATE",
        help="only sockets that passed through STATE (repeatable; canonical names, e.g. CLOSE_WAIT)",
    )
    p.add_argument("--no-listeners", action="store_true", help="leave out listening sockets (default: shown)")
    p.add_argument(
        "--conn", action="store_true", help="draw each finished connection as a sequence diagram instead"
    )
    p.add_argument(
        "--conn-format",
        choices=CONN_FORMATS,
        default="text",
        help="with --conn: text (default), svg, html, mermaid, json; non-text needs -o",
    )
    p.add_argument("-o", "--output", metavar="PATH", help="with --conn: write the first connection to PATH")
    p.add_argument(
        "--interim",
        type=_positive,
        default=60.0,
        metavar="S",
        help="zeek: a row for each connection open longer than S, every S seconds (default 60)",
    )
    p.add_argument("--wide", action="store_true", help="table: full addresses (lines longer than 80)")
    add_color_option(p)
    p.add_argument(
        "--poll", action="store_true", help="use sock_diag polling even when tracepoints are available"
    )
    p.add_argument(
        "--interval",
        type=_positive,
        default=0.1,
        metavar="S",
        help="polling period of the sock_diag fallback (default 0.1 s)",
    )
    p.add_argument(
        "--buffer-kb",
        type=int,
        default=4096,
        metavar="KB",
        help="ring buffer per CPU in KiB (default 4096; 65536 rides out a burst of seconds at 40k conn/s)",
    )
    p.add_argument(
        "--clean", action="store_true", help="remove tracefs instances left by watches that were killed; exit"
    )
    p.set_defaults(handler=_watch)


def _watch(args: argparse.Namespace) -> int:
    from tcpwise.watch import run

    if args.clean:
        return run.clean_cmd()
    if args.output and not args.conn:
        raise UsageError("-o/--output is for --conn (streams go to stdout: redirect them)")
    from tcpwise.outfile import check_target

    check_target(args.output)  # now, not when the first connection ends
    if args.conn_format != "text" and not args.output:
        raise UsageError(f"--conn-format {args.conn_format} needs -o FILE")
    if args.buffer_kb < 64 or args.buffer_kb > 1 << 20:
        raise UsageError(f"--buffer-kb must be between 64 and 1048576, not {args.buffer_kb}")
    opts: dict[str, Any] = vars(args)
    return run.watch_cmd(opts, sys.stdout, os.environ)

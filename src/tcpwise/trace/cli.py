"""``tcpwise trace FILE``: the life of every TCP connection in a pcap/pcapng capture.

Cheap to import (argparse only); the reader, numpy and rich are imported inside the handler.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tcpwise.errors import UsageError

__all__ = ["register"]

LIST_FORMATS = ("table", "json", "zeek")
CONN_FORMATS = ("text", "svg", "html", "json", "mermaid")

EPILOG = """examples:
  tcpwise trace capture.pcap                    one row per connection with its story
  tcpwise trace capture.pcapng --format zeek    a Zeek conn.log (TSV)
  tcpwise trace capture.pcap --format json > conns.json
  tcpwise trace capture.pcap --conn 3           connection #3 as a sequence diagram
  tcpwise trace capture.pcap --conn 3 --format html -o conn3.html
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "trace",
        help="the life of every TCP connection in a pcap/pcapng capture",
        description="Read a pcap or pcapng capture and tell the story of each TCP connection: how it opened, "
        "who closed first (and so holds TIME_WAIT), resets, retransmissions, keepalives, zero windows. "
        "--format zeek writes a Zeek-compatible conn.log.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "file", metavar="FILE", help="pcap or pcapng capture (tcpdump -w, dumpcap, tcpwise sim --format pcap)"
    )
    p.add_argument(
        "--format",
        "-f",
        default=None,
        help=f"list formats: {', '.join(LIST_FORMATS)} (default table); with --conn: {', '.join(CONN_FORMATS)} "
        "(default text)",
    )
    p.add_argument(
        "--conn", type=int, default=None, metavar="N", help="draw connection number N (see the # column)"
    )
    p.add_argument("--output", "-o", default=None, metavar="PATH", help="write to PATH instead of stdout")
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for --format json/zeek (default: 2 for captures over 8 MB on a multi-core "
        "machine, else 1); the output is the same for every N",
    )
    p.add_argument("--absolute", action="store_true", help="with --conn: raw sequence numbers, not relative")
    p.add_argument("--lang", default="en", help="with --conn: en or zh labels")
    p.set_defaults(handler=_run)


def _open_out(path: str | None) -> Any:
    if path is None:
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UsageError(f"cannot write {path!r}: {exc.strerror}") from None


def _run(args: argparse.Namespace) -> int:
    if args.conn is not None:
        fmt = args.format or "text"
        if fmt not in CONN_FORMATS:
            raise UsageError(
                f"--conn draws one connection: --format must be one of {', '.join(CONN_FORMATS)}"
            )
        from tcpwise.trace.conn_view import draw_connection

        out = draw_connection(args.file, args.conn, fmt, absolute=args.absolute, lang=args.lang,
                              color=args.output is None and sys.stdout.isatty())  # fmt: skip
        f = _open_out(args.output)
        try:
            f.write(out)
        finally:
            if f is not sys.stdout:
                f.close()
        return 0

    fmt = args.format or "table"
    if fmt not in LIST_FORMATS:
        if fmt in CONN_FORMATS:
            raise UsageError(
                f"--format {fmt} draws one connection: add --conn N (numbers are in the table's # column)"
            )
        raise UsageError(
            f"unknown format {fmt!r} (valid: {', '.join(LIST_FORMATS)}; with --conn: {', '.join(CONN_FORMATS)})"
        )

    jobs = _jobs(args, fmt)
    import os

    # numpy is used for gathers only, never BLAS: skip starting OpenBLAS's thread pool (~0.05 s of start-up).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from tcpwise.trace.decode import AddrTable
    from tcpwise.trace.output import JsonSink, trace_file

    addrs = AddrTable()
    f = _open_out(args.output)
    try:
        if jobs > 1:
            from tcpwise.trace.parallel import trace_parallel

            res = trace_parallel(args.file, fmt, f, jobs, _summary)
        elif fmt == "json":
            js = JsonSink(f, addrs.name)
            res = trace_file(args.file, js, addrs)
            js.close(_summary(res))
        elif fmt == "zeek":
            from tcpwise.trace.zeek import ZeekWriter

            zw = ZeekWriter(f, addrs.name)
            res = trace_file(args.file, zw.write, addrs)
            zw.close()
        else:
            rows: list[Any] = []
            res = trace_file(args.file, rows.append, addrs)
            _print_table(rows, addrs, res, f)
    finally:
        if f is not sys.stdout:
            f.close()
    for w in res.warnings:
        print(f"tcpwise: warning: {w}", file=sys.stderr)
    if res.error is not None:
        raise UsageError(str(res.error))
    return 0


PARALLEL_MIN_BYTES = 8_000_000


def _jobs(args: argparse.Namespace, fmt: str) -> int:
    """--jobs, or the default: parallel only where it pays (forking and merging cost ~50 ms)."""
    import os

    if args.jobs is not None:
        if not 1 <= args.jobs <= 64:
            raise UsageError(f"--jobs must be between 1 and 64, not {args.jobs}")
        return 1 if fmt == "table" else args.jobs
    if fmt == "table" or (os.cpu_count() or 1) < 2:
        return 1
    try:
        big = os.path.getsize(args.file) > PARALLEL_MIN_BYTES
    except OSError:
        return 1  # let the reader report the missing file
    return 2 if big else 1


def _summary(res: Any) -> dict[str, Any]:
    st = res.stats
    return {
        "format": res.format,
        "linktypes": res.linktypes,
        "packets": st.packets,
        "tcp_packets": st.tcp,
        "non_ip": st.non_ip,
        "non_tcp": st.non_tcp,
        "fragments": st.fragments,
        "skipped": dict(st.bad),
        "connections": res.connections,
        "peak_open_connections": res.peak_open,
    }


def _print_table(rows: list[Any], addrs: Any, res: Any, f: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from tcpwise.trace.output import story
    from tcpwise.trace.zeek import conn_state

    rows.sort(key=lambda c: c.n)
    name = addrs.name
    t = Table(title=f"{res.connections} TCP connection(s), {res.stats.tcp} TCP packets", title_justify="left")
    for col, kw in (
        ("#", {"justify": "right"}),
        ("client > server", {"no_wrap": True}),
        ("state", {}),
        ("history", {}),
        ("pkts c/s", {"justify": "right"}),
        ("dur s", {"justify": "right"}),
        ("story", {"overflow": "fold", "min_width": 40}),
    ):
        t.add_column(col, **kw)
    for c in rows:
        t.add_row(
            str(c.n),
            f"{name(c.orig_ep >> 16)}:{c.orig_ep & 0xFFFF} > {name(c.resp_ep >> 16)}:{c.resp_ep & 0xFFFF}",
            conn_state(c),
            c.history,
            f"{c.o.pkts}/{c.r.pkts}",
            f"{c.last - c.ts:.3f}",
            story(c),
        )
    # Not a terminal (a pipe, a file): rich would assume 80 columns; give the story room instead.
    console = Console(file=f, width=None if f is sys.stdout and f.isatty() else 180)
    console.print(t)

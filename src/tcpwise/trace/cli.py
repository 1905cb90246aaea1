"""``tcpwise trace FILE``: the life of every TCP connection in a pcap/pcapng capture (a file, a FIFO or ``-``).

Cheap to import (argparse only); the reader, numpy and pyarrow are imported inside the handler.

Exit codes: 0 the whole capture was read (warnings about skipped packets go to stderr); 2 the input is not a
capture, or is damaged (truncated, corrupt record or block, unsupported link type) — whatever could be read is
written first, in every format, and an ``-o`` file is then complete up to the last whole connection; 130 a capture
*file* was interrupted with Ctrl-C (the output is complete up to where reading stopped). Ctrl-C on a stream (a pipe
from a running tcpdump) is how a live trace ends: the output is completed and the exit code is 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.term import HelpFormatter, add_color_option, use_color

__all__ = ["register"]

LIST_FORMATS = ("table", "json", "zeek", "parquet")
CONN_FORMATS = ("text", "svg", "html", "json", "mermaid")
CHECKSUM_MODES = ("auto", "verify", "ignore")

EPILOG = """examples:
  tcpwise trace capture.pcap                  one row per connection, its story
  tcpwise trace capture.pcapng --format zeek  a Zeek conn.log (TSV)
  tcpwise trace capture.pcap --format json -o conns.json
  tcpwise trace capture.pcap --conn 3         connection #3 as a diagram
  tcpwise trace capture.pcap --conn 3 --format html -o conn3.html
  tcpwise trace offload.pcap -C               ignore TCP checksums (zeek -C)
  tcpwise trace day.pcap -f parquet -o day.parquet   needs tcpwise[parquet]
  tcpdump -i lo -w - -U | tcpwise trace - --format zeek
                                      live; Ctrl-C ends it, output complete
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "trace",
        help="the life of every TCP connection in a pcap/pcapng capture",
        description="Read a pcap or pcapng capture (a file, a FIFO, or - for standard input) and tell\n"
        "the story of each TCP connection: how it opened, who closed first (and so holds\n"
        "TIME_WAIT), resets, retransmissions, keepalives, zero windows. Rows, conn_state\n"
        "and history follow Zeek's conn.log rules; --format zeek writes a Zeek conn.log.\n\n"
        "exit codes: 0 ok; 2 not a capture, or damaged (what could be read is written\n"
        "first); 130 a capture file interrupted with Ctrl-C (Ctrl-C on a pipe ends a live\n"
        "trace normally: 0).",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "file",
        metavar="FILE",
        help="pcap or pcapng capture (tcpdump -w, dumpcap, tcpwise sim --format pcap); - reads standard input",
    )
    p.add_argument(
        "--format",
        "-f",
        default=None,
        help=f"list formats: {', '.join(LIST_FORMATS)} (default table; parquet needs -o and pyarrow); with "
        f"--conn: {', '.join(CONN_FORMATS)} (default text)",
    )
    p.add_argument(
        "--conn", type=int, default=None, metavar="N", help="draw connection number N (see the # column)"
    )
    p.add_argument(
        "--output", "-o", default=None, metavar="PATH", help="write to PATH (atomically) instead of stdout"
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for --format json/zeek on a file (default: 1 with trace's native code, else "
        "2 for captures over 8 MB on a multi-core machine); the output is the same for every N",
    )
    p.add_argument(
        "--wide",
        action="store_true",
        help="table: one line per connection (for grep and awk), not wrapped to 80 columns; --conn: full segment "
        "labels",
    )
    add_color_option(p)
    p.add_argument("--absolute", action="store_true", help="with --conn: raw sequence numbers, not relative")
    p.add_argument("--lang", default="en", metavar="LANG", help="with --conn: en or zh labels (default en)")
    z = p.add_argument_group(
        "Zeek compatibility",
        "Zeek's conn.log rules with Zeek's defaults; the switches Zeek users change:",
    )
    z.add_argument(
        "--checksums",
        choices=CHECKSUM_MODES,
        default="auto",
        help="TCP/IPv4 checksums. verify: Zeek's default (a bad TCP checksum -> history C, packet ignored). "
        "auto (default): the same, but accept the partial checksum that checksum offload leaves in captures "
        "taken on the sending host. ignore: like zeek -C",
    )
    z.add_argument(
        "-C",
        dest="checksums",
        action="store_const",
        const="ignore",
        help="same as --checksums ignore (zeek -C)",
    )
    z.add_argument(
        "--inactivity-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="Zeek's tcp_inactivity_timeout: an established connection silent this long ends its row "
        "(default 300; 0 = never)",
    )
    z.add_argument(
        "--zeek-compat",
        action="store_true",
        help="exactly Zeek's defaults: --checksums verify --inactivity-timeout 300",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.zeek_compat:
        args.checksums, args.inactivity_timeout = "verify", 300.0
    t = args.inactivity_timeout
    if not (t == t and 0 <= t <= 1e9):  # rejects nan, inf and negatives in one line
        raise UsageError(f"--inactivity-timeout must be between 0 and 1e9 seconds, not {t}")
    if args.conn is not None:
        return _run_conn(args)
    fmt = args.format or "table"
    if fmt not in LIST_FORMATS:
        if fmt in CONN_FORMATS:
            raise UsageError(
                f"--format {fmt} draws one connection: add --conn N (numbers are in the table's # column)"
            )
        raise UsageError(
            f"unknown format {fmt!r} (valid: {', '.join(LIST_FORMATS)}; with --conn: {', '.join(CONN_FORMATS)})"
        )
    if fmt == "parquet" and (not args.output or args.output == "-"):
        raise UsageError("--format parquet writes a binary file: add -o FILE.parquet")
    _not_the_input(args.file, args.output)
    if fmt == "parquet":
        from tcpwise.trace.parquet import require_pyarrow

        require_pyarrow()
    # numpy is used for gathers only, never BLAS: skip starting OpenBLAS's thread pool (~0.05 s of start-up).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from tcpwise.trace.reader import StopFlag, open_capture

    stop = StopFlag()
    from tcpwise.trace.output import sigint_to

    with sigint_to(stop):
        cap: Any = open_capture(
            args.file, stop
        )  # nothing is written before the input is known to be a capture
    jobs = _jobs(args, fmt, cap.stream is not None)
    if jobs > 1:
        cap.close()
        cap = None
    res = _write(args, fmt, cap, stop, jobs)
    return _finish(args, res)


def _write(args: argparse.Namespace, fmt: str, cap: Any, stop: Any, jobs: int) -> Any:
    from tcpwise.outfile import atomic_output

    if args.output is None:
        return _produce(args, fmt, cap, stop, jobs, sys.stdout)
    with atomic_output(args.output, "wb" if fmt == "parquet" else "w") as f:
        return _produce(args, fmt, cap, stop, jobs, f)


def _produce(args: argparse.Namespace, fmt: str, cap: Any, stop: Any, jobs: int, f: Any) -> Any:
    from tcpwise.trace.decode import AddrTable
    from tcpwise.trace.output import JsonSink, trace_file
    from tcpwise.trace.tracker import ZeekTimers

    timers = ZeekTimers(inactivity=args.inactivity_timeout)
    addrs = AddrTable()
    opts: dict[str, Any] = {"timers": timers, "checksums": args.checksums, "cap": cap, "stop": stop}
    if jobs > 1:
        from tcpwise.trace.parallel import trace_parallel

        return trace_parallel(
            args.file, fmt, f, jobs, _summary, timers=timers, checksums=args.checksums, stop=stop
        )
    if fmt == "json":
        js = JsonSink(f, addrs.name)
        res = trace_file(args.file, js, addrs, **opts)
        js.close(_summary(res))
    elif fmt == "zeek":
        from tcpwise.trace.zeek import ZeekWriter

        zw = ZeekWriter(f, addrs.name)
        res = trace_file(args.file, zw.write, addrs, **opts)
        zw.close()
    elif fmt == "parquet":
        from tcpwise.trace.parquet import ParquetSink

        ps = ParquetSink(f, addrs.name)
        try:
            res = trace_file(args.file, ps, addrs, **opts)
        except BaseException:
            ps.abort()
            raise
        ps.close()
    else:
        from tcpwise.term import output_width
        from tcpwise.trace.table import TableSink

        # 80 columns (or a narrower terminal), piped too, like every tcpwise table; --wide: one line per
        # connection (what grep and awk want), as wide as the terminal or, piped, as long as the row
        width = output_width(args.wide, f)
        ts = TableSink(f, addrs.name, width=width or 80, wide=args.wide)
        res = trace_file(args.file, ts, addrs, **opts)
        ts.close(res.connections, res.stats.tcp)
    return res


def _finish(args: argparse.Namespace, res: Any) -> int:
    for w in res.warnings:
        print(f"tcpwise: warning: {w}", file=sys.stderr)
    if res.error is not None:
        raise UsageError(str(res.error))
    if res.interrupted and not res.stream:
        print(
            f"tcpwise: interrupted: the output covers the first {res.packets_read} packets of {args.file}",
            file=sys.stderr,
        )
        return 130
    return 0


def _run_conn(args: argparse.Namespace) -> int:
    fmt = args.format or "text"
    if fmt not in CONN_FORMATS:
        raise UsageError(f"--conn draws one connection: --format must be one of {', '.join(CONN_FORMATS)}")
    _not_the_input(args.file, args.output)
    from tcpwise.term import output_width
    from tcpwise.trace.conn_view import draw_connection

    color = args.output is None and use_color(args.color)
    out, res = draw_connection(args.file, args.conn, fmt, absolute=args.absolute, lang=args.lang, color=color,
                               checksums=args.checksums, inactivity=args.inactivity_timeout,
                               width=output_width(args.wide))  # fmt: skip
    from tcpwise.outfile import write_output

    write_output(out, args.output)
    return _finish(args, res)


def _not_the_input(capture: str, output: str | None) -> None:
    """``-o`` naming the capture itself would replace it by the output once the trace succeeds."""
    if not output or output == "-" or capture == "-":
        return
    try:
        same = os.path.samefile(capture, output)
    except OSError:  # one of them does not exist (yet): not the same file
        return
    if same:
        raise UsageError(f"-o {output} is the capture being read: the output would replace it")


PARALLEL_MIN_BYTES = 8_000_000


def _jobs(args: argparse.Namespace, fmt: str, stream: bool) -> int:
    """--jobs, or the default: parallel only where it pays (forking and merging cost ~50 ms)."""
    if args.jobs is not None and not 1 <= args.jobs <= 64:
        raise UsageError(f"--jobs must be between 1 and 64, not {args.jobs}")
    if fmt not in ("json", "zeek") or stream:
        return 1  # the table and parquet stream in one process; a pipe can be read only once
    if args.jobs is not None:
        return int(args.jobs)
    from tcpwise.trace import native

    if (os.cpu_count() or 1) < 2 or native.load("_ctrack") is not None:
        # With the native tracker one process is faster than the split: what is left per connection (building
        # its row, merging the workers' streams) costs more across processes than it saves.
        return 1
    try:
        big = os.path.getsize(args.file) > PARALLEL_MIN_BYTES
    except OSError:
        return 1
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
        "bad_checksums": st.bad_checksums,
        "offloaded_checksums": st.offloaded,
        "skipped": dict(st.bad),
        "connections": res.connections,
        "peak_open_connections": res.peak_open,
        "interrupted": res.interrupted,
        # damage that ended the read early (the rows cover the packets before it), else null
        "error": str(res.error) if res.error is not None else None,
    }

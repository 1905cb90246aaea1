"""``tcpwise doctor``, ``tcpwise top`` and ``tcpwise exporter``: argparse registration only.

Importing this module costs nothing beyond argparse: every handler imports its modules when it runs, and the
``doctor --json`` path never imports rich or prometheus_client (interpreter start-up is part of the user's
wait, and doctor races ``ss -tanp``).
"""

from __future__ import annotations

import argparse
import os
import time

from tcpwise.errors import UsageError
from tcpwise.linux.kernel import netns_arg
from tcpwise.term import HelpFormatter, add_color_option, add_wide_option, number_in

__all__ = ["register"]

DOCTOR_EPILOG = """examples:
  tcpwise doctor                        states, processes, findings with advice
  tcpwise doctor --json | jq .findings  machine-readable
  tcpwise doctor --pid 1234 --lang zh   one process, advice in Chinese
  tcpwise doctor --interval 5           two samples 5 s apart: is it growing?
  tcpwise doctor --watch 10             10 s of transitions: leak or churn?
  tcpwise doctor --netns blue           inside a network namespace (root)
  tcpwise doctor --fail-on warn         exit 1 on warn or worse (cron, CI)
"""

TOP_EPILOG = """examples:
  tcpwise top                           refresh every second until q or Ctrl-C
  tcpwise top --interval 5 --rows 10    slower, the 10 busiest processes
  tcpwise top --count 1                 one screen, then exit
"""

EXPORTER_EPILOG = """examples:
  tcpwise exporter                          http://127.0.0.1:9477/metrics
  tcpwise exporter --listen 0.0.0.0:9477    for a Prometheus on another host
  tcpwise exporter --no-watch --top 5       no tracepoint counters, 5 processes
  tcpwise exporter --netns blue --listeners 50
"""


# Every number of seconds is finite and in a range a sleep, a deadline and a timestamp can hold: nan, inf, 1e309
# or 2**63 would hang a sleep, overflow a deadline or busy-loop a timer; refused in one line before any work.
DAY = 86400.0
_SLEEP = number_in(0.1, DAY)  # a wait or a refresh period: 0.1 s .. 1 day
_THRESHOLD = number_in(0.001, 365 * DAY)  # --idle: a threshold compared with socket ages, not slept


def _count(text: str) -> int:
    """A number of things to show or do: a whole number >= 1 (argparse turns the error into one line)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return v


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--netns",
        type=netns_arg,
        metavar="NAME",
        help="look inside network namespace NAME (/run/netns/NAME, root; default: this one)",
    )
    p.add_argument(
        "--lang", choices=("en", "zh"), default="en", help="language of messages and advice (default en)"
    )
    p.add_argument(
        "--idle",
        type=_THRESHOLD,
        default=600.0,
        metavar="SECONDS",
        help="an ESTABLISHED socket without data for this long is idle (no-keepalive; default 600)",
    )


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = sub.add_parser(
        "doctor",
        help="diagnose this host's TCP connections (read-only)",
        description="Diagnose the live host's TCP sockets: states, owning processes, findings with advice. "
        "Read-only; as root it also sees every process's sockets and other namespaces.",
        epilog=DOCTOR_EPILOG,
        formatter_class=HelpFormatter,
    )
    d.add_argument("--json", action="store_true", help="print one JSON document")
    d.add_argument("--pid", type=int, metavar="PID", help="only this process's sockets and findings")
    d.add_argument(
        "--fail-on",
        choices=("warn", "crit"),
        help="exit 1 if a finding is at least this severe (default: exit 0 whatever is found)",
    )
    d.add_argument(
        "--interval",
        type=_SLEEP,
        metavar="SECONDS",
        help="take a second sample after SECONDS to measure growth (default: one sample)",
    )
    d.add_argument(
        "--watch",
        type=_SLEEP,
        metavar="SECONDS",
        help="watch SECONDS of state transitions (tracepoints, root): CLOSE_WAIT leak vs churn, "
        "TIME_WAIT rate per destination vs the port range",
    )
    d.add_argument(
        "--top", type=_count, default=15, metavar="N", help="processes shown in the table (default 15)"
    )
    add_color_option(d)
    add_wide_option(d)
    _common(d)
    d.set_defaults(handler=_doctor)

    t = sub.add_parser(
        "top",
        help="live view of TCP states per process (refresh 1 s)",
        description="A live terminal view of TCP sockets per state and per process; growth "
        "since the previous refresh is highlighted. q or Ctrl-C quits.",
        epilog=TOP_EPILOG,
        formatter_class=HelpFormatter,
    )
    t.add_argument(
        "--interval", type=_SLEEP, default=1.0, metavar="SECONDS", help="refresh period (default 1 s)"
    )
    t.add_argument(
        "--count", type=_count, metavar="N", help="stop after N refreshes (default: until q or Ctrl-C)"
    )
    t.add_argument("--rows", type=_count, default=20, metavar="N", help="processes shown (default 20)")
    _common(t)
    t.set_defaults(handler=_top)

    e = sub.add_parser(
        "exporter",
        help="Prometheus metrics of TCP states, processes, queues and findings",
        description="Serve Prometheus metrics (per state, top processes, listener queues,\n"
        "findings; with root, state transitions from tracepoints) at\n"
        "http://LISTEN/metrics. Dashboard: docs/grafana-tcpwise.json.",
        epilog=EXPORTER_EPILOG,
        formatter_class=HelpFormatter,
    )
    e.add_argument(
        "--listen",
        default="127.0.0.1:9477",
        metavar="HOST:PORT",
        help="address and port to serve /metrics on (default 127.0.0.1:9477)",
    )
    e.add_argument(
        "--top", type=int, default=20, metavar="N", help="per-process series for the top N (default 20)"
    )
    e.add_argument(
        "--listeners",
        type=int,
        default=20,
        metavar="K",
        help="per-listener series for the K busiest listeners, the rest summed as 'other' (default 20)",
    )
    e.add_argument(
        "--peers",
        type=int,
        default=10,
        metavar="K",
        help="watch: per-peer counters for the top K (default 10)",
    )
    e.add_argument(
        "--no-watch", action="store_true", help="no tracepoint counters (transitions, resets, durations)"
    )
    e.add_argument(
        "--max-conns", type=int, default=512, metavar="N", help="open HTTP connections at most (default 512)"
    )
    e.add_argument("--backlog", type=int, default=1024, metavar="N", help="listen backlog (default 1024)")
    e.add_argument(
        "--cache",
        type=float,
        default=0.5,
        metavar="S",
        help="serve a page younger than S seconds again instead of collecting (default 0.5; 0 = never)",
    )
    e.add_argument(
        "--header-timeout",
        type=_SLEEP,
        default=5.0,
        metavar="S",
        help="a request head must arrive within S seconds (default 5)",
    )
    e.add_argument(
        "--idle-timeout",
        type=_SLEEP,
        default=15.0,
        metavar="S",
        help="keep-alive connections idle longer are closed (default 15)",
    )
    e.add_argument(
        "--proc-interval",
        type=number_in(0.1, DAY, zero="every scrape"),
        default=10.0,
        metavar="SECONDS",
        help="rescan /proc for process attribution at most this often (default 10 s; 0 = every scrape)",
    )
    _common(e)
    e.set_defaults(handler=_exporter)


def _doctor(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    from tcpwise.doctor import collect, findings, report

    if args.pid is not None and not os.path.exists(f"/proc/{args.pid}"):
        raise UsageError(f"no process with pid {args.pid}")
    pids = [args.pid] if args.pid is not None else None
    if args.interval and args.watch:
        raise UsageError("--interval and --watch both measure growth: use one (--watch is the precise one)")
    th = findings.Thresholds(idle_s=args.idle)
    prev = None
    watched = None
    waited = 0.0
    if args.interval:
        prev = collect.take(netns=args.netns, pids=pids, idle_s=args.idle)
        time.sleep(args.interval)
        waited = args.interval
    if args.watch:
        from tcpwise.doctor import watchdiag

        watched = watchdiag.sample(args.watch, netns=args.netns)
        waited = watched.seconds
    snap = collect.take(netns=args.netns, pids=pids, idle_s=args.idle)
    found = findings.analyze(snap, th, lang=args.lang, prev=prev, pid=args.pid)
    if watched is not None:
        found = watchdiag.analyze(watched, snap, found, th, lang=args.lang)
        if args.pid is not None:
            found = [f for f in found if f.pid == args.pid]
    doc = report.to_dict(snap, found, time.perf_counter() - t0 - waited, pid=args.pid)
    if watched is not None:
        doc["watch"] = watched.to_dict()
    if args.json:
        report.write_json(doc)
    else:
        from tcpwise.term import output_width, use_color

        report.write_text(
            doc,
            lang=args.lang,
            top=args.top,
            netns=args.netns,
            color=use_color(args.color),
            width=output_width(args.wide),
        )
    if args.fail_on:
        level = findings.severity_rank(args.fail_on)
        if any(findings.severity_rank(f.severity) >= level for f in found):
            return 1
    return 0


def _top(args: argparse.Namespace) -> int:
    from tcpwise.doctor import top

    return top.run(args)


def _exporter(args: argparse.Namespace) -> int:
    from tcpwise.doctor import exporter

    if not 0 <= args.cache <= 60:
        raise UsageError(f"--cache must be between 0 and 60 seconds, not {args.cache}")
    for name in ("listeners", "peers", "max_conns", "backlog", "top"):
        v = getattr(args, name)
        if not 1 <= v <= 100_000:
            raise UsageError(f"--{name.replace('_', '-')} must be between 1 and 100000, not {v}")

    return exporter.run(args)

"""``tcpwise lab ...``: scenarios on the real kernel, conformance, kernel demonstrations, cleanup.

Cheap to import: everything heavy is imported inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tcpwise.term import HelpFormatter, add_color_option, add_wide_option, number_in

__all__ = ["register"]

FORMATS = ("text", "json", "mermaid", "svg", "html", "pcap")
# A lab run's wall-clock bound: finite, at most an hour (MAX_LAB_DURATION), and long enough to build a step.
_MAX_DURATION = number_in(0.1, 3600.0)

EPILOG = """examples:
  sudo tcpwise lab run close                four-way teardown on the real kernel
  sudo tcpwise lab run close -f pcap -o close.pcap
  sudo tcpwise lab conform                  model vs kernel, segment by segment
  sudo tcpwise lab conform close keepalive --jobs 2
  sudo tcpwise lab conform --json           the table for scripts
  sudo tcpwise lab demo time-wait --quick   TIME_WAIT is 60 s whatever
                                            tcp_fin_timeout says
  sudo tcpwise lab clean                    remove runs whose process died
  sudo tcpwise lab clean --run lab3f09a1    remove that run, whatever state
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "lab",
        help="run scenarios on the real Linux kernel in network namespaces (root)",
        description="The kernel world: namespaces A - R - B, nftables faults at R, capture at R, "
        "sock_diag state recording.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    lsub = p.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])

    r = lsub.add_parser(
        "run",
        help="run one lab-capable scenario with real sockets",
        description="Run one scenario's script with real sockets: client A and server B in their own network "
        "namespaces, a router R between them that delays, drops and captures; states come from sock_diag, "
        "segments from the capture at R. Drawn and checked like `tcpwise sim`. Needs root.",
        epilog="examples:\n  sudo tcpwise lab run close\n  sudo tcpwise lab run keepalive --full\n"
        "  sudo tcpwise lab run lost-last-ack -f svg -o lla.svg",
        formatter_class=HelpFormatter,
    )
    r.add_argument("scenario", metavar="ID", help="scenario id (tcpwise scenarios lists them)")
    r.add_argument(
        "--format", "-f", choices=FORMATS, default="text", metavar="FMT", help="output format (default: text)"
    )
    r.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="K=V",
        help="override a scenario parameter (default: the scenario's lab values); repeatable",
    )
    r.add_argument("--seed", type=int, default=1, help="seed for the delay line's jitter (default 1)")
    r.add_argument("--ipv6", action="store_true", help="run over fd00::/8 instead of 198.18.0.0/15")
    r.add_argument(
        "--max-duration",
        type=_MAX_DURATION,
        default=None,
        metavar="S",
        help="stop the run after S seconds (default: 2.5 s after the script's last step)",
    )
    r.add_argument(
        "--full",
        action="store_true",
        help="run the script's whole duration (e.g. 60 s more to see TIME_WAIT expire); "
        "a check the short run cannot observe is reported, not failed",
    )
    r.add_argument("--lang", default="en", choices=("en", "zh"), help="narrative language (default: en)")
    add_color_option(r)
    add_wide_option(r)
    r.set_defaults(handler=_run)

    c = lsub.add_parser(
        "conform",
        help="model vs kernel, segment by segment, for the whole catalogue",
        description="Runs each scenario in the model and on the kernel and compares states, every segment "
        "(relative seq/ack, flags, length, scaled window, options, timestamp echoes) and timer-driven timing.",
        epilog="examples:\n  sudo tcpwise lab conform\n  sudo tcpwise lab conform close lost-last-ack\n"
        "  sudo tcpwise lab conform --json --jobs 2 > conform.json",
        formatter_class=HelpFormatter,
    )
    c.add_argument("ids", nargs="*", metavar="ID", help="scenarios (default: the whole catalogue)")
    c.add_argument("--json", action="store_true", help="print the result as JSON (no table, no progress)")
    c.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=1,
        metavar="N",
        help="run N scenarios at once, each in its own namespaces (default 1)",
    )
    c.add_argument(
        "--max-duration",
        type=_MAX_DURATION,
        default=30.0,
        metavar="S",
        help="compare at most the first S seconds of each scenario (default 30)",
    )
    c.add_argument(
        "--settle",
        type=float,
        default=2.5,
        metavar="S",
        help="run and compare until S seconds after the scenario's last step (default 2.5)",
    )
    c.add_argument("--ipv6", action="store_true", help="run the kernel side over fd00::/8")
    c.add_argument(
        "--retries",
        type=int,
        default=1,
        metavar="N",
        help="run a differing scenario again up to N times (timing-sensitive kernel choices on a "
        "loaded machine; default 1)",
    )
    c.add_argument("--wide", action="store_true", help="use more than 80 columns for the table")
    c.add_argument(
        "--full",
        action="store_true",
        help="compare each scenario's whole script (e.g. 60 s of TIME_WAIT, so its length is timed too); "
        "default: until --settle after the last step",
    )
    c.set_defaults(handler=_conform)

    d = lsub.add_parser(
        "demo",
        help="kernel demonstrations (TIME_WAIT length, port exhaustion, ...)",
        description="Measure on the real kernel what common advice gets wrong (each demo in its own "
        "namespaces). Without NAME, list the demos. Needs root.",
        epilog="examples:\n  tcpwise lab demo                          list the demos\n"
        "  sudo tcpwise lab demo time-wait --quick   TIME_WAIT: 60 s, whatever the sysctl\n"
        "  sudo tcpwise lab demo keepalive --json",
        formatter_class=HelpFormatter,
    )
    d.add_argument("name", nargs="?", metavar="NAME", help="demo name (omit to list them)")
    d.add_argument("--quick", action="store_true", help="shorter runs: read kernel timers instead of waiting")
    d.add_argument("--json", action="store_true", help="print the result as JSON")
    d.set_defaults(handler=_demo)

    k = lsub.add_parser(
        "clean",
        help="remove what lab runs left behind (only runs whose process is gone, unless --run names one)",
        description="Remove the namespaces and nftables rules of lab runs whose owner process is gone "
        "(killed, crashed); a run in progress is kept, unless --run names it. Needs root.",
        epilog="examples:\n  sudo tcpwise lab clean\n  sudo tcpwise lab clean --run lab3f09a1",
        formatter_class=HelpFormatter,
    )
    k.add_argument(
        "--run",
        metavar="RUN_ID",
        help="remove this run whatever its state (e.g. lab3f09a1); default: every run whose owner "
        "process is gone, never one in progress",
    )
    k.set_defaults(handler=_clean)


def _parse_sets(items: list[str]) -> dict[str, str]:
    from tcpwise.errors import UsageError

    out = {}
    for it in items:
        if "=" not in it:
            raise UsageError(f"--set needs K=V, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _run(args: argparse.Namespace) -> int:
    import io

    from tcpwise.errors import UsageError
    from tcpwise.lab.conform import lab_scenario_run, nothing_observed
    from tcpwise.outfile import check_target
    from tcpwise.outfile import write_output as _emit  # the one -o/stdout writer (atomic, errors in one line)

    check_target(args.output)  # before the namespaces are built, not after the run
    if args.format == "pcap" and not args.output and sys.stdout.isatty():
        raise UsageError("--format pcap writes binary: use -o FILE or redirect stdout")
    buf = io.BytesIO()
    with _progress(f"lab run {args.scenario}", quiet=not sys.stderr.isatty()) as tick:
        run = lab_scenario_run(
            args.scenario,
            seed=args.seed,
            overrides=_parse_sets(args.set),
            ipv6=args.ipv6,
            max_duration=args.max_duration,
            pcap=buf,
            full=args.full,
            progress=tick,
        )
    if args.format == "pcap":
        _emit(buf.getvalue(), args.output)
    elif args.format == "json":
        _emit(run.to_json(), args.output)
    else:
        from tcpwise.render import render
        from tcpwise.term import output_width, use_color

        color = args.format == "text" and args.output is None and use_color(args.color)
        out = render(run, args.format, lang=args.lang, color=color, width=output_width(args.wide))
        _emit(out, args.output)
    if nothing_observed(run):
        print(f"tcpwise: lab run {args.scenario}: {run.summary['text']}", file=sys.stderr)
        return 1
    return 0 if run.ok else 1


def _conform(args: argparse.Namespace) -> int:
    import json

    from tcpwise.errors import UsageError
    from tcpwise.lab.conform import conform_all, format_drilldown, format_table
    from tcpwise.term import output_width

    if args.jobs < 1 or args.retries < 0 or not 0 < args.max_duration <= 3600 or not 0 <= args.settle <= 600:
        raise UsageError("--jobs >= 1, --retries >= 0, 0 < --max-duration <= 3600, 0 <= --settle <= 600")
    quiet = args.json or not sys.stderr.isatty()
    ids = args.ids or None
    with _progress("lab conform", quiet=quiet, total=len(ids) if ids else None) as tick:
        results = conform_all(
            ids,
            max_duration=args.max_duration,
            settle=args.settle,
            retries=args.retries,
            ipv6=args.ipv6,
            jobs=args.jobs,
            progress=(lambda done, total, r: tick(done, total)) if tick else None,
            full=args.full,
        )
    if args.json:
        print(json.dumps({"scenarios": [r.to_dict() for r in results]}, indent=1))
    else:
        width = output_width(args.wide) or 200  # --wide and piped: no limit, but keep the rule readable
        print(_kernel_line())
        print(format_table(results, width))
        drill = format_drilldown(results, output_width(args.wide))
        if drill:
            print("\nfirst differences:")
            print(drill)
    return 0 if all(r.match or r.deviation or r.level == "none" for r in results) else 1


def _kernel_line() -> str:
    import platform

    return f"kernel {platform.release()} ({platform.machine()})"


class _Progress:
    """A rich progress bar on stderr, or nothing (piped, --json)."""

    def __init__(self, title: str, quiet: bool, total: int | None) -> None:
        self.title = title
        self.quiet = quiet
        self.total = total
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        if self.quiet:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.bar.__enter__()
        self.task = self.bar.add_task(self.title, total=self.total or 1)
        return self.tick

    def tick(self, done: float, total: float) -> None:
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _progress(title: str, *, quiet: bool, total: int | None = None) -> _Progress:
    return _Progress(title, quiet, total)


def _demo(args: argparse.Namespace) -> int:
    import json

    from tcpwise.lab import demos

    if not args.name:
        from tcpwise.term import Column, output_width, table

        rows = [(name, demos.SUMMARY.get(name, "")) for name in demos.DEMOS]
        cols = (Column("demo"), Column("what it shows", flex=True))
        print("\n".join(table(cols, rows, width=output_width())))
        return 0
    result = demos.run_demo(args.name, quick=args.quick)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print(_fit(result.text()))
    return 0 if result.ok else 1


def _fit(text: str) -> str:
    """``text`` within 80 columns (or a narrower terminal): each long line wrapped under its own indent."""
    from tcpwise.term import output_width, wrap

    width = output_width() or 80
    out = []
    for line in text.splitlines():
        body = line.lstrip(" ")
        indent = " " * (len(line) - len(body))
        hang = indent + ("  " if body[:1] in "✓✗?-*" else "")  # continue under the text, not the mark
        for i, part in enumerate(wrap(body, width - len(hang)) if body else [""]):
            out.append((indent if i == 0 else hang) + part)
    return "\n".join(out)


def _clean(args: argparse.Namespace) -> int:
    from tcpwise.lab.netns import check_capabilities, clean_runs

    check_capabilities()
    rep = clean_runs(args.run)
    for ns in rep.removed:
        print(f"removed namespace {ns}")
    for name in rep.instances:
        print(f"removed tracefs instance {name}")
    for rid, pid in sorted(rep.running.items()):
        print(f"kept {rid}: in progress (process {pid})")
    for rid in rep.unowned:
        print(f"kept {rid}: no owner record (remove it with: tcpwise lab clean --run {rid})")
    if not rep.removed and not rep.instances and not rep.running and not rep.unowned:
        print("nothing to clean")
    return 0

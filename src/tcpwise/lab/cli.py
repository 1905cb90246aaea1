"""``tcpwise lab ...``: scenarios on the real kernel, conformance, kernel demonstrations, cleanup.

Cheap to import: everything heavy is imported inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]

FORMATS = ("text", "json", "mermaid", "svg", "html", "pcap")

EPILOG = """examples:
  sudo tcpwise lab run close                     four-way teardown on the real kernel
  sudo tcpwise lab run close --format pcap -o close.pcap
  sudo tcpwise lab conform --json                model vs kernel for every lab-capable scenario
  sudo tcpwise lab demo time-wait --quick        TIME_WAIT stays 60 s whatever tcp_fin_timeout says
  sudo tcpwise lab clean                         remove what a killed lab run left behind
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "lab",
        help="run scenarios on the real Linux kernel in network namespaces (root)",
        description="The kernel world: namespaces A - R - B, nftables faults at R, capture at R, "
        "sock_diag state recording.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lsub = p.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])

    r = lsub.add_parser("run", help="run one lab-capable scenario with real sockets")
    r.add_argument("scenario", metavar="ID")
    r.add_argument("--format", "-f", choices=FORMATS, default="text")
    r.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    r.add_argument("--set", action="append", default=[], metavar="K=V", help="override a scenario parameter")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--ipv6", action="store_true", help="run over fd00::/8 instead of 198.18.0.0/15")
    r.add_argument(
        "--max-duration",
        type=float,
        default=None,
        metavar="S",
        help="stop the run after S seconds (default: 2.5 s after the script's last step)",
    )
    r.add_argument(
        "--full",
        action="store_true",
        help="run the script's whole duration (e.g. 60 s more to see TIME_WAIT expire)",
    )
    r.add_argument("--lang", default="en", choices=("en", "zh"))
    r.set_defaults(handler=_run)

    c = lsub.add_parser("conform", help="model vs kernel: state and flag sequences per host, per scenario")
    c.add_argument("ids", nargs="*", metavar="ID", help="scenarios (default: every lab-capable one)")
    c.add_argument("--json", action="store_true")
    c.add_argument(
        "--max-duration",
        type=float,
        default=8.0,
        metavar="S",
        help="compare at most the first S seconds of each scenario (default 8)",
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
    c.set_defaults(handler=_conform)

    d = lsub.add_parser("demo", help="kernel demonstrations (TIME_WAIT length, port exhaustion, ...)")
    d.add_argument("name", nargs="?", metavar="NAME", help="demo name (omit to list them)")
    d.add_argument("--quick", action="store_true", help="shorter runs: read kernel timers instead of waiting")
    d.add_argument("--json", action="store_true")
    d.set_defaults(handler=_demo)

    k = lsub.add_parser("clean", help="remove namespaces left behind by a killed lab run")
    k.add_argument("--run", metavar="RUN_ID", help="only this run (e.g. lab3f09a1); default: every lab run")
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
    from tcpwise.lab.conform import lab_scenario_run
    from tcpwise.outfile import write_output as _emit  # the one -o/stdout writer (atomic, errors in one line)

    if args.format == "pcap" and not args.output and sys.stdout.isatty():
        raise UsageError("--format pcap writes binary: use -o FILE or redirect stdout")
    buf = io.BytesIO()
    run = lab_scenario_run(
        args.scenario,
        seed=args.seed,
        overrides=_parse_sets(args.set),
        ipv6=args.ipv6,
        max_duration=args.max_duration,
        pcap=buf,
        full=args.full,
    )
    if args.format == "pcap":
        _emit(buf.getvalue(), args.output)
    elif args.format == "json":
        _emit(run.to_json(), args.output)
    else:
        from tcpwise.render import render

        _emit(
            render(run, args.format, lang=args.lang, color=args.output is None and sys.stdout.isatty()),
            args.output,
        )
    return 0 if run.ok else 1


def _conform(args: argparse.Namespace) -> int:
    import json

    from tcpwise.lab.conform import conform_all, format_table

    results = conform_all(
        args.ids or None,
        max_duration=args.max_duration,
        settle=args.settle,
        retries=args.retries,
        ipv6=args.ipv6,
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
    else:
        print(format_table(results))
    return 0 if all(r.match or r.deviation for r in results) else 1


def _demo(args: argparse.Namespace) -> int:
    import json

    from tcpwise.lab import demos

    if not args.name:
        for name in demos.DEMOS:
            print(f"  {name:23} {demos.SUMMARY.get(name, '')}")
        return 0
    result = demos.run_demo(args.name, quick=args.quick)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print(result.text())
    return 0 if result.ok else 1


def _clean(args: argparse.Namespace) -> int:
    from tcpwise.lab.netns import check_capabilities, clean

    check_capabilities()
    removed = clean(args.run)
    for ns in removed:
        print(f"removed namespace {ns}")
    if not removed:
        print("nothing to clean")
    return 0

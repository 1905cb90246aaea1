"""``tcpwise report -o DIR [--lang en|zh] [--only ID ...] [--seed N]``: the HTML gallery of every scenario.

Imports only argparse at module level; the renderers and the simulator load inside the handler.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="HTML gallery of every scenario (diagrams, checks, pcaps)",
        description="Run every scenario of the catalogue in the simulator and write an offline HTML gallery: "
        "index.html with one card per scenario, one page per scenario with its diagram, checks, narrative, "
        "state timeline and parameters, and the SVG/JSON/pcap/Mermaid files behind them.",
        epilog="examples:\n  tcpwise report -o report/\n  tcpwise report -o report-zh/ --lang zh\n"
        "  tcpwise report -o /tmp/r --only close lost-last-ack",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="folder to write (created if missing)"
    )
    p.add_argument(
        "--lang", default="en", choices=("en", "zh"), help="language of labels, claims, narratives"
    )
    p.add_argument("--only", nargs="+", metavar="ID", help="only these scenario ids")
    p.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    p.add_argument("--absolute", action="store_true", help="raw sequence numbers instead of relative ones")
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from tcpwise.errors import UsageError
    from tcpwise.render.report import ReportEntry, build_report
    from tcpwise.scenarios.gallery import catalogue_entries

    out = args.output
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"{out} exists and is not a directory")

    def progress(entry: ReportEntry, seconds: float) -> None:
        mark = "✓" if entry.ok else "✗"
        print(f"  {mark} {entry.id:<24} {seconds:6.2f} s", file=sys.stderr, flush=True)

    entries = catalogue_entries(lang=args.lang, seed=args.seed, only=args.only, progress=progress)
    try:
        result = build_report(out, entries, lang=args.lang, absolute=args.absolute)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    n = len(result.entries)
    failing = result.failing
    print(f"wrote {result.index} ({n} scenarios, {n - len(failing)} passing)")
    for e in failing:
        why = e.error or "; ".join(c.claim for c in (e.run.checks if e.run else []) if not c.ok)
        print(f"failing: {e.id}: {why}", file=sys.stderr)
    print(f"open file://{os.path.abspath(result.index)}")
    return 1 if failing else 0

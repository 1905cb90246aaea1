"""``tcpwise report -o DIR [--lang en|zh] [--only ID ...] [--seed N]``: the HTML gallery of every scenario.

Imports only argparse and :mod:`tcpwise.term` at module level; the renderers and the simulator load inside the
handler.
"""

from __future__ import annotations

import argparse
import os
import sys

from tcpwise.term import HelpFormatter, add_color_option

__all__ = ["register"]

_EPILOG = """examples:
  tcpwise report -o report/
  tcpwise report -o report-zh/ --lang zh
  tcpwise report -o /tmp/r --only close lost-last-ack

exit status: 0 when every scenario passes, 1 otherwise, 2 on bad input.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="HTML gallery of every scenario (diagrams, checks, pcaps)",
        description="Run every scenario of the catalogue in the simulator and write an offline HTML gallery: "
        "index.html with one card per scenario, one page per scenario with its diagram, checks, narrative, "
        "state timeline and parameters, and the SVG/JSON/pcap/Mermaid files behind them.",
        epilog=_EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="folder to write (created if missing)"
    )
    p.add_argument(
        "--lang", default="en", choices=("en", "zh"), help="language of labels, claims, narratives"
    )
    p.add_argument("--only", nargs="+", metavar="ID", help="only these scenario ids (default: all of them)")
    p.add_argument("--seed", type=int, default=1, metavar="N", help="simulator seed")
    p.add_argument("--absolute", action="store_true", help="raw sequence numbers instead of relative ones")
    add_color_option(p)
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from tcpwise.i18n import check_claim, msg
    from tcpwise.render.report import ReportEntry, build_report, check_report_dir
    from tcpwise.scenarios.gallery import catalogue_entries
    from tcpwise.term import fmt_seconds, use_color

    out = args.output
    check_report_dir(out)
    color = use_color(args.color, sys.stderr)

    def progress(entry: ReportEntry, seconds: float) -> None:
        mark = "✓" if entry.ok else "✗"
        if color:
            mark = ("\x1b[32m" if entry.ok else "\x1b[31m") + mark + "\x1b[0m"
        print(f"  {mark} {entry.id:<24} {fmt_seconds(seconds):>8}", file=sys.stderr, flush=True)

    entries = catalogue_entries(lang=args.lang, seed=args.seed, only=args.only, progress=progress)
    result = build_report(out, entries, lang=args.lang, absolute=args.absolute)  # unwritable: one line
    n = len(result.entries)
    failing = result.failing
    print(msg("report_wrote", args.lang, index=result.index, n=n, ok=n - len(failing)))
    for e in failing:
        why = e.error or "; ".join(
            check_claim(c, args.lang) for c in (e.run.checks if e.run else []) if not c.ok
        )
        print(msg("report_failing", args.lang, id=e.id, why=why), file=sys.stderr)
    print(msg("open_url", args.lang, url=f"file://{os.path.abspath(result.index)}"))
    return 1 if failing else 0

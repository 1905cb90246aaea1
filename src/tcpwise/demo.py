"""``tcpwise demo``: the flagship demo `make demo` runs — a connection's whole life, drawn and checked.

``tcpwise demo`` prints the handshake and the four-way close as terminal sequence diagrams and builds the HTML
report gallery of every scenario. ``tcpwise demo pool`` shows the naive-pool "connection count keeps growing"
problem and its fix on loopback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tcpwise.term import HelpFormatter, add_color_option, add_wide_option

__all__ = ["register"]

_EPILOG = """examples:
  tcpwise demo                          handshake, close, gallery in report/
  tcpwise demo --no-report --lang zh    the two diagrams in Chinese
  tcpwise demo --report /tmp/gallery    the gallery somewhere else
  tcpwise demo pool                     naive vs validating pool (loopback)
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="the flagship demo (what `make demo` runs)",
        description="life: draw a connection's life (the handshake, then the four-way close) with its checks, "
        "then build the HTML report gallery of every scenario. pool: run a naive connection pool and a "
        "validating one against a server that closes idle connections, on loopback.",
        epilog=_EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "what",
        nargs="?",
        default="life",
        choices=("life", "pool"),
        metavar="WHAT",
        help="life: handshake and close diagrams and the report; pool: naive vs validating pool",
    )
    p.add_argument("--report", default="report", metavar="DIR", help="where to build the HTML gallery")
    p.add_argument("--no-report", action="store_true", help="skip building the gallery")
    p.add_argument(
        "--lang", choices=("en", "zh"), default="en", help="language of the diagrams and the gallery"
    )
    add_color_option(p)
    add_wide_option(p)
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.what == "pool":
        try:
            from tcpwise.demo_pool import run_pool_demo
        except ModuleNotFoundError:
            from tcpwise.errors import MissingCapability

            raise MissingCapability("the pool demo is not built in this version") from None
        return run_pool_demo(out=sys.stdout)

    from tcpwise.i18n import msg
    from tcpwise.render import render
    from tcpwise.scenarios import run_scenario
    from tcpwise.term import output_width, use_color

    if not args.no_report:
        from tcpwise.render.report import check_report_dir

        check_report_dir(args.report)  # before the diagrams and the gallery's scenarios run, not after
    color = use_color(args.color)
    width = output_width(args.wide)
    rc = 0
    for sid in ("handshake", "close"):
        run = run_scenario(sid)
        print(render(run, "text", lang=args.lang, color=color, width=width))
        print()
        rc |= 0 if run.ok else 1
    if not args.no_report:
        import os

        from tcpwise.render.report import build_report
        from tcpwise.scenarios.gallery import catalogue_entries

        result = build_report(args.report, catalogue_entries(lang=args.lang), lang=args.lang)
        n = len(result.entries)
        print(msg("demo_gallery", args.lang, n=n, ok=n - len(result.failing)))
        print("  " + msg("open_url", args.lang, url=f"file://{os.path.abspath(result.index)}"))
        rc |= 1 if result.failing else 0
    return rc

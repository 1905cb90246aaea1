"""``tcpwise demo``: the flagship demo `make demo` runs — a connection's whole life, drawn and checked.

``tcpwise demo`` prints the handshake and the four-way close as terminal sequence diagrams, shows the
TIME_WAIT correction (tcp_fin_timeout does not shorten it), and builds the HTML report gallery.
``tcpwise demo pool`` shows the naive-pool "connection count keeps growing" problem and its fix on loopback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="the flagship demo (what `make demo` runs)",
        description="Draw a connection's life (handshake, close), then build the report gallery.",
    )
    p.add_argument(
        "what",
        nargs="?",
        default="life",
        choices=("life", "pool"),
        help="life: handshake+close diagrams and the report (default); pool: naive vs fixed pool",
    )
    p.add_argument(
        "--report", default="report", metavar="DIR", help="where to build the HTML gallery [report]"
    )
    p.add_argument("--no-report", action="store_true", help="skip building the gallery")
    p.add_argument("--lang", choices=("en", "zh"), default="en")
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.what == "pool":
        try:
            from tcpwise.demo_pool import run_pool_demo
        except ModuleNotFoundError:
            from tcpwise.errors import MissingCapability

            raise MissingCapability("the pool demo is not built in this version") from None
        return run_pool_demo(out=sys.stdout)

    from tcpwise.render import render
    from tcpwise.scenarios import run_scenario

    color = sys.stdout.isatty()
    rc = 0
    for sid in ("handshake", "close"):
        run = run_scenario(sid)
        print(render(run, "text", lang=args.lang, color=color))
        print()
        rc |= 0 if run.ok else 1
    if not args.no_report:
        import os

        from tcpwise.render.report import build_report
        from tcpwise.scenarios.gallery import catalogue_entries

        result = build_report(args.report, catalogue_entries(lang=args.lang), lang=args.lang)
        n = len(result.entries)
        print(f"Report gallery of {n} scenarios ({n - len(result.failing)} passing all checks):")
        print(f"  open file://{os.path.abspath(result.index)}")
        rc |= 1 if result.failing else 0
    return rc

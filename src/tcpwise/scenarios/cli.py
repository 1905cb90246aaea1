"""``tcpwise scenarios`` and ``tcpwise sim``: list the catalogue, run a scenario in the model and draw it.

Imports only argparse and :mod:`tcpwise.term` at module level; the catalogue, the simulator and the renderers load
inside the handlers (and inside the completer of ``sim ID``, which lists the scenario ids when TAB is pressed).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tcpwise.outfile import write_output
from tcpwise.render import FORMATS  # the one list of formats (the package __init__ is light)
from tcpwise.term import HelpFormatter, add_color_option, add_wide_option

# write_output is re-exported for callers that import it from here; it lives in tcpwise.outfile.
__all__ = ["register", "write_output", "FORMATS"]

_SIM_EPILOG = """examples:
  tcpwise sim close                             the four-way close, checked
  tcpwise sim lost-last-ack --set time_wait=0   model-only: B gets a RST
  tcpwise sim syn-flood --set syncookies=1      the flood with SYN cookies
  tcpwise sim handshake --format svg -o handshake.svg
  tcpwise sim close --format pcap -o close.pcap   open it in Wireshark
  tcpwise sim rst-on-timeout --every-segment    no summary row for the bulk
  tcpwise sim close --lang zh --color never     Chinese, no colour
  tcpwise sim client-leak --wide                three lanes side by side

exit status: 0 when every check holds, 1 when one fails, 2 on bad input.
"""
_LIST_EPILOG = """examples:
  tcpwise scenarios
  tcpwise scenarios --lang zh
  tcpwise scenarios --json
"""


def _scenario_ids(**_: Any) -> list[str]:
    """argcomplete completer of ``sim ID``: the catalogue's ids."""
    from tcpwise.scenarios import catalogue

    return [sc.id for sc in catalogue()]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scenarios",
        help="list the scenario catalogue",
        description="List every scenario id with its title; [lab] marks those the kernel lab can run too "
        "(tcpwise lab run ID). The claims behind each title are in docs/scenarios.md and in `--json`.",
        epilog=_LIST_EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="machine-readable list with claims and parameters")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="language of the titles")
    add_wide_option(p)
    p.set_defaults(handler=_cmd_scenarios)

    s = sub.add_parser(
        "sim",
        help="run a scenario in the model and draw it",
        description="Run scenario ID in the deterministic simulator, check its claims, and render it: a sequence "
        "diagram with seq/ack, windows, state changes and timers, then the checks and the narrative.",
        epilog=_SIM_EPILOG,
        formatter_class=HelpFormatter,
    )
    ident = s.add_argument("id", metavar="ID", help="scenario id (see `tcpwise scenarios`)")
    setattr(ident, "completer", _scenario_ids)  # noqa: B010 - argcomplete reads this attribute of the action
    s.add_argument(
        "--seed", type=int, default=1, metavar="N", help="random seed: the same seed gives the same run"
    )
    s.add_argument("--format", "-f", default="text", choices=FORMATS, metavar="FMT", help="output format")
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    s.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="K=V",
        help="override a scenario parameter (repeatable), e.g. --set time_wait=0",
    )
    s.add_argument(
        "--budget",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="stop a run that takes longer than this wall time, with an error",
    )
    s.add_argument("--absolute", action="store_true", help="raw sequence numbers instead of relative ones")
    s.add_argument(
        "--lang", choices=("en", "zh"), default="en", help="language of labels, checks and narrative"
    )
    s.add_argument(
        "--every-segment",
        action="store_true",
        help="draw every segment of a bulk transfer instead of one summary row (text, svg, html)",
    )
    add_color_option(s)
    add_wide_option(s)
    s.set_defaults(handler=_cmd_sim)


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from tcpwise.i18n import label
    from tcpwise.scenarios import catalogue
    from tcpwise.term import Column, output_width, table

    cat = catalogue()
    if args.json:
        print(json.dumps([sc.to_dict() for sc in cat], indent=1, ensure_ascii=False))
        return 0
    lab = label("lab_mark", args.lang)
    rows = [
        (sc.id, (sc.title_zh if args.lang == "zh" else sc.title) + (f" [{lab}]" if sc.lab else ""))
        for sc in cat
    ]
    cols = [Column(label("id", args.lang)), Column(label("title", args.lang), flex=True, min=20)]
    print("\n".join(table(cols, rows, width=output_width(args.wide))))
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from tcpwise.errors import UsageError
    from tcpwise.i18n import label, msg
    from tcpwise.render import render
    from tcpwise.scenarios import run_scenario
    from tcpwise.scenarios.base import run_budget
    from tcpwise.term import output_width, use_color

    if not (0 < args.budget < float("inf")):
        raise UsageError(f"--budget {args.budget}: must be a positive number of seconds")
    run = run_scenario(args.id, seed=args.seed, overrides=args.sets, budget=run_budget(args.budget))
    color = args.format == "text" and not args.output and use_color(args.color)
    out = render(
        run,
        args.format,
        absolute=args.absolute,
        lang=args.lang,
        color=color,
        width=output_width(args.wide),
        fold=not args.every_segment,
    )
    write_output(out, args.output)
    if args.output:
        bad = [c for c in run.checks if not c.ok]
        status = label("all_hold", args.lang) if not bad else msg("checks_failed", args.lang, n=len(bad))
        print(msg("sim_wrote", args.lang, id=args.id, path=args.output, status=status), file=sys.stderr)
    return 0 if run.ok else 1

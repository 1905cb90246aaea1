"""``tcpwise scenarios`` and ``tcpwise sim``: list the catalogue, run a scenario in the model and draw it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register", "write_output"]

FORMATS = ("text", "json", "mermaid", "svg", "html", "pcap")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scenarios",
        help="list the scenario catalogue",
        description="List every scenario id with its claim (the catalogue of docs/scenarios.md).",
    )
    p.add_argument("--json", action="store_true", help="machine-readable list with parameters")
    p.add_argument("--lang", choices=("en", "zh"), default="en")
    p.set_defaults(handler=_cmd_scenarios)

    s = sub.add_parser(
        "sim",
        help="run a scenario in the model and draw it",
        description="Run scenario ID in the deterministic simulator, check its claims, and render it.",
        epilog="examples:\n  tcpwise sim close\n  tcpwise sim lost-last-ack --set time_wait=0\n"
        "  tcpwise sim handshake --format svg -o handshake.svg\n  tcpwise sim close --format pcap -o close.pcap",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("id", help="scenario id (see `tcpwise scenarios`)")
    s.add_argument("--seed", type=int, default=1, help="random seed (same seed, same run) [1]")
    s.add_argument("--format", "-f", default="text", choices=FORMATS, help="output format [text]")
    s.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    s.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="K=V",
        help="override a parameter (repeatable), e.g. --set time_wait=0",
    )
    s.add_argument("--absolute", action="store_true", help="raw sequence numbers instead of relative ones")
    s.add_argument("--lang", choices=("en", "zh"), default="en", help="language of narratives and checks")
    s.set_defaults(handler=_cmd_sim)


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from tcpwise.scenarios import catalogue

    cat = catalogue()
    if args.json:
        print(json.dumps([sc.to_dict() for sc in cat], indent=1, ensure_ascii=False))
        return 0
    width = max(len(sc.id) for sc in cat)
    for sc in cat:
        title = sc.title_zh if args.lang == "zh" else sc.title
        lab = " [lab]" if sc.lab else ""
        print(f"{sc.id:<{width}}  {title}{lab}")
    return 0


def write_output(data: str | bytes, path: str | None) -> None:
    """Write to a file (atomically: tcpwise.outfile) or stdout; refuses to spill binary onto a terminal."""
    from tcpwise.outfile import write_output as _write

    _write(data, path)


def _cmd_sim(args: argparse.Namespace) -> int:
    from tcpwise.render import render
    from tcpwise.scenarios import run_scenario

    run = run_scenario(args.id, seed=args.seed, overrides=args.sets)
    color = args.format == "text" and not args.output and sys.stdout.isatty()
    out = render(run, args.format, absolute=args.absolute, lang=args.lang, color=color)
    write_output(out, args.output)
    if args.output:
        bad = [c for c in run.checks if not c.ok]
        status = "all checks hold" if not bad else f"{len(bad)} check(s) FAILED"
        print(f"{args.id}: wrote {args.output} ({status})", file=sys.stderr)
    return 0 if run.ok else 1

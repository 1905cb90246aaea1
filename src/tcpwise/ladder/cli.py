"""``tcpwise ladder`` (find idle-timeout inversions) and ``tcpwise ladder-race`` (reproduce one on real nginx/HAProxy)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tcpwise.term import HelpFormatter, add_color_option, add_wide_option

__all__ = ["register"]

CONFIG_KINDS = ("nginx", "haproxy", "envoy", "gunicorn", "uvicorn", "hypercorn", "node", "go")

EPILOG = """examples:
  tcpwise ladder --hop nginx --hop uvicorn     defaults: nginx 60s, uvicorn 5s
  tcpwise ladder --nginx /etc/nginx/nginx.conf --uvicorn Procfile
  tcpwise ladder --hop requests --hop aws-nat --hop go-server:idle=10m
  tcpwise ladder path.toml --format json --fail-on crit   CI: exit 1 if critical
  tcpwise ladder --hop hikaricp --hop azure-nat --hop mysql --sysctl sysctl.conf
  tcpwise ladder --defaults                    the defaults table
  tcpwise ladder --defaults --wide             ... as markdown, with sources
  tcpwise sim keepalive-race --set client_idle=60 --set server_idle=5
  sudo tcpwise ladder-race                       the race on real nginx (lab)

exit codes: 0 ok, 1 a finding at or above --fail-on, 2 bad input
"""

RACE_EPILOG = """examples:
  sudo tcpwise ladder-race              nginx 3s, upstream 1s: 502s; fixed: 0
  sudo tcpwise ladder-race --proxy haproxy
  sudo tcpwise ladder-race --format svg -o race.svg   one failed request, drawn
  sudo tcpwise ladder-race --method GET  nginx retries a GET: no 502s

needs root, network namespaces and nginx/haproxy (apt-get install nginx
haproxy). Namespaces: tcpwise-lab<pid hex>-*; after a SIGKILL, remove them
with `tcpwise lab clean` (or --run lab<pid hex>).
"""


class _Chain(argparse.Action):
    """Keep --hop and the config options in command-line order (the order of the path)."""

    def __call__(self, parser: Any, ns: argparse.Namespace, value: Any, option: str | None = None) -> None:
        chain = list(getattr(ns, "chain", None) or [])
        chain.append((self.dest, value))
        ns.chain = chain


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ladder",
        help="find idle-timeout inversions along a path (502s, resets)",
        description="Check the ladder of idle timeouts from the client inwards: every hop\n"
        "must give up an idle connection before the next hop does. Hops come from\n"
        "PATH (TOML/YAML), --hop and real config files, in command-line order.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("path", nargs="?", metavar="PATH", help="path description (.toml, .yaml, .yml, .json)")
    p.add_argument(
        "--hop",
        dest="hop",
        action=_Chain,
        metavar="KIND[:k=v,...]",
        help="a hop: a kind from --defaults with overrides, e.g. nginx:pool_idle=60s or generic:role=server,idle=5s",
    )
    for kind in CONFIG_KINDS:
        p.add_argument(
            f"--{kind}",
            dest=kind,
            action=_Chain,
            metavar="FILE",
            help=f"a hop read from the {kind} config FILE",
        )
    p.add_argument(
        "--sysctl", metavar="FILE", help="kernel keepalive/conntrack settings (sysctl.conf or sysctl -a)"
    )
    p.add_argument(
        "--margin",
        default=None,
        metavar="DUR|PCT",
        help="safety margin (2s, 10%%; default: 10%%, at least 1s, at most half the timeout)",
    )
    p.add_argument(
        "--format", "-f", choices=("text", "json"), default="text", help="output format (default text)"
    )
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument(
        "--fail-on",
        choices=("warn", "crit"),
        default=None,
        help="exit 1 when a finding is this severe (default: exit 0 whatever is found)",
    )
    add_wide_option(p)
    add_color_option(p)
    p.add_argument(
        "--defaults",
        action="store_true",
        help="print the defaults table and exit (with --wide: the markdown table with every source link)",
    )
    p.set_defaults(handler=_cmd_ladder, chain=[])

    r = sub.add_parser(
        "ladder-race",
        help="reproduce a keep-alive race on real nginx/HAProxy (root)",
        description="Run nginx (or HAProxy) in front of a Python upstream with a shorter\n"
        "keep-alive in lab namespaces, count the 502s in the proxy's own log, apply\n"
        "the ladder's fix, count again, and draw the packets of one failed request.",
        epilog=RACE_EPILOG,
        formatter_class=HelpFormatter,
    )
    r.add_argument("--proxy", choices=("nginx", "haproxy"), default="nginx", help="the proxy (default nginx)")
    r.add_argument(
        "--upstream-idle",
        type=float,
        default=1.0,
        metavar="S",
        help="upstream keep-alive in seconds (default 1)",
    )
    r.add_argument(
        "--proxy-idle",
        type=float,
        default=3.0,
        metavar="S",
        help="the proxy's upstream keepalive_timeout in seconds (default 3)",
    )
    r.add_argument("--requests", type=int, default=6, metavar="N", help="requests per run (default 6)")
    r.add_argument(
        "--spacing",
        type=float,
        default=None,
        metavar="S",
        help="pause between requests in seconds (default: upstream idle - delay)",
    )
    r.add_argument(
        "--delay",
        type=float,
        default=0.05,
        metavar="S",
        help="one-way delay proxy<->upstream in seconds (default 0.05)",
    )
    r.add_argument("--method", choices=("POST", "GET"), default="POST", help="request method (default POST)")
    r.add_argument(
        "--no-fix", action="store_true", help="only the inverted run (default: then the fixed one too)"
    )
    r.add_argument(
        "--format", "-f", choices=("text", "svg", "json"), default="text", help="output format (default text)"
    )
    r.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the drawing (svg/text) or JSON to FILE (default: stdout)",
    )
    r.set_defaults(handler=_cmd_race)


def _build(args: argparse.Namespace) -> Any:
    from tcpwise.errors import UsageError
    from tcpwise.ladder.parsers.sysctl import read_sysctl
    from tcpwise.ladder.path import (
        LadderPath,
        apply_sysctl,
        check_hop_count,
        hop_from_spec,
        load_path_file,
        read_config,
    )

    lp = load_path_file(args.path) if args.path else LadderPath()
    check_hop_count(len(lp.hops) + len(args.chain), "the path")  # before the command line's configs are read
    for dest, value in args.chain:
        if dest == "hop":
            lp.hops.append(hop_from_spec(value))
        else:
            lp.hops.append(read_config(dest, value, None, {}))
    if args.margin is not None:
        lp.margin = args.margin
    if args.sysctl:
        lp.hops = apply_sysctl(lp.hops, read_sysctl(args.sysctl))
    lp.unique_names()
    if len(lp.hops) < 2:
        raise UsageError(
            "give at least two hops: PATH, --hop KIND or --nginx/--haproxy/... FILE (see --help)"
        )
    return lp


def _cmd_ladder(args: argparse.Namespace) -> int:
    from tcpwise.ladder.presets import defaults_markdown
    from tcpwise.ladder.report import to_json, to_text
    from tcpwise.ladder.rules import analyze
    from tcpwise.term import output_width, use_color

    if args.defaults:
        sys.stdout.write(defaults_markdown() if args.wide else _defaults_table(defaults_markdown()))
        return 0
    lp = _build(args)
    findings = analyze(lp.hops, lp.margin)
    if args.json or args.format == "json":
        sys.stdout.write(to_json(lp.hops, findings))
    else:
        width = output_width(args.wide) or 200  # --wide and piped: as wide as a finding's longest line
        sys.stdout.write(to_text(lp.hops, findings, width=width, color=use_color(args.color)))
    if args.fail_on is not None:
        levels = ("crit",) if args.fail_on == "crit" else ("warn", "crit")
        if any(f.severity in levels for f in findings):
            return 1
    return 0


def _defaults_table(markdown: str) -> str:
    """The markdown defaults table within 80 columns: kind, role, default, setting (wrapped); the source links
    only fit the wide form."""
    from tcpwise.term import Column, output_width, table

    rows = []
    for line in markdown.splitlines()[2:]:
        kind, role, setting, value, _url = (c.strip() for c in line.strip("|").split("|"))
        rows.append((kind, role, value, setting))
    cols = (Column("kind"), Column("role"), Column("default", "right"), Column("setting", flex=True))
    lines = table(cols, rows, width=output_width())
    lines.append("")
    lines.append("sources: tcpwise ladder --defaults --wide (markdown, a link for each)")
    return "\n".join(lines) + "\n"


def _cmd_race(args: argparse.Namespace) -> int:
    from tcpwise.ladder.race import race_report

    return race_report(args)

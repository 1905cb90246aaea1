"""``tcpwise probe``: aim misbehaving TCP peers at your own server.

Cheap to import: the stack, the namespaces and the behaviours are imported inside the handler.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from tcpwise.errors import UNWIND_SIGNALS
from tcpwise.linux.kernel import netns_arg
from tcpwise.term import HelpFormatter, add_color_option

__all__ = ["register"]

FORMATS = ("table", "json", "html")
DEFAULT_REQUEST = r"GET / HTTP/1.1\r\nHost: target\r\n\r\n"

EPILOG = r"""examples:
  tcpwise probe --list                        the behaviours and what passes
  sudo tcpwise probe --serve "python3 -m http.server 8080" --port 8080 \
       --behaviour vanish
  sudo tcpwise probe --port 8080 --all --deadline 3 \
       --serve "python3 -m tcpwise.probe.targets plain --port 8080"
  sudo tcpwise probe --serve "nginx -g 'daemon off;'" --port 80 --all \
       --deadline 90 --format html -o probe.html
  sudo tcpwise probe --netns myns --port 8080 --addr 10.0.0.5 \
       --behaviour syn-flood --format json
  sudo tcpwise probe --clean                  remove what a killed probe left

The target runs in a fresh network namespace (--serve) or already listens in
one (--netns); the probe is a user-space TCP/IP host on a TUN device in that
namespace (198.18.64.1, fd00:64::1). Nothing leaves the namespace.
Exit status: 0 when the probe ran (whatever the verdicts), 2 on bad input or
a missing capability.
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "probe",
        help="aim misbehaving TCP peers at your own server and judge how it copes (root)",
        description="Run the tcpwise endpoint as a user-space host on a TUN device and make it\n"
        "misbehave the ways kernel sockets never do (vanish, zero window, slowloris,\n"
        "SYN flood, unacknowledged FIN, blind RST ...) against a server in a network\n"
        "namespace; report what the server did, what it left behind, what to set.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    where = p.add_argument_group("target (one of --serve / --netns, with --port)")
    where.add_argument(
        "--serve", metavar="CMD", help="shell command tcpwise starts in a new namespace (default: none)"
    )
    where.add_argument(
        "--netns",
        type=netns_arg,
        metavar="NS",
        help="existing namespace whose listener is probed (default: none)",
    )
    where.add_argument("--port", type=int, metavar="P", help="the target's TCP port, 1-65535 (required)")
    where.add_argument(
        "--addr",
        metavar="A",
        help="address to connect to (default: 198.18.64.254, or fd00:64::fe with --ipv6)",
    )
    where.add_argument("--ipv6", action="store_true", help="probe over IPv6 (default: IPv4)")
    where.add_argument(
        "--sysctl",
        action="append",
        default=[],
        metavar="K=V",
        help="per-namespace net.* sysctl for the target's namespace, repeatable (default: kernel defaults)",
    )
    where.add_argument(
        "--startup",
        type=float,
        default=10.0,
        metavar="S",
        help="wait S s for the target to listen (default 10)",
    )
    what = p.add_argument_group("what to run")
    what.add_argument(
        "--behaviour",
        "--behavior",
        action="append",
        default=[],
        metavar="NAME",
        help="a behaviour to run, repeatable (see --list)",
    )
    what.add_argument("--all", action="store_true", help="run every behaviour, in --list order")
    what.add_argument("--list", action="store_true", help="list the behaviours and exit")
    what.add_argument(
        "--deadline",
        type=float,
        default=10.0,
        metavar="S",
        help="how long each behaviour waits for the target to act (default 10 s; real servers' timeouts are "
        "often 60-75 s: raise it to see them)",
    )
    what.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="slow behaviours: seconds per byte (default 1)",
    )
    what.add_argument(
        "--watch",
        type=float,
        default=0.0,
        metavar="S",
        help="after each verdict keep drawing for up to S s, until the target's sockets are gone (default 0)",
    )
    what.add_argument(
        "--flood", type=int, default=1024, metavar="N", help="syn-flood: SYNs to send (default 1024)"
    )
    what.add_argument(
        "--request",
        default=DEFAULT_REQUEST,
        metavar="TEXT",
        help=r"the request behaviours send, with \r \n escapes; '' for none (default: an HTTP/1.1 GET /)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--format", "-f", choices=FORMATS, default="table", help="output format (default table)")
    out.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    out.add_argument("--wide", action="store_true", help="table wider than 80 columns (the terminal's width)")
    add_color_option(out)
    out.add_argument(
        "--clean", action="store_true", help="remove namespaces of probe runs whose process is dead; exit"
    )
    p.set_defaults(handler=_handle)


def _parse_request(text: str) -> bytes:
    from tcpwise.errors import UsageError

    try:
        return text.encode("utf-8").decode("unicode_escape").encode("latin-1")
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise UsageError(f"--request: cannot decode {text!r}: {exc.reason}") from None


def _parse_sysctls(items: list[str]) -> dict[str, str]:
    from tcpwise.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--sysctl {item!r}: expected KEY=VALUE, e.g. net.ipv4.tcp_syncookies=0")
        out[key.strip()] = value.strip()
    return out


def _list(args: argparse.Namespace) -> int:
    from tcpwise.probe.behaviours import BEHAVIOURS

    if args.format == "json":
        import json

        print(
            json.dumps(
                [
                    {"name": b.name, "summary": b.summary, "passes_when": b.passes_when}
                    for b in BEHAVIOURS.values()
                ],
                indent=1,
            )
        )
        return 0
    for b in BEHAVIOURS.values():
        print(f"{b.name:<17} {b.summary}")
        print(f"{'':<17}   pass: {b.passes_when}")
    return 0


def _clean(args: argparse.Namespace) -> int:
    from tcpwise.errors import MissingCapability
    from tcpwise.probe.world import clean

    if os.geteuid() != 0:
        raise MissingCapability("tcpwise probe --clean needs root (it deletes network namespaces)")
    removed = clean()
    for ns in removed:
        print(f"removed namespace {ns}")
    if not removed:
        print("nothing to clean (no namespace of a dead probe run)")
    return 0


def _check(args: argparse.Namespace) -> list[str]:
    from tcpwise.errors import UsageError
    from tcpwise.probe.behaviours import BEHAVIOURS

    if (args.serve is None) == (args.netns is None):
        raise UsageError("give the target as --serve CMD or --netns NS (exactly one), with --port P")
    if args.port is None or not 1 <= args.port <= 65535:
        raise UsageError("--port P is required (1-65535): the port the target listens on")
    for name in args.behaviour:
        if name not in BEHAVIOURS:
            raise UsageError(f"unknown behaviour {name!r} (valid: {', '.join(BEHAVIOURS)}; see --list)")
    if not args.behaviour and not args.all:
        raise UsageError("say what to run: --behaviour NAME (see --list) or --all")
    if not 0 < args.deadline <= 3600:
        raise UsageError(f"--deadline {args.deadline:g}: expected 0 < S <= 3600")
    if not 0 < args.interval <= 600:
        raise UsageError(f"--interval {args.interval:g}: expected 0 < S <= 600")
    if not 1 <= args.flood <= 50000:
        raise UsageError(f"--flood {args.flood}: expected 1-50000")
    if not 0 <= args.watch <= 600:
        raise UsageError(f"--watch {args.watch:g}: expected 0 <= S <= 600")
    if not 0 < args.startup <= 600:
        raise UsageError(f"--startup {args.startup:g}: expected 0 < S <= 600")
    from tcpwise.outfile import check_target

    check_target(args.output)  # before the namespaces are built, not after the probe
    return list(BEHAVIOURS) if args.all else list(dict.fromkeys(args.behaviour))


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM and SIGHUP run the same cleanup as Ctrl-C


def _handle(args: argparse.Namespace) -> int:
    if args.list:
        return _list(args)
    if args.clean:
        return _clean(args)
    names = _check(args)
    request = _parse_request(args.request)
    sysctls = _parse_sysctls(args.sysctl)

    from tcpwise.probe.report import to_html, to_json, to_table, write_atomic
    from tcpwise.probe.runner import Target, run_in_namespace

    target = Target(
        port=args.port,
        serve=args.serve,
        netns=args.netns,
        addr=args.addr,
        ipv6=args.ipv6,
        sysctls=sysctls or None,
        startup=args.startup,
    )
    progress = sys.stderr.isatty() and not args.output and args.format == "table"

    def on_result(r: Any) -> None:
        if progress:
            print(f"  {r.name}: {r.verdict}", file=sys.stderr, flush=True)

    old = {s: signal.signal(s, _raise_interrupt) for s in UNWIND_SIGNALS}
    try:
        results = run_in_namespace(
            target,
            names,
            {
                "deadline": args.deadline,
                "interval": args.interval,
                "flood": args.flood,
                "request": request,
                "watch": args.watch,
            },
            on_result,
        )
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    from tcpwise.probe.runner import NET

    tdict = target.to_dict()
    tdict["addr"] = args.addr or (NET["target6"] if args.ipv6 else NET["target4"])
    if args.format == "json":
        text = to_json(tdict, results)
    elif args.format == "html":
        text = to_html(tdict, results)
    else:
        from tcpwise.term import output_width, use_color

        width = output_width(args.wide) or 200  # --wide and piped: rows as long as they are
        color = not args.output and use_color(args.color)
        text = to_table(tdict, results, width=width, color=color)
    if args.output:
        write_atomic(text, args.output)
        print(f"probe: wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0

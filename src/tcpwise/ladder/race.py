"""``tcpwise ladder-race``: the inverted ladder on real software, the ladder's verdict, the fix, and the proof.

The reproducer (:mod:`tcpwise.ladder.lab_race`) runs twice: with the proxy's pool idle above the upstream's
keep-alive (the inversion), then with the value :func:`tcpwise.ladder.rules.analyze` proposes for the same two
hops. The 502s are counted from the proxy's own access log; the packets of one failed request are taken from the
router's capture through ``tcpwise.trace`` and drawn by the shared renderer.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tcpwise.ladder.units import format_duration

__all__ = ["race_report", "ladder_fix"]


def ladder_fix(proxy: str, proxy_idle: float, upstream_idle: float) -> Any:
    """The ladder's finding for proxy -> upstream (None when the ladder finds nothing)."""
    from tcpwise.ladder.path import hop_from_spec
    from tcpwise.ladder.rules import analyze

    front = hop_from_spec(f"{proxy}:name={proxy}" + (f",pool_idle={proxy_idle}s" if proxy == "nginx" else ""))
    up = hop_from_spec(f"generic:name=upstream,role=server,idle={upstream_idle}s")
    found = [f for f in analyze([front, up]) if f.id in ("idle-inversion", "idle-margin")]
    return found[0] if found else None


def _line(label: str, res: Any) -> str:
    errs = sum("prematurely closed" in ln or " 502 " in ln for ln in res.error_lines)
    return f"  {label:<10}{res.requests} requests -> {res.log_502} x 502 in {res.proxy}'s access log" + (
        f" ({errs} upstream errors logged)" if errs else ""
    )


def race_report(args: argparse.Namespace) -> int:
    from tcpwise.errors import UsageError
    from tcpwise.ladder.lab_race import run_race
    from tcpwise.outfile import check_target, write_output
    from tcpwise.render import render

    check_target(args.output)  # before the lab is built, not after the race
    if args.format in ("svg",) and not args.output:
        raise UsageError("--format svg needs -o FILE")
    common: dict[str, Any] = dict(
        upstream_idle=args.upstream_idle,
        requests=args.requests,
        spacing=args.spacing,
        delay=args.delay,
        method=args.method,
    )
    bad = run_race(args.proxy, proxy_idle=args.proxy_idle, **common)
    finding = ladder_fix(args.proxy, args.proxy_idle, args.upstream_idle)
    good = None
    if not args.no_fix and finding is not None:
        if args.proxy == "nginx":
            good = run_race("nginx", proxy_idle=float(finding.setting["value"]), draw=False, **common)
        else:
            good = run_race("haproxy", proxy_idle=args.proxy_idle, haproxy_retry=True, draw=False, **common)
    ok = bad.log_502 > 0 and (good is None or good.log_502 == 0)
    if args.format == "json":
        doc = {
            "inverted": bad.to_dict(),
            "finding": finding.to_dict() if finding else None,
            "fixed": good.to_dict() if good else None,
            "failed_request": bad.failed.to_dict() if bad.failed else None,
        }
        write_output(json.dumps(doc, indent=1) + "\n", args.output)
        return 0 if ok else 1
    idle_desc = (
        f"nginx upstream keepalive_timeout {format_duration(args.proxy_idle)}"
        if args.proxy == "nginx"
        else "HAProxy reuses idle server connections (no idle timeout of its own)"
    )
    out = [
        f"{args.proxy} keep-alive race: upstream keep-alive {format_duration(args.upstream_idle)}, {idle_desc};",
        f"one {args.method} every {format_duration(bad.spacing)} (one-way delay {format_duration(args.delay)}).",
        _line("inverted:", bad),
    ]
    if finding is not None:
        out.append(f"  ladder:   {finding.severity.upper()} {finding.id}; fix: {finding.setting['text']}")
    if good is not None:
        out.append(_line("fixed:", good))
    sys.stdout.write("\n".join(out) + "\n")
    if bad.failed is not None:
        if args.format == "svg":
            write_output(str(render(bad.failed, "svg")), args.output)
            print(f"the packets of one failed request: {args.output}", file=sys.stderr)
        else:
            text = str(render(bad.failed, "text", color=sys.stdout.isatty() and not args.output))
            if args.output:
                write_output(text, args.output)
            else:
                sys.stdout.write(
                    "\nThe packets of one failed request (proxy A -> upstream B, at the router):\n" + text
                )
    return 0 if ok else 1

"""What ``tcpwise ladder`` prints: the ladder as a table (80 columns), the findings, or the JSON contract.

JSON (scripts depend on it; docs/ladder.md)::

    {"hops": [{"name", "kind", "role", "idle", "pool_idle", "keepalive", "heartbeat", "max_lifetime",
               "hard_limit", "read_timeout", "sources": {field: where}, "on_expire"?, "notes"?}, ...],
     "findings": [{"id", "severity", "hops": [a, b], "message", "fix",
                   "consequence", "setting": {"hop", "field", "where", "text"}, "reproduce"}, ...]}

Durations are seconds (float), ``"never"`` for no limit, ``null`` when unknown.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from tcpwise.ladder.model import Hop
from tcpwise.ladder.rules import Finding
from tcpwise.ladder.units import format_duration

__all__ = ["to_json", "to_text"]


def to_json(hops: list[Hop], findings: list[Finding]) -> str:
    doc: dict[str, Any] = {"hops": [h.to_dict() for h in hops], "findings": [f.to_dict() for f in findings]}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _cell(h: Hop, name: str) -> str:
    v = h.get(name)
    if v is None:
        return "-"
    return "never" if v.seconds is None else format_duration(v.seconds)


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def to_text(hops: list[Hop], findings: list[Finding], *, width: int = 80, color: bool = False) -> str:
    # ``color`` is the caller's decision (tcpwise.term.use_color: --color always wins over NO_COLOR)
    out = [
        "The ladder, client first. idle: closes an idle connection from the previous",
        "hop after; pool: keeps an idle connection to the next hop for.",
        "",
    ]
    out.append(f"  {'#':>2} {'hop':<14} {'kind':<10} {'idle':>8} {'pool':>8} {'keepalive':>9}  from")
    for i, h in enumerate(hops, 1):
        srcs = sorted({v.source.where() for v in h.values.values()} - {"default"})
        origin = ", ".join(srcs) if srcs else "defaults"
        idle = _cell(h, "idle") + ("*" if h.is_middlebox else "")
        line = f"  {i:>2} {h.name[:14]:<14} {h.kind[:10]:<10} {idle:>8} {_cell(h, 'pool_idle'):>8} {_cell(h, 'keepalive'):>9}  "
        room = max(10, width - len(line))
        out.append(line + (origin if len(origin) <= room else origin[: room - 1] + "…"))
    if any(h.is_middlebox for h in hops):
        out.append("     * a middlebox: forgets a silent flow after this long")
    notes = [(h.name, n) for h in hops for n in h.notes]
    for name, n in notes:
        out.extend(textwrap.wrap(f"note ({name}): {n}", width, initial_indent="  ", subsequent_indent="    "))
    out.append("")
    if not findings:
        out.append(
            _paint(
                "No findings: every hop gives up an idle connection before the next one does.", "32", color
            )
        )
        return "\n".join(out) + "\n"
    crit = sum(f.severity == "crit" for f in findings)
    out.append(f"Findings: {crit} critical, {len(findings) - crit} other")
    for f in findings:
        tag = {"crit": _paint("CRIT", "1;31", color), "warn": _paint("WARN", "33", color)}.get(
            f.severity, "INFO"
        )
        out.append("")
        out.append(f"{tag} {f.id}: {f.hops[0]} -> {f.hops[1]}")
        for label, text in (("", f.message), ("then: ", f.consequence), ("fix: ", f.fix)):
            if text:
                out.extend(textwrap.wrap(label + text, width, initial_indent="  ", subsequent_indent="    "))
        if f.setting.get("where"):
            out.append(f"  change: {f.setting['where']}")
        if f.reproduce:
            out.extend(
                textwrap.wrap("see it: " + f.reproduce, width, initial_indent="  ", subsequent_indent="    ")
            )
    return "\n".join(out) + "\n"

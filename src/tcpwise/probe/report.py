"""The probe's outputs: an 80-column table, the JSON contract, and an HTML page with each connection drawn.

The JSON shape is a contract scripts depend on (docs/probe.md)::

    {"target": {...}, "behaviours": [{"name", "verdict": "pass"|"fail", "closed_after_s" (null if never),
     "closed_by": "target"|"probe"|null, "how": "FIN"|"RST"|null, "left": {"states": {...}, "fds": N},
     "finding": {...}|null}]}

The HTML page draws every behaviour's connection with the shared SVG renderer (:mod:`tcpwise.render`) from the
probe's own event log: the probe's lane and the target's lane (its states from sock_diag).
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
import textwrap
from collections.abc import Sequence
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.probe.core import Result
from tcpwise.term import fmt_seconds

__all__ = ["to_json", "to_table", "to_html", "write_atomic", "contract", "closed_text", "left_text"]


def contract(target: dict[str, Any], results: Sequence[Result]) -> dict[str, Any]:
    return {"target": target, "behaviours": [r.to_dict() for r in results]}


def to_json(target: dict[str, Any], results: Sequence[Result]) -> str:
    return json.dumps(contract(target, results), indent=1, ensure_ascii=False) + "\n"


def closed_text(r: Result) -> str:
    if r.closed_after_s is None:
        return "never" if r.verdict == "fail" else "-"
    how = f" {r.how}" if r.how else " (silently)"
    return f"{fmt_seconds(r.closed_after_s)} {r.closed_by}{how}"  # 10 ms, 3.02 s, 61.1 s


def left_text(r: Result) -> str:
    parts = [f"{s} {n}" for s, n in sorted(r.states.items())]
    if r.fds:
        parts.append(f"+{r.fds} fd")
    return ", ".join(parts) or "nothing"


def _target_text(target: dict[str, Any]) -> str:
    where = f"`{target['serve']}`" if target.get("serve") else f"namespace {target.get('netns')}"
    return f"{where} on {target.get('addr')} port {target.get('port')}"


def to_table(target: dict[str, Any], results: Sequence[Result], width: int = 80, color: bool = False) -> str:
    """The terminal view: one row per behaviour, then each finding with its advice, wrapped to ``width``."""

    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    lines = textwrap.wrap(f"tcpwise probe: {_target_text(target)}", width, subsequent_indent="  ") + [""]
    head = f"{'behaviour':<17} {'verdict':<7} {'closed after':<19} left behind"  # noqa: E501
    lines.append(head)
    for r in results:
        verdict = paint("PASS", "32") if r.verdict == "pass" else paint("FAIL", "31;1")
        left = left_text(r)
        room = max(10, width - 46)
        if len(left) > room:
            left = left[: room - 1] + "…"
        lines.append(f"{r.name:<17} {verdict}{' ' * 4}{closed_text(r):<19} {left}")
    passed = sum(1 for r in results if r.verdict == "pass")
    lines += ["", f"{passed} of {len(results)} passed."]
    findings = [r for r in results if r.finding is not None]
    if findings:
        lines += ["", "Findings:"]
        for r in findings:
            f = r.finding
            assert f is not None
            lines += textwrap.wrap(
                f"{r.name} [{f.id}]: {f.message}", width, initial_indent="  ✗ ", subsequent_indent="    "
            )
            lines += textwrap.wrap(
                f"advice: {f.advice}", width, initial_indent="    ", subsequent_indent="      "
            )
    return "\n".join(lines) + "\n"


_XML_DECL = re.compile(r"^\s*<\?xml[^>]*>\s*")

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
.pass { color: #17803d; font-weight: 600; } .fail { color: #b42318; font-weight: 600; }
section { margin: 2.5em 0; } .advice { color: #444; } .diagram { overflow-x: auto; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def to_html(target: dict[str, Any], results: Sequence[Result]) -> str:
    """One self-contained page: the verdict table, then per behaviour its finding and its connection drawn."""
    from tcpwise.render import render

    e = html.escape
    rows = []
    for r in results:
        rows.append(
            f"<tr><td><a href='#{e(r.name)}'>{e(r.name)}</a></td><td class='{r.verdict}'>{r.verdict.upper()}</td>"
            f"<td>{e(closed_text(r))}</td><td>{e(left_text(r))}</td></tr>"
        )
    sections = []
    for r in results:
        parts = [
            f"<section id='{e(r.name)}'><h2>{e(r.name)} — <span class='{r.verdict}'>{r.verdict}</span></h2>"
        ]
        if r.run is not None:
            parts.append(f"<p>{e(r.run.summary.get('text', ''))}</p>")
        if r.finding is not None:
            parts.append(f"<p><b>{e(r.finding.id)}</b>: {e(r.finding.message)}</p>")
            parts.append(f"<p class='advice'>Advice: {e(r.finding.advice)}</p>")
        if r.run is not None and r.run.events:
            svg = render(r.run, "svg")
            assert isinstance(svg, str)
            parts.append(f"<div class='diagram'>{_XML_DECL.sub('', svg)}</div>")
        parts.append("</section>")
        sections.append("\n".join(parts))
    title = f"tcpwise probe: {_target_text(target)}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{e(title)}</h1>\n<table><tr><th>behaviour</th><th>verdict</th><th>closed after</th>"
        f"<th>left behind</th></tr>\n{''.join(rows)}</table>\n"
        f"<p>{sum(r.verdict == 'pass' for r in results)} of {len(results)} passed. Each diagram shows one "
        "connection from both sides of the TUN device: the probe's endpoint (left) and the target (right), "
        "whose states come from sock_diag.</p>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def write_atomic(data: str, path: str) -> None:
    """Write ``path`` through a temporary file in the same directory and a rename: never half a file."""
    d = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tcpwise-probe-", dir=d)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None

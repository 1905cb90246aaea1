"""Mermaid ``sequenceDiagram`` of a run, for pasting into Markdown (GitHub, GitLab and most wikis draw it).

Theory of operation
-------------------
Mermaid has no time axis, only order, so the diagram follows event order: each transmitted segment is one
message at its send position (``A->>B: FA seq=1 ack=1 len=0 win=65535``), a lost one is a ``-x`` message, a
network duplicate or a segment nobody was seen sending is dotted (``-->>``). State changes, timers, application
calls and notes become ``Note over HOST``; a long idle gap becomes a note across all lanes (``≈ 60 s later``).
Mermaid's own syntax reserves ``;`` and ``#`` in message text; they are written as its entity codes.
"""

from __future__ import annotations

import re

from tcpwise.events import Run
from tcpwise.i18n import label
from tcpwise.render.diagram import GLOBAL, Arrow, Diagram, Mark, build
from tcpwise.render.textutil import human_gap

__all__ = ["render_mermaid"]


def _esc(text: str) -> str:
    # Mermaid entity codes (#35; = '#', #59; = ';'); newlines would end the statement
    return re.sub(r"[#;]", lambda m: "#35;" if m.group() == "#" else "#59;", text.replace("\n", " "))


def _ids(d: Diagram) -> list[str]:
    ids: list[str] = []
    for i, lane in enumerate(d.lanes):
        base = re.sub(r"[^A-Za-z0-9_]", "_", lane.name) or f"H{i}"
        if base[0].isdigit():
            base = "H" + base
        while base in ids:
            base += f"_{i}"
        ids.append(base)
    return ids


def _arrow(a: Arrow, ids: list[str], lang: str) -> str:
    src, dst = ids[a.src], ids[a.dst]
    text = a.label
    if a.lost:
        op = "-x"
        text += (
            f" ({label('lost', lang)}" + (f": {a.reason}" if a.reason and a.reason != "loss" else "") + ")"
        )
    elif a.dup or a.orphan:
        op = "-->>"
        text += " (dup)" if a.dup else ""
    else:
        op = "->>"
    return f"    {src}{op}{dst}: {_esc(text)}"


def _note(m: Mark, ids: list[str], multi: bool) -> str:
    if m.kind == "state":
        text = f"{m.from_state or '?'} → {m.to_state or '?'}"
        if multi and m.conn:
            text = f"{m.conn}: {text}"
    elif m.kind == "timer":
        text = f"⏱ {m.text}"
    else:
        text = m.text
    if m.lane == GLOBAL:
        span = f"{ids[0]},{ids[-1]}" if len(ids) > 1 else ids[0]
        return f"    Note over {span}: {_esc(text)}"
    return f"    Note over {ids[m.lane]}: {_esc(text)}"


def render_mermaid(run: Run, *, absolute: bool = False, lang: str = "en") -> str:
    d = build(run, absolute=absolute, lang=lang)
    ids = _ids(d)
    lines = ["sequenceDiagram"]
    if run.title:
        lines.append(f"    title {_esc(run.scenario)}: {_esc(run.title)}")
    for i, lane in enumerate(d.lanes):
        lines.append(f"    participant {ids[i]} as {_esc(lane.title)}")
    for i, lane in enumerate(d.lanes):
        if lane.initial:
            lines.append(f"    Note over {ids[i]}: {_esc(', '.join(dict.fromkeys(lane.initial.values())))}")
    times = sorted({it.t for it in d.items})
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False) if b > a)
    idle = max(1.0, 20 * gaps[len(gaps) // 2]) if gaps else 1.0
    span = f"{ids[0]},{ids[-1]}" if len(ids) > 1 else (ids[0] if ids else "")
    multi = {i: len(lane.conns) > 1 for i, lane in enumerate(d.lanes)}
    last_t: float | None = None
    for it in d.items:
        if it.kind == "recv" and it.arrow is not None and not (it.arrow.dup or it.arrow.orphan):
            continue
        if last_t is not None and it.t - last_t >= idle and span:
            lines.append(f"    Note over {span}: ≈ {human_gap(it.t - last_t)} {label('gap', lang)}")
        last_t = it.t
        if it.arrow is not None:
            lines.append(_arrow(it.arrow, ids, lang))
        elif it.mark is not None and ids:
            lines.append(_note(it.mark, ids, multi.get(it.mark.lane, False)))
    if d.truncated and span:
        lines.append(f"    Note over {span}: … {d.truncated} {label('truncated', lang)}")
    return "\n".join(lines) + "\n"

"""Self-contained SVG sequence diagram (and time-series plot) of a run, readable without zooming.

Theory of operation
-------------------
The picture has one vertical lane per host. Along each lane a coloured *state band* shows the connection's
state (one thin sub-band per connection when a host owns several); a pill at each change names the new state
on the lane's outer side, in a column of its own, and beyond it the lane's timers (◯), application calls and
notes. Every transmitted segment is a sloped arrow from the sender at its send time to the receiver at its
arrival time, labelled near its sender (``SA seq=0 ack=1 len=0 win=65535``, relative numbers by default, options
in the tooltip). A lost segment stops at a red cross with its reason. A bulk transfer is folded into one framed
row ("48 data segments B → A, 65.5 kB, ...", :mod:`.fold`) unless ``fold=False``.

Time runs downwards but is not linear: one linear scale would make a 10 ms handshake a hair's width beside a
60 s TIME_WAIT. Each step between consecutive events gets a height that grows with the logarithm of its
duration (relative to the run's typical spacing); a truly idle gap (≥ 1 s and ≥ 50x the typical spacing) is
drawn as a broken axis marked ``≈ 60 s``. Exact times are printed in the left column.

Nothing overlaps: :mod:`.svglayout` measures every label with the metrics of the fonts named here
(:mod:`.measure`) and grows rows until no two labels touch; each label is one ``<g class="lbl">``, which is what
the browser test measures. Runs with ``series`` (the large scenarios) get a small-multiples line plot, one panel
per series with its own y axis, titled above the panel. Everything is inline: no fonts, scripts or images are
fetched; the font stacks name DejaVu (fonts-dejavu-core) and Noto Sans CJK SC (fonts-noto-cjk) first, then
the usual system fonts of other platforms.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from tcpwise.events import Run
from tcpwise.i18n import label, run_title, series_name, world_text
from tcpwise.render.diagram import Diagram, build
from tcpwise.render.fold import fold as fold_bulk
from tcpwise.render.measure import text_width
from tcpwise.render.svglayout import (
    TIME_COL,
    TOP,
    FoldP,
    Group,
    IconP,
    LineP,
    PillP,
    Plan,
    TextP,
    head_texts,
    plan,
)
from tcpwise.term import wrap
from tcpwise.vocab import STATE_COLORS

__all__ = ["render_svg", "diagram_svg", "series_svg", "SANS", "MONO"]

SANS = (
    '"DejaVu Sans", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", '
    '"Microsoft YaHei", Helvetica, Arial, sans-serif'
)
MONO = (
    '"DejaVu Sans Mono", "Noto Sans Mono CJK SC", "Noto Sans CJK SC", Menlo, Consolas, "Liberation Mono", '
    '"Microsoft YaHei", monospace'
)
_HALO = "paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round"
_STYLE = f"""
text{{font-family:{SANS};fill:#222;{_HALO}}}
.tw-title{{font-size:18px;font-weight:bold}}
.tw-sub{{font-size:13px;fill:#555}}
.tw-host{{font-size:15px;font-weight:bold}}
.tw-addr{{font-size:12px;fill:#555}}
.tw-seg{{font-family:{MONO};font-size:12px;fill:#111}}
.tw-lost{{fill:#c62828}}
.tw-dup{{fill:#777}}
.tw-time{{font-family:{MONO};font-size:11px;fill:#666}}
.tw-gap{{font-size:13px;font-weight:bold;fill:#8a5a00}}
.tw-state{{font-family:{MONO};font-size:11px;font-weight:bold;fill:#222;stroke:none}}
.tw-mark{{font-size:12px;fill:#333}}
.tw-app{{font-style:italic;fill:#7a4b00}}
.tw-timer{{fill:#8e24aa}}
.tw-note{{fill:#555}}
.tw-why{{font-size:11px;fill:#c62828}}
.tw-fold{{font-size:12px;font-weight:bold;fill:#1f3b73;stroke:#eef3fb}}
.tw-legend{{font-size:12px;fill:#333}}
.tw-ok{{fill:#2e7d32;font-weight:bold}}
.tw-bad{{fill:#c62828;font-weight:bold}}
.tw-axis{{font-family:{MONO};font-size:11px;fill:#555}}
"""
_LANE_HEAD_Y = (TOP - 54, TOP - 38, TOP - 22)  # baselines of a lane head's name, address/role, first state


def _x(s: str) -> str:
    return escape(s, {'"': "&quot;"})


def _f(v: float) -> str:
    return f"{v:.1f}"


# -- primitives ----------------------------------------------------------------------------------------------------
def _text(t: TextP) -> str:
    anchor = "" if t.anchor == "start" else f' text-anchor="{t.anchor}"'
    if len(t.lines) == 1:
        return f'<text class="{t.cls}" x="{_f(t.x)}" y="{_f(t.y)}"{anchor}>{_x(t.lines[0])}</text>'
    spans = "".join(
        f'<tspan x="{_f(t.x)}" dy="{0 if i == 0 else 14}">{_x(line)}</tspan>'
        for i, line in enumerate(t.lines)
    )
    return f'<text class="{t.cls}" x="{_f(t.x)}" y="{_f(t.y)}"{anchor}>{spans}</text>'


def _pill(p: PillP) -> str:
    return (
        f'<rect class="tw-solid" x="{_f(p.x)}" y="{_f(p.y - 8)}" width="{_f(p.w)}" height="16" rx="8" '
        f'fill="{p.color}" stroke="#777" stroke-width="0.6"/>'
        f'<text class="tw-state" x="{_f(p.x + p.w / 2)}" y="{_f(p.y + 4)}" text-anchor="middle">{_x(p.text)}</text>'
    )


def _icon(i: IconP) -> str:
    if i.kind == "cross":
        s = 6
        return (
            f'<path class="tw-solid" d="M{_f(i.x - s)},{_f(i.y - s)}L{_f(i.x + s)},{_f(i.y + s)}'
            f'M{_f(i.x - s)},{_f(i.y + s)}L{_f(i.x + s)},{_f(i.y - s)}" stroke="#c62828" stroke-width="2.6"/>'
        )
    return (
        f'<circle class="tw-solid" cx="{_f(i.x)}" cy="{_f(i.y)}" r="5" fill="#fff" stroke="#8e24aa" '
        f'stroke-width="2"/><path d="M{_f(i.x)},{_f(i.y - 3)}V{_f(i.y)}H{_f(i.x + 2.5)}" stroke="#8e24aa" '
        f'stroke-width="1.2" fill="none"/>'
    )


def _block(b: FoldP) -> str:
    if b.kind == "note":
        return (
            f'<rect class="tw-solid" x="{_f(b.x0)}" y="{_f(b.y0)}" width="{_f(b.x1 - b.x0)}" '
            f'height="{_f(b.y1 - b.y0)}" rx="4" fill="#fff8dc" stroke="#d9c27a" stroke-width="0.8"/>'
        )
    ax0, ax1 = (b.x0 + 10, b.x1 - 10) if b.rightward else (b.x1 - 10, b.x0 + 10)
    ay = b.y1 - 9
    return (
        f'<rect class="tw-solid" x="{_f(b.x0)}" y="{_f(b.y0)}" width="{_f(b.x1 - b.x0)}" height="{_f(b.y1 - b.y0)}" '
        f'rx="6" fill="#eef3fb" stroke="#9db4d6" stroke-width="1" stroke-dasharray="5 3"/>'
        f'<line x1="{_f(ax0)}" y1="{_f(ay)}" x2="{_f(ax1)}" y2="{_f(ay)}" stroke="#1f3b73" stroke-width="3" '
        f'marker-end="url(#tw-head)"/>'
    )


def group_svg(g: Group) -> str:
    """One label as ``<g class="lbl">``: the unit the overlap test measures."""
    parts = ['<g class="lbl">']
    if g.title:
        parts.append(f"<title>{_x(g.title)}</title>")
    for p in g.prims:
        if isinstance(p, TextP):
            parts.append(_text(p))
            if p.cls == "tw-time":
                parts.append(
                    f'<line x1="{TIME_COL - 4}" y1="{_f(p.y - 4)}" x2="{TIME_COL + 2}" y2="{_f(p.y - 4)}" '
                    f'stroke="#999"/>'
                )
        elif isinstance(p, PillP):
            parts.append(_pill(p))
        elif isinstance(p, IconP):
            parts.append(_icon(p))
        elif isinstance(p, FoldP):
            parts.append(_block(p))
    parts.append("</g>")
    return "".join(parts)


_LINE_STYLE = {
    "arrow": ('stroke="#1f3b73" stroke-width="1.6"', True),
    "lost": ('stroke="#c62828" stroke-width="1.6"', False),
    "dup": ('stroke="#888" stroke-width="1.6" stroke-dasharray="6 4"', True),
    "flight": ('stroke="#888" stroke-width="1.6" stroke-dasharray="6 4"', True),
    "connector": ('stroke="#999" stroke-width="1"', False),
    "leader": ('stroke="#c62828" stroke-width="0.8" stroke-dasharray="2 2"', False),
}


def _line(ln: LineP) -> str:
    style, head = _LINE_STYLE.get(ln.kind, ('stroke="#999"', False))
    x1, y1 = ln.x1, ln.y1
    if head:  # end the line on the lane: the arrow head's tip is at (x1, y1)
        dx, dy = ln.x1 - ln.x0, ln.y1 - ln.y0
        length = math.hypot(dx, dy) or 1.0
        x1, y1 = ln.x1 - dx / length * 2, ln.y1 - dy / length * 2
    marker = ' marker-end="url(#tw-head)"' if head else ""
    line = f'<line x1="{_f(ln.x0)}" y1="{_f(ln.y0)}" x2="{_f(x1)}" y2="{_f(y1)}" {style}{marker}/>'
    return f"<g><title>{_x(ln.title)}</title>{line}</g>" if ln.title else line


# -- the diagram ---------------------------------------------------------------------------------------------------
def _arrow_titles(d: Diagram, p: Plan, lang: str) -> None:
    """Hover text of each arrow: label, options, times, loss reason."""
    by_start: dict[tuple[float, float], str] = {}
    for a in d.arrows:
        if a.send_index < 0:
            continue
        opts = a.seg.opts or {}
        tip = a.label + (" " + " ".join(f"{k}={v}" for k, v in opts.items()) if opts else "")
        tip += f"  t={a.t0:.6g}" + (f"→{a.t1:.6g}" if a.t1 is not None else "")
        if a.lost:
            tip += f"  {label('lost', lang)}" + (f" ({a.reason})" if a.reason else "")
        x0 = p.lane_x[a.src]
        y0 = p.rows[a.send_index] - (14 if a.orphan else 0)
        by_start.setdefault((round(x0, 1), round(y0, 1)), tip)
    for ln in p.lines:
        if ln.kind in ("arrow", "lost", "dup"):
            ln.title = by_start.get((round(ln.x0, 1), round(ln.y0, 1)), "")


def _bands(d: Diagram, p: Plan) -> list[str]:
    """State bands: per lane and connection, a rect from each state change to the next."""
    out: list[str] = []
    for li, lane in enumerate(d.lanes):
        conns = lane.conns or [""]
        k = min(len(conns), 8)
        total = 14.0
        w = total / k
        x_left = p.lane_x[li] - total / 2
        current: dict[str, tuple[float, str]] = {c: (float(TOP) - 10, s) for c, s in lane.initial.items()}
        segs: list[tuple[str, float, float, str]] = []
        for idx, it in enumerate(d.items):
            m = it.mark
            if m is None or m.kind != "state" or m.lane != li:
                continue
            c = m.conn or ""
            start, state = current.get(c, (p.rows[idx], m.from_state or "CLOSED"))
            segs.append((c, start, p.rows[idx], state))
            current[c] = (p.rows[idx], m.to_state or "CLOSED")
        for c, (start, state) in current.items():
            segs.append((c, start, p.bottom - 10, state))
        for c, y0, y1, state in segs:
            if state == "CLOSED" or y1 <= y0:
                continue
            ci = conns.index(c) if c in conns else 0
            if ci >= k:
                continue
            out.append(
                f'<rect x="{_f(x_left + ci * w)}" y="{_f(y0)}" width="{_f(w)}" height="{_f(y1 - y0)}" '
                f'fill="{STATE_COLORS.get(state, "#ddd")}"><title>{_x(state)}</title></rect>'
            )
    return out


def _heads(d: Diagram, p: Plan, lang: str) -> list[str]:
    out: list[str] = []
    classes = ("tw-host", "tw-addr", "tw-state")
    for i in range(len(d.lanes)):
        x = p.lane_x[i]
        out.append(
            f'<line x1="{_f(x)}" y1="{TOP - 16}" x2="{_f(x)}" y2="{_f(p.bottom)}" stroke="#bbb" stroke-width="1.2"/>'
        )
        for (text, size, face), y, cls in zip(head_texts(d, i, lang), _LANE_HEAD_Y, classes, strict=False):
            out.append(group_svg(Group([TextP(x, y, [text], cls, size, face, "middle")])))
    out.append(group_svg(Group([TextP(8, TOP - 22, [label("time_s", lang)], "tw-time", 11, "mono")])))
    return out


def _breaks(p: Plan) -> list[str]:
    out: list[str] = []
    for y0, y1, _dt in p.breaks:
        # two parallel zigzags across the lanes (the classic broken-axis sign); bands show through between them
        for yy in (y0 + 5, y1 - 5):
            wave = " ".join(
                f"L{x:.1f},{yy - 4 + (8 if (i % 2) else 0):.1f}"
                for i, x in enumerate(range(TIME_COL + 8, int(p.width) - 8, 14))
            )
            out.append(
                f'<path d="M{TIME_COL},{yy:.1f} {wave}" stroke="#c9a13b" stroke-width="1.3" fill="none"/>'
            )
    return out


def _legend(d: Diagram, width: float, y: float, lang: str) -> tuple[list[str], float]:
    out: list[str] = []
    if d.truncated:
        out.append(
            group_svg(
                Group([TextP(8, y, [f"… {d.truncated} {label('truncated', lang)}"], "tw-legend", 12, "sans")])
            )
        )
        y += 20
    seen: list[str] = []
    for lane in d.lanes:
        seen.extend(lane.initial.values())
    seen.extend(m.to_state for m in d.marks if m.kind == "state" and m.to_state)
    x = 8.0
    for s in [s for s in STATE_COLORS if s in seen and s != "CLOSED"]:
        w = text_width(s, 12, "sans") + 30
        if x + w > width - 8:
            x = 8.0
            y += 20
        out.append(
            f'<g class="lbl"><rect class="tw-solid" x="{_f(x)}" y="{_f(y - 10)}" width="12" height="12" '
            f'fill="{STATE_COLORS[s]}" stroke="#777" stroke-width="0.5"/>'
            f'<text class="tw-legend" x="{_f(x + 16)}" y="{_f(y)}">{_x(s)}</text></g>'
        )
        x += w
    y += 22
    legend = (
        label("legend_flags_abs" if d.absolute else "legend_flags", lang)
        + f";  ✕ {label('lost', lang)};  ◯ {label('timer', lang)}"
    )
    lines = wrap(legend, width - 16, lambda s: text_width(s, 12, "sans"))
    out.append(group_svg(Group([TextP(8, y, lines, "tw-legend", 12, "sans")])))
    return out, y + 14 * (len(lines) - 1) + 12


def diagram_svg(
    run: Run, *, absolute: bool = False, lang: str = "en", y_offset: float = 0.0, fold: bool = True
) -> tuple[list[str], float, float, int]:
    """The sequence diagram as SVG elements (no ``<svg>`` wrapper), its width and height, and how many arrows a
    folded bulk transfer hides (0 when ``fold`` is False or nothing was folded)."""
    d = build(run, absolute=absolute, lang=lang)
    folded = 0
    if fold:
        d, folded = fold_bulk(d)
    p = plan(d, lang, folded)
    _arrow_titles(d, p, lang)
    out = [f'<g transform="translate(0 {y_offset:.1f})">']
    out.extend(_bands(d, p))
    out.extend(_heads(d, p, lang))
    out.extend(_breaks(p))
    out.extend(_line(ln) for ln in p.lines)
    out.extend(group_svg(g) for g in p.groups)
    legend, bottom = _legend(d, p.width, p.bottom + 8, lang)
    out.extend(legend)
    out.append("</g>")
    return out, p.width, bottom, folded


# -- the series plot -----------------------------------------------------------------------------------------------
def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _num(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:g}k"
    if v == int(v):
        return f"{int(v)}"
    return f"{v:g}"


def _exact(v: float) -> str:
    return f"{int(v):,}" if v == int(v) else f"{v:,.3f}"


_SERIES_COLORS = ["#5e35b1", "#1e88e5", "#e53935", "#43a047", "#fb8c00", "#00897b", "#6d4c41"]


def _lbl(
    x: float, y: float, text: str, cls: str, size: float, face: str, anchor: str = "start", extra: str = ""
) -> str:
    t = _text(TextP(x, y, [text], cls, size, face, anchor))
    if extra:
        t = t.replace("<text ", f"<text {extra} ", 1)
    return f'<g class="lbl">{t}</g>'


def series_svg(
    run: Run, *, lang: str = "en", y_offset: float = 0.0, width: float = 900.0
) -> tuple[list[str], float, float]:
    """One panel per series (own y axis, shared time axis): readable even when the magnitudes differ 1000x. Each
    panel's title sits above it, never under its line."""
    s = run.series or {}
    t = [float(v) for v in s.get("t", [])]
    keys = [k for k in s if k != "t" and len(s[k]) == len(t) and t]
    out = [f'<g transform="translate(0 {y_offset:.1f})">']
    ph, left, right, top = 130.0, 80.0, 30.0, 22.0
    out.append(_lbl(left, top + 14, label("series", lang), "tw-host", 15, "sans-bold"))
    y = top + 30
    if not keys:
        out.append(_lbl(left, y + 14, label("no_events", lang), "tw-legend", 12, "sans"))
        out.append("</g>")
        return out, width, y + 30
    t0, t1 = min(t), max(t)
    tspan = (t1 - t0) or 1.0
    pw = width - left - right
    for ki, k in enumerate(keys):
        vals = [float(v) for v in s[k]]
        vmax = max(vals)
        vmin = min(0.0, min(vals))
        ticks = _nice_ticks(vmin, vmax if vmax > vmin else vmin + 1, 4)
        top_v = max(ticks[-1], vmax) if ticks else vmax
        vspan = (top_v - vmin) or 1.0
        color = _SERIES_COLORS[ki % len(_SERIES_COLORS)]
        peak = max(vals)
        pi = vals.index(peak)
        title = f"{series_name(k, lang)}  ({label('max', lang)} {_exact(peak)} {label('at', lang)} t={_exact(t[pi])} s)"
        y += 18
        out.append(
            _lbl(left, y - 6, title, "tw-legend", 12, "sans-bold", extra=f'font-weight="bold" fill="{color}"')
        )

        def px(tv: float) -> float:
            return left + (tv - t0) / tspan * pw

        def py(v: float, _vmin: float = vmin, _vspan: float = vspan, _y: float = y) -> float:
            return _y + ph - (v - _vmin) / _vspan * ph

        out.append(
            f'<rect x="{left:.1f}" y="{y:.1f}" width="{pw:.1f}" height="{ph:.1f}" fill="#fafafa" stroke="#ccc"/>'
        )
        last_tick_y = math.inf
        for tv in ticks:
            yy = py(tv)
            out.append(
                f'<line x1="{left:.1f}" y1="{yy:.1f}" x2="{left + pw:.1f}" y2="{yy:.1f}" stroke="#e3e3e3"/>'
            )
            if last_tick_y - yy >= 16:  # a tick label needs 15 px
                out.append(_lbl(left - 6, yy + 4, _num(tv), "tw-axis", 11, "mono", "end"))
                last_tick_y = yy
        # decimate to ~2 points per pixel column, keeping each bucket's min and max so peaks survive
        n = len(t)
        step = max(1, n // int(pw))
        pts: list[str] = []
        for i in range(0, n, step):
            chunk = vals[i : i + step]
            lo_v, hi_v = min(chunk), max(chunk)
            xx = px(t[i])
            pts.append(f"{xx:.1f},{py(hi_v):.1f}")
            if lo_v != hi_v:
                pts.append(f"{xx:.1f},{py(lo_v):.1f}")
        out.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" stroke-width="2"/>')
        out.append(f'<circle cx="{px(t[pi]):.1f}" cy="{py(peak):.1f}" r="3.5" fill="{color}"/>')
        y += ph + 10
    last_x = -math.inf
    for tv in _nice_ticks(t0, t1, 8):
        xx = left + (tv - t0) / tspan * pw
        text = _num(tv)
        w = text_width(text, 11, "mono")
        out.append(f'<line x1="{xx:.1f}" y1="{y - 10:.1f}" x2="{xx:.1f}" y2="{y - 4:.1f}" stroke="#777"/>')
        if xx - w / 2 > last_x + 6:
            out.append(_lbl(xx, y + 8, text, "tw-axis", 11, "mono", "middle"))
            last_x = xx + w / 2
    out.append(_lbl(left + pw / 2, y + 26, label("time_s", lang), "tw-axis", 11, "mono", "middle"))
    out.append("</g>")
    return out, width, y + 40


# -- the document --------------------------------------------------------------------------------------------------
_DEFS = (
    '<defs><marker id="tw-head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
    'orient="auto-start-reverse" markerUnits="userSpaceOnUse"><path d="M0,0L10,5L0,10z" fill="context-stroke"/>'
    "</marker></defs>"
)


def render_svg(
    run: Run, *, absolute: bool = False, lang: str = "en", header: bool = True, fold: bool = True
) -> str:
    """The complete standalone SVG document: title, verdict, then the series plot and/or the diagram.
    ``header=False`` leaves out the title lines (the HTML page shows them already); ``fold=False`` draws every
    segment of a bulk transfer."""
    return render_svg_folded(run, absolute=absolute, lang=lang, header=header, fold=fold)[0]


def render_svg_folded(
    run: Run, *, absolute: bool = False, lang: str = "en", header: bool = True, fold: bool = True
) -> tuple[str, int]:
    """:func:`render_svg` and the number of arrows its folds hide (the HTML page offers them behind a control)."""
    head_h = 52.0 if header else 0.0
    parts: list[str] = []
    width = 900.0
    y = head_h
    folded = 0
    if run.series:
        body, w, h = series_svg(run, lang=lang, y_offset=y)
        parts.extend(body)
        width = max(width, w)
        y += h
    if run.events or not run.series:
        body, w, h, folded = diagram_svg(run, absolute=absolute, lang=lang, y_offset=y, fold=fold)
        parts.extend(body)
        width = max(width, w)
        y += h
    title = run_title(run, lang)
    ok = sum(1 for c in run.checks if c.ok)
    verdict_cls = "tw-ok" if run.ok else "tw-bad"
    if run.checks:
        verdict = f"{ok}/{len(run.checks)} " + (label("passed", lang) if run.ok else label("failed", lang))
        verdict = ("✓ " if run.ok else "✗ ") + verdict
    else:
        verdict = label("no_checks", lang)
    meta = f"{label('world', lang)} {world_text(run.world, lang)}" + (
        f" · {label('seed', lang)} {run.seed}" if run.seed is not None else ""
    )
    head: list[str] = []
    if header:
        width = max(
            width,
            text_width(title, 18, "sans-bold") + 16,
            text_width(f"{meta}  {verdict}", 13, "sans-bold") + 16,
        )
        head = [
            _lbl(8, 24, title, "tw-title", 18, "sans-bold"),
            f'<g class="lbl"><text class="tw-sub" x="8" y="44">{_x(meta)}  '
            f'<tspan class="{verdict_cls}">{_x(verdict)}</tspan></text></g>',
        ]
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{y:.0f}" viewBox="0 0 {width:.0f} {y:.0f}" '
        f'font-size="12" role="img" aria-label="{_x(title)}">\n'
        f"<style>{_STYLE}</style>\n{_DEFS}\n"
        f'<rect width="100%" height="100%" fill="#fff"/>\n' + "\n".join(head + parts) + "\n</svg>\n"
    )
    return svg, folded

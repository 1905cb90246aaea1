"""Self-contained SVG sequence diagram (and time-series plot) of a run, readable without zooming.

Theory of operation
-------------------
The picture has one vertical lane per host. Along each lane a coloured *state band* shows the connection's
state (one thin sub-band per connection when a host owns several); a pill at each change names the new state
on the lane's outer side, where timers (⏱), application calls and notes are written too, so that they never
collide with segment labels, which live between the lanes. Every transmitted segment is a sloped arrow from the
sender at its send time to the receiver at its arrival time, labelled along the arrow near its sender
(``SA seq=0 ack=1 len=0 win=65535``, relative numbers by default, options in the tooltip). A lost segment stops
mid-way at a red cross.

Time runs downwards but is not linear: one linear scale would make a 10 ms handshake a hair's width beside a
60 s TIME_WAIT. Each step between consecutive events gets a height that grows with the logarithm of its
duration (relative to the run's typical spacing), never less than what the labels need; a truly idle gap
(≥ 1 s and ≥ 50x the typical spacing) is drawn as a broken axis marked ``≈ 60 s``. Exact times are printed in
the left column, so the compression hides nothing.

Runs with ``series`` (the large scenarios) get a small-multiples line plot, one panel per series with its own
y axis, instead of a million arrows. Everything is inline: no fonts, scripts or images are fetched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from tcpwise.events import Run
from tcpwise.i18n import label
from tcpwise.render.diagram import GLOBAL, Arrow, Diagram, Mark, build
from tcpwise.render.textutil import cell_width, human_gap, wrap
from tcpwise.vocab import STATE_COLORS

__all__ = ["render_svg", "diagram_svg", "series_svg"]

_MONO = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, monospace"
_SANS = "DejaVu Sans, Helvetica, Arial, Noto Sans CJK SC, sans-serif"
_CHAR_W = 7.3  # px per cell of 12 px monospace (DejaVu Sans Mono advance is 0.602 em)
_STYLE = f"""
.tw-t{{font-family:{_SANS};fill:#222}}
.tw-title{{font-size:18px;font-weight:bold}}
.tw-sub{{font-size:13px;fill:#555}}
.tw-host{{font-size:15px;font-weight:bold}}
.tw-addr{{font-size:12px;fill:#555}}
.tw-seg{{font-family:{_MONO};font-size:12px;fill:#111;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}}
.tw-lost{{fill:#c62828}}
.tw-time{{font-family:{_MONO};font-size:11px;fill:#666}}
.tw-gap{{font-family:{_SANS};font-size:13px;font-weight:bold;fill:#8a5a00}}
.tw-state{{font-family:{_MONO};font-size:11px;font-weight:bold;fill:#222}}
.tw-mark{{font-family:{_SANS};font-size:12px;fill:#333}}
.tw-app{{font-style:italic;fill:#7a4b00}}
.tw-timer{{fill:#8e24aa}}
.tw-note{{fill:#555}}
.tw-legend{{font-family:{_SANS};font-size:12px;fill:#333;paint-order:stroke;stroke:#fafafa;stroke-width:3px}}
.tw-ok{{fill:#2e7d32;font-weight:bold}}
.tw-bad{{fill:#c62828;font-weight:bold}}
.tw-axis{{font-family:{_MONO};font-size:11px;fill:#555}}
"""

_TIME_COL = 76  # width of the left time column (room for "≈ 59.5 s")
_OUTER = 200  # room for state pills / marks outside the outer lanes
_TOP = 128  # y of the first event
_LABEL_ROOM = 17  # vertical room one label line needs
_STEP = 24  # height of the run's typical gap between events
_BREAK = 46  # height of a broken-axis gap


def _x(s: str) -> str:
    return escape(s, {'"': "&quot;"})


def _text_w(s: str, char_w: float = _CHAR_W) -> float:
    return cell_width(s) * char_w


def _fmt_t(t: float) -> str:
    if abs(t * 1000 - round(t * 1000)) < 1e-6:
        return f"{t:.3f}"
    return f"{t:.6f}"


@dataclass
class _Geo:
    lane_x: list[float]
    width: float
    y: list[float] = field(default_factory=list)  # per item
    breaks: list[tuple[float, float, float]] = field(default_factory=list)  # (y_top, y_bottom, seconds)
    bottom: float = 0.0
    flight: float = 30.0


def _layout(d: Diagram) -> _Geo:
    n = max(1, len(d.lanes))
    gap = 540.0 if n <= 2 else max(330.0, 1000.0 / (n - 1))
    lane_x = [_TIME_COL + _OUTER + i * gap for i in range(n)]
    width = lane_x[-1] + _OUTER + 16
    geo = _Geo(lane_x, width)

    times = sorted({it.t for it in d.items})
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False) if b - a > 1e-9)
    typical = gaps[len(gaps) // 2] if gaps else 1.0
    idle = max(1.0, 50 * typical)

    def advance(dt: float) -> float:
        if dt <= 1e-9:
            return 0.0
        if dt <= typical:
            return max(6.0, _STEP * dt / typical)
        return _STEP * (1 + 0.6 * math.log2(dt / typical))

    last_outer = [-1e9] * n  # y of the last label on each lane's outer side
    last_inner = [-1e9] * n  # y of the last segment label starting at each lane
    last_end = [-1e9] * n  # y of the last arrow arriving at each lane
    prev_y = float(_TOP)
    prev_t: float | None = None
    send_y: dict[int, float] = {}
    for it in d.items:
        y = prev_y
        if prev_t is not None:
            dt = it.t - prev_t
            if dt >= idle:
                geo.breaks.append((prev_y + 8, prev_y + 8 + _BREAK - 16, dt))
                y = prev_y + _BREAK
            else:
                y = prev_y + advance(dt)
        if it.kind == "mark" and it.mark is not None and it.mark.lane == GLOBAL:
            # a note across the lanes: clear of every label above it, and everything below clears its box
            y = max(y, *(v + _LABEL_ROOM for v in last_outer + last_inner + last_end))
            bottom = y + (len(_global_lines(it.mark, geo)) - 1) * 14 + 8
            last_outer = [bottom] * n
            last_inner = [bottom] * n
            last_end = [bottom] * n
        elif it.kind == "mark" and it.mark is not None:
            m = it.mark
            y = max(y, last_outer[m.lane] + _LABEL_ROOM)
            lines = len(_mark_lines(m, d))
            last_outer[m.lane] = y + (lines - 1) * 14
        elif it.kind == "send" and it.arrow is not None:
            a = it.arrow
            y = max(y, last_inner[a.src] + _LABEL_ROOM, last_end[a.src] + _LABEL_ROOM)
            last_inner[a.src] = y
            send_y[id(a)] = y
        elif it.kind == "recv" and it.arrow is not None:
            a = it.arrow
            if a.orphan:
                y = max(y, last_inner[a.src] + _LABEL_ROOM)
                send_y[id(a)] = y
                last_inner[a.src] = y
            else:
                # an arrow must visibly slope: at least 10 px below its start
                y = max(y, send_y.get(id(a), y) + 10)
            last_end[a.dst] = y
        geo.y.append(y)
        prev_y, prev_t = y, it.t
    flights = sorted(
        geo.y[a.recv_index] - geo.y[a.send_index]
        for a in d.arrows
        if a.recv_index >= 0 and a.send_index >= 0 and not a.orphan
    )
    if flights:
        geo.flight = max(18.0, flights[len(flights) // 2])
    geo.bottom = prev_y + 30
    return geo


def _global_span(geo: _Geo) -> tuple[float, float]:
    if len(geo.lane_x) > 1:
        return geo.lane_x[0] + 24, geo.lane_x[-1] - 24
    return _TIME_COL + 8, geo.width - 8


def _global_lines(m: Mark, geo: _Geo) -> list[str]:
    x0, x1 = _global_span(geo)
    return wrap(m.text, max(20, int((x1 - x0 - 16) / 6.8)))


def _mark_lines(m: Mark, d: Diagram) -> list[str]:
    if m.kind in ("note", "app"):
        return wrap(m.text, int((_OUTER - 24) / 6.6))
    return [m.text]


def _arrow_svg(a: Arrow, geo: _Geo, lang: str) -> tuple[list[str], list[str]]:
    """The arrow's line (and cross) and, separately, its label: all labels are drawn after all lines so that a
    crossing arrow (simultaneous close) never strikes through another arrow's text."""
    x0 = geo.lane_x[a.src]
    x1 = geo.lane_x[a.dst]
    y0 = geo.y[a.send_index]
    out: list[str] = []
    if a.lost:
        frac = 0.62
        ex = x0 + (x1 - x0) * frac
        ey = y0 + geo.flight * frac
    elif a.recv_index >= 0:
        ex, ey = x1, geo.y[a.recv_index]
    else:  # in flight when the run ended
        ex, ey = x0 + (x1 - x0) * 0.5, y0 + geo.flight * 0.5
    if x0 == x1:  # a segment to itself: a small loop
        ex = x0 + 40
    color = "#c62828" if a.lost else ("#888" if (a.dup or a.orphan or a.recv_index < 0) else "#1f3b73")
    dash = ' stroke-dasharray="6 4"' if (a.dup or a.orphan or (a.recv_index < 0 and not a.lost)) else ""
    opts = a.seg.opts or {}
    tip = a.label + (" " + " ".join(f"{k}={v}" for k, v in opts.items()) if opts else "")
    tip += f"  t={_fmt_t(a.t0)}" + (f"→{_fmt_t(a.t1)}" if a.t1 is not None else "")
    if a.lost:
        tip += f"  {label('lost', lang)}" + (f" ({a.reason})" if a.reason else "")
    out.append(f"<g><title>{_x(tip)}</title>")
    # shorten the line so that the arrow head ends on the lane
    dx, dy = ex - x0, ey - y0
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    head = "" if a.lost else ' marker-end="url(#tw-head)"'
    lx1, ly1 = (ex - ux * 2, ey - uy * 2) if not a.lost else (ex, ey)
    out.append(
        f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{lx1:.1f}" y2="{ly1:.1f}" stroke="{color}" '
        f'stroke-width="1.6"{dash}{head}/>'
    )
    if a.lost:
        s = 6
        out.append(
            f'<path d="M{ex - s:.1f},{ey - s:.1f}L{ex + s:.1f},{ey + s:.1f}M{ex - s:.1f},{ey + s:.1f}L{ex + s:.1f},{ey - s:.1f}" '
            f'stroke="#c62828" stroke-width="2.6"/>'
        )
    # label along the arrow, starting 14 px from the sender, reading left to right
    text = a.label + (" ×" if a.lost else "") + (" (dup)" if a.dup else "")
    rightward = dx >= 0
    angle = math.degrees(math.atan2(dy, dx)) if rightward else math.degrees(math.atan2(-dy, -dx))
    if abs(angle) > 35:  # a very steep arrow: keep its label horizontal
        angle = 0.0
    off = 14.0
    ax, ay = x0 + ux * off, y0 + uy * off
    anchor = "start" if rightward else "end"
    cls = "tw-seg tw-lost" if a.lost else "tw-seg"
    out.append("</g>")
    lab = [f"<g><title>{_x(tip)}</title>"]
    tw = _text_w(text)
    bx = ax if rightward else ax - tw
    lab.append(
        f'<g transform="rotate({angle:.2f} {ax:.1f} {ay:.1f})">'
        f'<rect x="{bx - 2:.1f}" y="{ay - 16:.1f}" width="{tw + 4:.1f}" height="13" fill="#fff" opacity="0.8"/>'
        f'<text class="{cls}" x="{ax:.1f}" y="{ay - 5:.1f}" text-anchor="{anchor}">{_x(text)}</text></g>'
    )
    if a.lost:
        reason = label("lost", lang) + (f": {a.reason}" if a.reason and a.reason != "loss" else "")
        lab.append(
            f'<text class="tw-seg tw-lost" x="{ex:.1f}" y="{ey + 20:.1f}" text-anchor="middle">{_x(reason)}</text>'
        )
    lab.append("</g>")
    return out, lab


def _outer(geo: _Geo, lane: int) -> tuple[float, str]:
    """x and text-anchor for a label on ``lane``'s outer side (left of the first lane, right of the others)."""
    x = geo.lane_x[lane]
    if lane == 0 and len(geo.lane_x) > 1:
        return x - 14, "end"
    return x + 14, "start"


def _mark_svg(m: Mark, y: float, geo: _Geo, d: Diagram, lang: str) -> list[str]:
    if m.lane == GLOBAL:
        x0, x1 = _global_span(geo)
        lines = _global_lines(m, geo)
        h = 14 * len(lines) + 8
        parts = [
            f'<rect x="{x0:.1f}" y="{y - 11:.1f}" width="{x1 - x0:.1f}" height="{h}" rx="4" fill="#fff8dc" '
            f'stroke="#d9c27a" stroke-width="0.8"/>',
            f'<text class="tw-mark tw-note" x="{(x0 + x1) / 2:.1f}" y="{y + 4:.1f}" text-anchor="middle">',
        ]
        for i, ln in enumerate(lines):
            parts.append(f'<tspan x="{(x0 + x1) / 2:.1f}" dy="{0 if i == 0 else 14}">{_x(ln)}</tspan>')
        parts.append("</text>")
        return ["".join(parts)]
    x, anchor = _outer(geo, m.lane)
    lx = geo.lane_x[m.lane]
    multi = len(d.lanes[m.lane].conns) > 1
    out: list[str] = []
    if m.kind == "state":
        name = m.to_state or "?"
        text = f"{m.conn} {name}" if (multi and m.conn) else name
        w = _text_w(text, 7.0) + 12
        rx = x if anchor == "start" else x - w
        color = STATE_COLORS.get(name, "#ddd")
        out.append(
            f"<g><title>{_x(f'{m.from_state} -> {m.to_state} at t={_fmt_t(m.t)}')}</title>"
            f'<line x1="{lx:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#999" stroke-width="1"/>'
            f'<rect x="{rx:.1f}" y="{y - 8:.1f}" width="{w:.1f}" height="16" rx="8" fill="{color}" stroke="#777" stroke-width="0.6"/>'
            f'<text class="tw-state" x="{rx + w / 2:.1f}" y="{y + 4:.1f}" text-anchor="middle">{_x(text)}</text></g>'
        )
    elif m.kind == "timer":
        out.append(
            f"<g><title>{_x(f'timer {m.text} fired at t={_fmt_t(m.t)}')}</title>"
            f'<circle cx="{lx:.1f}" cy="{y:.1f}" r="5" fill="#fff" stroke="#8e24aa" stroke-width="2"/>'
            f'<path d="M{lx:.1f},{y - 3:.1f}V{y:.1f}H{lx + 2.5:.1f}" stroke="#8e24aa" stroke-width="1.2" fill="none"/>'
            f'<text class="tw-mark tw-timer" x="{x:.1f}" y="{y + 4:.1f}" text-anchor="{anchor}">{_x(label("timer", lang))} {_x(m.text)}</text></g>'
        )
    else:
        cls = {"app": "tw-mark tw-app", "note": "tw-mark tw-note", "drop": "tw-mark tw-lost"}.get(
            m.kind, "tw-mark"
        )
        lines = _mark_lines(m, d)
        parts = [f'<text class="{cls}" x="{x:.1f}" y="{y + 4:.1f}" text-anchor="{anchor}">']
        for i, ln in enumerate(lines):
            parts.append(f'<tspan x="{x:.1f}" dy="{0 if i == 0 else 14}">{_x(ln)}</tspan>')
        parts.append("</text>")
        out.append("".join(parts))
    return out


def _bands(d: Diagram, geo: _Geo) -> list[str]:
    """State bands: per lane and connection, a rect from each state change to the next."""
    out: list[str] = []
    for li, lane in enumerate(d.lanes):
        conns = lane.conns or [""]
        k = min(len(conns), 8)
        total = 14.0
        w = total / k
        x_left = geo.lane_x[li] - total / 2
        current: dict[str, tuple[float, str]] = {c: (float(_TOP) - 10, s) for c, s in lane.initial.items()}
        segs: list[tuple[str, float, float, str]] = []
        for idx, it in enumerate(d.items):
            m = it.mark
            if m is None or m.kind != "state" or m.lane != li:
                continue
            c = m.conn or ""
            start, state = current.get(c, (geo.y[idx], m.from_state or "CLOSED"))
            segs.append((c, start, geo.y[idx], state))
            current[c] = (geo.y[idx], m.to_state or "CLOSED")
        for c, (start, state) in current.items():
            segs.append((c, start, geo.bottom - 10, state))
        for c, y0, y1, state in segs:
            if state == "CLOSED" or y1 <= y0:
                continue
            ci = conns.index(c) if c in conns else 0
            if ci >= k:
                continue
            out.append(
                f'<rect x="{x_left + ci * w:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{y1 - y0:.1f}" '
                f'fill="{STATE_COLORS.get(state, "#ddd")}"><title>{_x(state)}</title></rect>'
            )
    return out


def diagram_svg(
    run: Run, *, absolute: bool = False, lang: str = "en", y_offset: float = 0.0
) -> tuple[list[str], float, float]:
    """The sequence diagram as SVG elements (no ``<svg>`` wrapper), its width and height."""
    d = build(run, absolute=absolute, lang=lang)
    geo = _layout(d)
    out: list[str] = []
    out.append(f'<g transform="translate(0 {y_offset:.1f})">')
    # lane heads and lines
    for i, lane in enumerate(d.lanes):
        x = geo.lane_x[i]
        out.append(
            f'<line x1="{x:.1f}" y1="{_TOP - 18}" x2="{x:.1f}" y2="{geo.bottom:.1f}" stroke="#bbb" stroke-width="1.2"/>'
        )
        out.append(
            f'<text class="tw-t tw-host" x="{x:.1f}" y="{_TOP - 54}" text-anchor="middle">{_x(lane.name)}</text>'
        )
        sub = " ".join(
            p
            for p in (lane.addr if lane.addr != lane.name else "", f"({lane.role})" if lane.role else "")
            if p
        )
        if sub:
            out.append(
                f'<text class="tw-t tw-addr" x="{x:.1f}" y="{_TOP - 38}" text-anchor="middle">{_x(sub)}</text>'
            )
        if lane.initial:
            first = ", ".join(dict.fromkeys(lane.initial.values()))
            out.append(
                f'<text class="tw-state" x="{x:.1f}" y="{_TOP - 22}" text-anchor="middle">{_x(first)}</text>'
            )
    out.append(f'<text class="tw-time" x="8" y="{_TOP - 22}">{_x(label("time_s", lang))}</text>')
    out.extend(_bands(d, geo))
    # time column: one label per distinct time, skipped when it would overlap the previous one
    last_label = -1e9
    seen_t: set[float] = set()
    for it, y in zip(d.items, geo.y, strict=True):
        if it.t in seen_t:
            continue
        seen_t.add(it.t)
        if y - last_label < 13:
            continue
        last_label = y
        out.append(
            f'<text class="tw-time" x="{_TIME_COL - 8}" y="{y + 4:.1f}" text-anchor="end">{_fmt_t(it.t)}</text>'
        )
        out.append(
            f'<line x1="{_TIME_COL - 4}" y1="{y:.1f}" x2="{_TIME_COL + 2}" y2="{y:.1f}" stroke="#999"/>'
        )
    notes: list[str] = []  # run-wide notes go on top of everything, arrows included
    for it, y in zip(d.items, geo.y, strict=True):
        if it.mark is not None:
            (notes if it.mark.lane == GLOBAL else out).extend(_mark_svg(it.mark, y, geo, d, lang))
    labels: list[str] = []
    for a in d.arrows:
        line, lab = _arrow_svg(a, geo, lang)
        out.extend(line)
        labels.extend(lab)
    out.extend(labels)
    out.extend(notes)
    # broken axis over long idle gaps, drawn last so it sits on top of bands and lanes
    for y0, y1, dt in geo.breaks:
        # two parallel zigzags across the lanes (the classic broken-axis sign); bands show through between them
        for yy in (y0 + 4, y1 - 4):
            wave = " ".join(
                f"L{x:.1f},{yy - 4 + (8 if (i % 2) else 0):.1f}"
                for i, x in enumerate(range(_TIME_COL + 8, int(geo.width) - 8, 14))
            )
            out.append(
                f'<path d="M{_TIME_COL},{yy:.1f} {wave}" stroke="#c9a13b" stroke-width="1.3" fill="none"/>'
            )
        out.append(
            f'<text class="tw-gap" x="{_TIME_COL - 8}" y="{(y0 + y1) / 2 + 5:.1f}" text-anchor="end">≈ {_x(human_gap(dt))}</text>'
        )
    y = geo.bottom + 8
    if d.truncated:
        out.append(
            f'<text class="tw-legend" x="8" y="{y:.1f}">… {d.truncated} {_x(label("truncated", lang))}</text>'
        )
        y += 18
    # legend: colours of the states that appear, then how to read labels
    seen_states: list[str] = []
    for lane in d.lanes:
        seen_states.extend(lane.initial.values())
    seen_states.extend(m.to_state for m in d.marks if m.kind == "state" and m.to_state)
    states = [s for s in STATE_COLORS if s in seen_states and s != "CLOSED"]
    x = 8.0
    for s in states:
        w = _text_w(s, 7.0) + 26
        if x + w > geo.width - 8:
            x = 8.0
            y += 18
        out.append(
            f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{STATE_COLORS[s]}" stroke="#777" stroke-width="0.5"/>'
        )
        out.append(f'<text class="tw-legend" x="{x + 16:.1f}" y="{y:.1f}">{_x(s)}</text>')
        x += w
    y += 20
    legend = (
        label("legend_flags_abs" if d.absolute else "legend_flags", lang)
        + f";  ✕ {label('lost', lang)};  ◯ {label('timer', lang)}"
    )
    out.append(f'<text class="tw-legend" x="8" y="{y:.1f}">{_x(legend)}</text>')
    out.append("</g>")
    return out, geo.width, y + 12


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


def series_svg(
    run: Run, *, lang: str = "en", y_offset: float = 0.0, width: float = 900.0
) -> tuple[list[str], float, float]:
    """One panel per series (own y axis, shared time axis): readable even when the magnitudes differ 1000x."""
    s = run.series or {}
    t = [float(v) for v in s.get("t", [])]
    keys = [k for k in s if k != "t" and len(s[k]) == len(t) and t]
    out = [f'<g transform="translate(0 {y_offset:.1f})">']
    ph, left, right, top = 150.0, 80.0, 30.0, 22.0
    out.append(
        f'<text class="tw-t tw-host" x="{left:.1f}" y="{top + 14:.1f}">{_x(label("series", lang))}</text>'
    )
    y = top + 30
    if not keys:
        out.append(
            f'<text class="tw-legend" x="{left:.1f}" y="{y + 14:.1f}">{_x(label("no_events", lang))}</text>'
        )
        out.append("</g>")
        return out, width, y + 30
    t0, t1 = min(t), max(t)
    tspan = (t1 - t0) or 1.0
    pw = width - left - right
    for ki, k in enumerate(keys):
        vals = [float(v) for v in s[k]]
        vmax = max(vals)
        vmin = min(0.0, min(vals))
        ticks = _nice_ticks(vmin, vmax if vmax > vmin else vmin + 1)
        top_v = max(ticks[-1], vmax) if ticks else vmax
        vspan = (top_v - vmin) or 1.0
        color = _SERIES_COLORS[ki % len(_SERIES_COLORS)]

        def px(tv: float) -> float:
            return left + (tv - t0) / tspan * pw

        def py(v: float, _vmin: float = vmin, _vspan: float = vspan, _y: float = y) -> float:
            return _y + ph - (v - _vmin) / _vspan * ph

        out.append(
            f'<rect x="{left:.1f}" y="{y:.1f}" width="{pw:.1f}" height="{ph:.1f}" fill="#fafafa" stroke="#ccc"/>'
        )
        for tv in ticks:
            yy = py(tv)
            out.append(
                f'<line x1="{left:.1f}" y1="{yy:.1f}" x2="{left + pw:.1f}" y2="{yy:.1f}" stroke="#e3e3e3"/>'
            )
            out.append(
                f'<text class="tw-axis" x="{left - 6:.1f}" y="{yy + 4:.1f}" text-anchor="end">{_num(tv)}</text>'
            )
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
        peak = max(vals)
        pi = vals.index(peak)
        out.append(f'<circle cx="{px(t[pi]):.1f}" cy="{py(peak):.1f}" r="3.5" fill="{color}"/>')
        out.append(
            f'<text class="tw-legend" x="{left + 8:.1f}" y="{y + 16:.1f}" font-weight="bold" fill="{color}">'
            f"{_x(k)}  ({label('max', lang)} {_x(_exact(peak))} {label('at', lang)} t={_x(_exact(t[pi]))} s)</text>"
        )
        y += ph + 28
    for tv in _nice_ticks(t0, t1, 8):
        xx = left + (tv - t0) / tspan * pw
        out.append(f'<line x1="{xx:.1f}" y1="{y - 28:.1f}" x2="{xx:.1f}" y2="{y - 22:.1f}" stroke="#777"/>')
        out.append(
            f'<text class="tw-axis" x="{xx:.1f}" y="{y - 10:.1f}" text-anchor="middle">{_num(tv)}</text>'
        )
    out.append(
        f'<text class="tw-axis" x="{left + pw / 2:.1f}" y="{y + 6:.1f}" text-anchor="middle">{_x(label("time_s", lang))}</text>'
    )
    out.append("</g>")
    return out, width, y + 30


def render_svg(run: Run, *, absolute: bool = False, lang: str = "en", header: bool = True) -> str:
    """The complete standalone SVG document: title, verdict, then the series plot and/or the diagram.
    ``header=False`` leaves out the title lines (the HTML page shows them already)."""
    head_h = 40.0 if header else 0.0
    parts: list[str] = []
    width = 900.0
    y = head_h
    if run.series:
        body, w, h = series_svg(run, lang=lang, y_offset=y)
        parts.extend(body)
        width = max(width, w)
        y += h
    if run.events or not run.series:
        body, w, h = diagram_svg(run, absolute=absolute, lang=lang, y_offset=y)
        parts.extend(body)
        width = max(width, w)
        y += h
    title = run.scenario + (f" — {run.title}" if run.title else "")
    ok = sum(1 for c in run.checks if c.ok)
    verdict_cls = "tw-ok" if run.ok else "tw-bad"
    if run.checks:
        verdict = f"{ok}/{len(run.checks)} " + (label("passed", lang) if run.ok else label("failed", lang))
        verdict = ("✓ " if run.ok else "✗ ") + verdict
    else:
        verdict = label("no_checks", lang)
    meta = f"{label('world', lang)} {run.world}" + (
        f" · {label('seed', lang)} {run.seed}" if run.seed is not None else ""
    )
    head = [
        f'<text class="tw-t tw-title" x="8" y="24">{_x(title)}</text>',
        f'<text class="tw-t tw-sub" x="8" y="44">{_x(meta)}  <tspan class="{verdict_cls}">{_x(verdict)}</tspan></text>',
    ]
    defs = (
        '<defs><marker id="tw-head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
        'orient="auto-start-reverse" markerUnits="userSpaceOnUse"><path d="M0,0L10,5L0,10z" fill="context-stroke"/>'
        "</marker></defs>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{y:.0f}" viewBox="0 0 {width:.0f} {y:.0f}" '
        f'font-size="12" role="img" aria-label="{_x(title)}">\n'
        f"<style>{_STYLE}</style>\n{defs}\n"
        f'<rect width="100%" height="100%" fill="#fff"/>\n'
        + "\n".join((head if header else []) + parts)
        + "\n</svg>\n"
    )

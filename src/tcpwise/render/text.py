"""Terminal sequence diagram: one column per host, one row per event, the checks and the narrative at the end.

Theory of operation
-------------------
:func:`tcpwise.render.diagram.build` pairs sends with receives; here every row is one item of that diagram in
event order. A transmitted segment is drawn once, on the row of its *send*, as a horizontal arrow between the two
lanes labelled ``FA seq=1 ack=1 len=0 win=65535``; its arrival time is printed at the end of the row (``arr
0.310``). A lost segment stops short of the receiver and ends in ``x``. State changes, timers, application calls
and notes are written beside their host's lane. A long idle gap (TIME_WAIT's 60 s) becomes one ``≈ 60 s`` row
instead of scrolling.

Rows are built on a character canvas (with a parallel style array, so ANSI colour stays optional and cannot
break alignment); East Asian wide characters take two cells, so ``--lang zh`` output lines up too.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

from tcpwise.events import Run
from tcpwise.i18n import (
    check_claim,
    check_detail,
    conn_text,
    label,
    msg,
    narrative,
    role_text,
    run_title,
    series_name,
    world_text,
)
from tcpwise.render.diagram import GLOBAL, Arrow, Diagram, Item, Lane, Mark, build
from tcpwise.render.fold import Fold, fold
from tcpwise.render.textutil import cell_width, human_gap, wrap
from tcpwise.term import fmt_num

__all__ = ["render_text", "cell_width", "sparkline"]

# ANSI SGR codes, used only when the caller says the output is a terminal.
_STYLE = {
    "": "",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
    "red": "\x1b[31m",
    "green": "\x1b[32m",
    "yellow": "\x1b[33m",
    "blue": "\x1b[34m",
    "magenta": "\x1b[35m",
    "cyan": "\x1b[36m",
}
_RESET = "\x1b[0m"
_MARK_STYLE = {"state": "cyan", "timer": "magenta", "app": "yellow", "note": "dim", "drop": "red"}
_TIME_W = 10  # the time column


class _Canvas:
    """One row of cells. ``put`` writes text with a style; wide characters occupy two cells."""

    def __init__(self, width: int) -> None:
        self.cells: list[str] = [" "] * width
        self.styles: list[str] = [""] * width

    def put(self, x: int, s: str, style: str = "") -> None:
        for ch in s:
            w = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
            if x < 0 or x + w > len(self.cells):
                x += w
                continue
            self.cells[x] = ch
            self.styles[x] = style
            if w == 2:
                self.cells[x + 1] = ""  # continuation cell of a wide character
                self.styles[x + 1] = style
            x += w

    def render(self, color: bool) -> str:
        if not color:
            return "".join(self.cells).rstrip()
        out: list[str] = []
        cur = ""
        for ch, st in zip(self.cells, self.styles, strict=True):
            if st != cur:
                out.append(_RESET if cur else "")
                out.append(_STYLE[st])
                cur = st
            out.append(ch)
        if cur:
            out.append(_RESET)
        return "".join(out).rstrip()


def _time_fmt(times: Sequence[float]) -> str:
    # millisecond resolution is what every scenario uses; show µs only when some event needs it
    if all(abs(t * 1000 - round(t * 1000)) < 1e-6 for t in times):
        return "{:9.3f}"
    return "{:9.6f}"


# Lanes need this much room between them for a segment label, and the last lane this much on its right.
_MIN_STEP = 40
_MIN_RIGHT = 24
_MAX_RIGHT = 44


def _fits(n: int, width: int | None) -> bool:
    """Whether ``n`` lanes fit ``width`` columns with whole segment labels (else: one line per event)."""
    return width is None or n <= 1 or _TIME_W + 2 + (n - 1) * _MIN_STEP + _MIN_RIGHT <= width


class _Layout:
    def __init__(self, n: int, width: int | None, right_text: int = 28) -> None:
        want_right = max(_MIN_RIGHT, min(_MAX_RIGHT, right_text + 3))
        if n == 1:
            self.x = [_TIME_W + 2]
            self.width = width if width is not None else _TIME_W + 2 + 40
            return
        if width is None:  # natural width: lanes 46 apart, the last lane's notes as wide as they want
            step, right = 46, want_right
        else:
            room = width - _TIME_W - 2
            right = max(_MIN_RIGHT, min(want_right, room - (n - 1) * _MIN_STEP))
            step = max(_MIN_STEP, min(60, (room - right) // (n - 1)))
        self.x = [_TIME_W + 2 + i * step for i in range(n)]
        self.width = self.x[-1] + right

    def bars(self, c: _Canvas) -> None:
        for x in self.x:
            c.put(x, "|", "dim")


def _arrow_row(c: _Canvas, lay: _Layout, a: Arrow, lang: str) -> list[tuple[int, str, str]]:
    """Draw ``a`` on row ``c``; returns continuation lines (x, text, style) of a long drop reason."""
    xa, xb = lay.x[a.src], lay.x[a.dst]
    style = "red" if a.lost else ("dim" if a.dup else "")
    tag = ""
    if a.dup:
        tag = " dup"
    elif a.orphan:
        tag = " ?"
    text = f" {a.label}{tag} "
    if xa == xb:  # a segment to itself (or to an unknown lane): a short loop to the right
        c.put(xa + 1, f"--{text}-->", style)
        return []
    right = xb > xa
    lo, hi = (xa, xb) if right else (xb, xa)
    span = hi - lo - 1
    if cell_width(text) > span - (10 if a.lost else 6):
        # too long for the gap: the window is the field readers need least, drop it before cutting anything
        text = re.sub(r" win=\d+", "", text)
    if a.lost:
        # the lost arrow stops ~2/3 of the way (or just past its label) and ends in "x"
        drawn = min(span - 2, max(cell_width(text) + 6, int(span * 0.66)))
        if right:
            body_lo, body_hi = lo + 1, lo + drawn
        else:
            body_lo, body_hi = hi - drawn, hi - 1
    else:
        body_lo, body_hi = lo + 1, hi - 1
    length = body_hi - body_lo + 1
    body = ["-"] * length
    if a.lost:
        body[-1 if right else 0] = "x"
    else:
        body[-1 if right else 0] = ">" if right else "<"
    tw = cell_width(text)
    if tw > length - 4:
        text = text[: max(0, length - 6)] + "… "
        tw = cell_width(text)
    start = (length - tw) // 2
    c.put(body_lo, "".join(body), style)
    c.put(body_lo + start, text, style or "bold")
    end = lay.x[-1] + 2
    if a.lost:
        why = f"{label('lost', lang)}" + (f" ({a.reason})" if a.reason and a.reason != "loss" else "")
        lines = wrap(why, lay.width - end - 1)
        c.put(end, lines[0], "red")
        return [(end, line, "red") for line in lines[1:]]
    if a.t1 is None:
        c.put(end, label("in_flight", lang), "dim")
    elif a.t1 != a.t0:
        arr = f"{label('arrives', lang)} {a.t1:.3f}" + (f" ({a.reason})" if a.reason else "")
        lines = wrap(arr, lay.width - end - 1)
        c.put(end, lines[0], "dim")
        return [(end, line, "dim") for line in lines[1:]]
    return []


def _mark_lines(m: Mark, multi_conn: bool, lang: str = "en") -> str:
    if m.kind == "state":
        text = f"[{m.from_state or '?'} -> {m.to_state or '?'}]"
        if multi_conn and m.conn:
            text = f"{conn_text(m.conn, lang)} {text}"
        return text
    if m.kind == "timer":
        return f"({label('timer', lang)} {m.text})"
    if m.kind == "app":
        return f"{label('app', lang)}: {m.text}" if not m.text.endswith(")") else m.text
    return m.text


def _mark_rows(lay: _Layout, m: Mark, multi_conn: bool, lang: str = "en") -> list[_Canvas]:
    """The rows of a mark, written in its own host's column: right of its lane, up to the next lane (or the
    right edge), wrapped there -- never in another host's column."""
    text = _mark_lines(m, multi_conn, lang)
    n = len(lay.x)
    if m.lane == GLOBAL:  # a note about the whole run: across the lanes, between the first and the last
        x0 = lay.x[0] + 2
        room = max(20, (lay.x[-1] - 2 if n > 1 else lay.width - 2) - x0)
        rows_g: list[_Canvas] = []
        for line in wrap(text, room):
            c = _Canvas(lay.width)
            lay.bars(c)
            c.put(x0, _center(line, room) if n > 1 else line, "dim")
            rows_g.append(c)
        return rows_g
    x = lay.x[m.lane]
    style = _MARK_STYLE.get(m.kind, "")
    room = (lay.x[m.lane + 1] - x - 3) if m.lane + 1 < n else (lay.width - x - 2)
    rows: list[_Canvas] = []
    for line in wrap(text, room):
        c = _Canvas(lay.width)
        lay.bars(c)
        c.put(x + 2, line, style)
        rows.append(c)
    return rows


def _center(s: str, width: int) -> str:
    pad = max(0, width - cell_width(s))
    return " " * (pad // 2) + s


def _fold_rows(lay: _Layout, f: Fold, d: Diagram, lang: str) -> list[_Canvas]:
    """A folded bulk transfer: a thick arrow between the two lanes, the summary under it, its time span on the
    right."""
    from tcpwise.render.svglayout import fold_text

    xa, xb = lay.x[f.src], lay.x[f.dst]
    lo, hi = min(xa, xb), max(xa, xb)
    right = xb > xa
    c = _Canvas(lay.width)
    lay.bars(c)
    body = "=" * (hi - lo - 1)
    body = body[:-1] + ">" if right else "<" + body[1:]
    c.put(lo + 1, body, "bold")
    end = lay.x[-1] + 2
    span = msg("fold_span", lang, t0=f"{f.t0:.3f}", t1=f"{f.t1:.3f}")
    c.put(end, span[: max(0, lay.width - end)], "dim")
    rows = [c]
    for line in wrap(fold_text(f, d, lang), hi - lo - 3):
        r = _Canvas(lay.width)
        lay.bars(r)
        r.put(lo + 2, line, "")
        rows.append(r)
    return rows


def _idle_gap(d: Diagram) -> float:
    """A gap is "idle" (drawn as one ``≈ 60 s`` row) when it is both long in absolute terms (>= 1 s) and far
    above the run's typical spacing between events (20x the median)."""
    times = sorted({it.t for it in d.items})
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False) if b > a)
    typical = gaps[len(gaps) // 2] if gaps else 0.0
    return max(1.0, 20 * typical)


# Beyond this many hosts, lanes no longer fit even a wide terminal: print one line per event instead.
MAX_LANES = 4


def lane_title(lane: Lane, lang: str) -> str:
    """``A 198.18.0.1 (client)`` with the role in ``lang``."""
    parts = [lane.name]
    if lane.addr and lane.addr != lane.name:
        parts.append(lane.addr)
    if lane.role:
        parts.append(f"({role_text(lane.role, lang)})")
    return " ".join(parts)


def _list_lines(d: Diagram, lang: str, color: bool, width: int | None) -> list[str]:
    """The many-host layout: ``time  A -> B  label`` / ``time  A  [X -> Y]``, same rows as the lane view; a line
    longer than ``width`` continues under its text."""
    names = [lane.name for lane in d.lanes]
    name_w = min(16, max((cell_width(n) for n in names), default=1))
    fmt = _time_fmt([it.t for it in d.items]) if d.items else "{:9.3f}"
    out = [f"{label('time_s', lang):>9}  {label('host', lang)}"]
    out.extend(f"{'':9}  {lane_title(lane, lang)}" for lane in d.lanes)
    st = (lambda code, s: f"{_STYLE[code]}{s}{_RESET}") if color else (lambda code, s: s)
    idle = _idle_gap(d)
    last_t: float | None = None

    def emit(head: str, text: str, style: str = "") -> None:
        indent = cell_width(head)
        room = (width - indent) if width is not None else 10**6
        for i, line in enumerate(wrap(text, max(20, room))):
            out.append((head if i == 0 else " " * indent) + (st(style, line) if style else line))

    for it in d.items:
        a = it.arrow
        if it.kind == "recv" and a is not None and not (a.dup or a.orphan):
            continue
        if last_t is not None and it.t - last_t >= idle:
            out.append(st("yellow", f"{'≈ ' + human_gap(it.t - last_t):>9}"))
        t = fmt.format(it.t) if it.t != last_t else " " * 9
        last_t = it.t
        if it.fold is not None:
            from tcpwise.render.svglayout import fold_text

            f = it.fold
            route = f"{names[f.src]:>{name_w}} => {names[f.dst]:<{name_w}}"
            emit(
                f"{t}  {route}  ",
                fold_text(f, d, lang) + "; " + msg("fold_span", lang, t0=f"{f.t0:.3f}", t1=f"{f.t1:.3f}"),
            )
        elif a is not None:
            route = f"{names[a.src]:>{name_w}} -> {names[a.dst]:<{name_w}}"
            tail = ""
            if a.lost:
                tail = f"  x {label('lost', lang)}" + (f" ({a.reason})" if a.reason else "")
            elif a.dup:
                tail = f"  ({label('dup', lang)})"
            elif a.t1 is not None and a.t1 != a.t0:
                tail = f"  {label('arrives', lang)} {a.t1:.3f}"
            emit(f"{t}  {route}  ", a.label + tail)
        elif it.mark is not None:
            m = it.mark
            if m.lane == GLOBAL:
                emit(f"{t}  {'':>{name_w}}    ", m.text, "dim")
                continue
            text = _mark_lines(m, len(d.lanes[m.lane].conns) > 1, lang)
            emit(f"{t}  {names[m.lane]:>{name_w}}    ", text, _MARK_STYLE.get(m.kind, ""))
    if d.truncated:
        out.append(f"   … {d.truncated} {label('truncated', lang)}")
    return out


def _head_lines(d: Diagram, lay: _Layout, lang: str, color: bool) -> list[str]:
    """Host titles (each wrapped in its own column) and the states the hosts start in."""
    out: list[str] = []
    heads: list[list[str]] = []
    for i, lane in enumerate(d.lanes):
        room = (lay.x[i + 1] - lay.x[i] - 2) if i + 1 < len(lay.x) else (lay.width - lay.x[i])
        heads.append(wrap(lane_title(lane, lang), max(8, room)))
    for k in range(max((len(h) for h in heads), default=1)):
        head = _Canvas(lay.width)
        if k == 0:
            head.put(1, label("time_s", lang), "dim")
        for i, h in enumerate(heads):
            if k < len(h):
                head.put(lay.x[i], h[k], "bold")
        out.append(head.render(color))
    init = _Canvas(lay.width)
    lay.bars(init)
    for i, lane in enumerate(d.lanes):
        if lane.initial:
            init.put(lay.x[i] + 2, ", ".join(dict.fromkeys(lane.initial.values())), "cyan")
    out.append(init.render(color))
    return out


def _item_rows(d: Diagram, it: Item, lay: _Layout, multi: dict[int, bool], lang: str) -> list[_Canvas]:
    """The rows of one item: a folded transfer, an arrow (with a wrapped loss reason), or a mark."""
    if it.fold is not None:
        return _fold_rows(lay, it.fold, d, lang)
    if it.arrow is not None:
        c = _Canvas(lay.width)
        lay.bars(c)
        rows = [c]
        for x, line, style in _arrow_row(c, lay, it.arrow, lang):
            more = _Canvas(lay.width)
            lay.bars(more)
            more.put(x, line, style)
            rows.append(more)
        return rows
    assert it.mark is not None
    return _mark_rows(lay, it.mark, multi.get(it.mark.lane, False), lang)


def _drawn(it: Item) -> bool:
    """An arrow is drawn at its send: only duplicates and unsent arrivals need a row at their arrival."""
    a = it.arrow
    return it.kind != "recv" or (a is not None and (a.dup or a.orphan))


def _diagram_lines(d: Diagram, lang: str, color: bool, width: int | None) -> list[str]:
    legend = label("legend_flags_abs" if d.absolute else "legend_flags", lang)
    if len(d.lanes) > MAX_LANES or not _fits(len(d.lanes), width):
        lines = _list_lines(d, lang, color, width)
        lines.extend(((_STYLE["dim"] + ln + _RESET) if color else ln) for ln in wrap(legend, width or 100))
        return lines
    multi = {i: len(lane.conns) > 1 for i, lane in enumerate(d.lanes)}
    last = len(d.lanes) - 1
    right_text = max(
        (
            cell_width(_mark_lines(m, multi.get(m.lane, False), lang))
            for m in d.marks
            if m.lane == last and m.kind != "note"
        ),
        default=20,
    )
    lay = _Layout(max(1, len(d.lanes)), width, right_text)
    out = _head_lines(d, lay, lang, color)
    if not d.items:
        out.append("   " + label("no_events", lang))
        return out
    fmt = _time_fmt([it.t for it in d.items])
    idle = _idle_gap(d)
    last_t: float | None = None
    for it in filter(_drawn, d.items):
        if last_t is not None and it.t - last_t >= idle:
            gap = _Canvas(lay.width)
            for x in lay.x:
                gap.put(x, ":", "dim")
            gap.put(1, f"≈ {human_gap(it.t - last_t)}", "yellow")
            out.append(gap.render(color))
        rows = _item_rows(d, it, lay, multi, lang)
        if it.t != last_t:
            rows[0].put(0, fmt.format(it.t), "dim")
        last_t = it.t
        out.extend(r.render(color) for r in rows)
    if d.truncated:
        out.append(f"   … {d.truncated} {label('truncated', lang)}")
    out.append(("\x1b[2m" + legend + _RESET) if color else legend)
    return out


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """Values resampled to ``width`` buckets (bucket maximum) as block characters."""
    if not values:
        return ""
    n = len(values)
    if n <= width:
        buckets = list(values)
    else:
        buckets = [max(values[i * n // width : (i + 1) * n // width]) for i in range(width)]
    lo, hi = min(buckets), max(buckets)
    if hi == lo:
        return _SPARK[0 if hi == 0 else 4] * len(buckets)
    return "".join(_SPARK[min(7, int((v - lo) / (hi - lo) * 7.999))] for v in buckets)


def _num(v: float) -> str:
    return fmt_num(v) if math.isfinite(v) else str(v)


def series_lines(run: Run, lang: str, width: int | None) -> list[str]:
    """One sparkline per series, then a compact table (about 12 sampled rows), split into blocks of columns so
    that each fits ``width``."""
    w = width or 100
    s = run.series or {}
    t = list(s.get("t", []))
    keys = [k for k in s if k != "t"]
    out = [f"{label('series', lang)}:"]
    if not t or not keys:
        return out + ["   " + label("no_events", lang)]
    names = {k: series_name(k, lang) for k in keys}
    name_w = max(cell_width(n) for n in names.values())
    for k in keys:
        vals = [float(v) for v in s[k]]
        if not vals:
            continue
        peak = max(vals)
        at = t[vals.index(peak)] if len(t) == len(vals) else math.nan
        tail = f"  {label('max', lang)} {_num(peak)} {label('at', lang)} t={_num(at)}  {label('last', lang)} {_num(vals[-1])}"
        spark_w = max(10, min(48, w - name_w - cell_width(tail) - 3))
        name = names[k] + " " * (name_w - cell_width(names[k]))
        line = f"  {name} {sparkline(vals, spark_w)}{tail}"
        if cell_width(line) > w:  # a long name: the numbers go on the next line
            out.append(f"  {name} {sparkline(vals, spark_w)}")
            out.append(" " * (name_w + 3) + tail.strip())
        else:
            out.append(line)
    rows = 12
    idx = (
        sorted({round(i * (len(t) - 1) / (rows - 1)) for i in range(rows)})
        if len(t) > rows
        else range(len(t))
    )
    col_w = {k: max(9, cell_width(names[k]) + 1) for k in keys}
    blocks: list[list[str]] = [[]]
    used = 2 + 9
    for k in keys:
        if blocks[-1] and used + col_w[k] > w:
            blocks.append([])
            used = 2 + 9
        blocks[-1].append(k)
        used += col_w[k]
    for block in blocks:
        head = "".join(" " * (col_w[k] - cell_width(names[k])) + names[k] for k in block)
        out.append("  " + f"{'t':>9}" + head)
        for i in idx:
            cells = "".join(
                f"{_num(float(s[k][i]) if i < len(s[k]) else math.nan):>{col_w[k]}}" for k in block
            )
            out.append("  " + f"{_num(float(t[i])):>9}" + cells)
    return out


def _check_lines(run: Run, lang: str, color: bool, width: int) -> list[str]:
    out: list[str] = []
    if not run.checks:
        return out
    ok = sum(1 for ch in run.checks if ch.ok)
    out.append(f"{label('checks', lang)} ({ok}/{len(run.checks)}):")
    for ch in run.checks:
        mark = "✓" if ch.ok else ("✗" if ch.observed else "?")
        if color:
            mark = ("\x1b[32m" if ch.ok else "\x1b[31m") + mark + _RESET
        lines = wrap(check_claim(ch, lang), width - 6)
        out.append(f"  {mark} {lines[0]}")
        out.extend(f"    {ln}" for ln in lines[1:])
        detail = check_detail(ch, lang)
        if detail:
            for ln in wrap(detail, width - 8):
                out.append(("\x1b[2m" if color else "") + f"      {ln}" + (_RESET if color else ""))
    return out


def render_text(
    run: Run,
    *,
    absolute: bool = False,
    lang: str = "en",
    color: bool = False,
    width: int | None = 80,
    fold_bulk: bool = True,
) -> str:
    """The whole terminal view of ``run``: title, diagram (or series), checks, narrative, fitted into ``width``
    columns (None: as wide as the diagram wants). Bulk transfers are folded into one row unless ``fold_bulk`` is
    False. With more hosts than fit ``width``, the diagram becomes one line per event."""
    w = width or 100
    meta = (
        msg("title_meta", lang, world=world_text(run.world, lang), seed=run.seed)
        if run.seed is not None
        else msg("title_meta_noseed", lang, world=world_text(run.world, lang))
    )
    title_lines = wrap(f"{run_title(run, lang)}  ({meta})", w)
    lines = [(("\x1b[1m" + ln + _RESET) if color else ln) for ln in title_lines]
    if run.params:
        params = " ".join(f"{k}={v}" for k, v in run.params.items())
        lines.extend(wrap(f"{label('parameters', lang)}: {params}", w))
    lines.append("")
    if run.series:
        lines.extend(series_lines(run, lang, width))
        lines.append("")
    if run.events or not run.series:
        d = build(run, absolute=absolute, lang=lang)
        if fold_bulk:
            d, _ = fold(d)
        lines.extend(_diagram_lines(d, lang, color, width))
        lines.append("")
    lines.extend(_check_lines(run, lang, color, w))
    text = narrative(run.summary, lang)
    if text:
        lines.append("")
        lines.append(f"{label('summary', lang)}:")
        lines.extend("  " + ln for ln in wrap(text, w - 2))
    return "\n".join(lines).rstrip() + "\n"

"""Where everything of the SVG sequence diagram goes: lanes wide enough for their labels, rows that grow until no
two labels touch.

Theory of operation
-------------------
*Widths first.* Every label is measured with the metrics of the font the SVG names (:mod:`.measure`). Each lane
gets, on its outer side (left of the first lane, right of the others), a column for its state pills and, beyond
it, a column for its timer, application and note texts (wrapped at :data:`TEXT_MAX` px). The gap between two
lanes is at least as wide as the widest segment label that starts in it, the middle lane's columns and half of
both lane heads, so a label never reaches the next lane.

*Then rows, in event order.* An item's row starts where time puts it (the logarithmic compression of
:mod:`tcpwise.render.svg`) and never above the previous item's row. The item's labels -- its segment label, its
pill, its text, its time in the left column, a lost segment's cross and reason -- are built at that row and
checked against every label already placed; while any two boxes would touch, the row moves down just past the
obstacle. So rows grow exactly where labels need room and nowhere else. A lost segment's reason tries a few
spots around its cross (below, below-left, below-right, above) and takes the first free one, joined to the cross
by a leader line when it had to move away.

Lines are the soft part: a label also avoids the lines of arrows already complete, and a completed arrow moves its
arrival row down (a little, up to :data:`SOFT_MAX` px) rather than run through a label. Where that is not enough
(a dense bulk transfer drawn unfolded) labels keep a white halo and sit above the lines, so text stays readable;
bulk transfers are folded by default (:mod:`.fold`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from tcpwise.i18n import conn_text, label, msg
from tcpwise.render.diagram import GLOBAL, Arrow, Diagram, Item, Mark
from tcpwise.render.fold import Fold
from tcpwise.render.measure import Box, text_box, text_width
from tcpwise.term import fmt_bytes, wrap

__all__ = [
    "Plan",
    "TextP",
    "PillP",
    "IconP",
    "LineP",
    "FoldP",
    "Group",
    "plan",
    "fold_text",
    "fmt_t",
    "head_texts",
    "TIME_COL",
    "TOP",
]

TIME_COL = 80  # width of the left time column
TOP = 128  # y of the first event (lane heads above)
OFF = 14  # distance from a lane to its labels
PILL_GAP = 8  # between the pill column and the text column
TEXT_MAX = 220.0  # mark texts wrap at this width
REASON_MAX = 280.0  # a loss reason wraps at this width
PAD = 2.0  # minimum space between two label boxes
STEP = 24.0  # height of the run's typical gap between events
BREAK_H = 30.0  # height of a broken-axis band
SOFT_MAX = 48.0  # how far a row may move to keep a label off a line
MIN_SLOPE = 10.0  # an arrow ends at least this far below its start
SEG_SIZE, MARK_SIZE, PILL_SIZE, TIME_SIZE = 12.0, 12.0, 11.0, 11.0
LINE_GAP = 14.0  # between the lines of a wrapped text


# -- primitives: what svg.py draws, each with the box the layout reserved for it ----------------------------------
@dataclass(slots=True)
class TextP:
    x: float
    y: float  # baseline of the first line
    lines: list[str]
    cls: str
    size: float
    face: str
    anchor: str = "start"

    def box(self) -> Box:
        return text_box(self.x, self.y, self.lines, self.size, self.face, self.anchor, LINE_GAP)


@dataclass(slots=True)
class PillP:
    x: float  # left edge
    y: float  # centre line
    w: float
    text: str
    color: str

    def box(self) -> Box:
        return Box(self.x, self.y - 8, self.x + self.w, self.y + 8)


@dataclass(slots=True)
class IconP:
    kind: str  # "cross" | "timer"
    x: float
    y: float

    def box(self) -> Box:
        return Box(self.x - 7, self.y - 7, self.x + 7, self.y + 7)


@dataclass(slots=True)
class FoldP:
    """A framed block: a folded bulk transfer (with its direction) or a run-wide note."""

    x0: float
    x1: float
    y0: float
    y1: float
    rightward: bool
    kind: str = "fold"  # "fold" | "note"

    def box(self) -> Box:
        return Box(self.x0, self.y0, self.x1, self.y1)


Prim = TextP | PillP | IconP | FoldP


@dataclass(slots=True)
class LineP:
    x0: float
    y0: float
    x1: float
    y1: float
    kind: str  # "arrow" | "lost" | "dup" | "flight" | "connector" | "leader" | "tick"
    title: str = ""


@dataclass(slots=True)
class Group:
    """One label as the reader sees it (a pill with its text, a segment label): drawn as one ``<g class="lbl">``;
    ``title`` becomes its tooltip."""

    prims: list[Prim]
    title: str = ""


@dataclass
class Plan:
    lane_x: list[float]
    width: float
    rows: list[float]  # y of each diagram item
    groups: list[Group] = field(default_factory=list)
    lines: list[LineP] = field(default_factory=list)  # arrows and connectors (drawn under the labels)
    breaks: list[tuple[float, float, float]] = field(default_factory=list)  # (y_top, y_bottom, seconds)
    bottom: float = 0.0
    folded: int = 0  # arrows folded away (the HTML page offers the unfolded diagram)


# -- spatial index -----------------------------------------------------------------------------------------------
class _Grid:
    """Boxes bucketed by 32 px bands of y: collision queries look at the few bands a box spans."""

    BAND = 32.0

    def __init__(self) -> None:
        self.bands: dict[int, list[Box]] = defaultdict(list)
        self.bottom = -math.inf

    def _keys(self, y0: float, y1: float) -> range:
        return range(math.floor(y0 / self.BAND), math.floor(y1 / self.BAND) + 1)

    def add(self, b: Box) -> None:
        for k in self._keys(b.y0, b.y1):
            self.bands[k].append(b)
        self.bottom = max(self.bottom, b.y1)

    def hits(self, b: Box, pad: float = PAD) -> list[Box]:
        out: list[Box] = []
        seen: set[int] = set()
        for k in self._keys(b.y0 - pad, b.y1 + pad):
            for o in self.bands.get(k, ()):
                if id(o) not in seen and b.overlaps(o, pad):
                    seen.add(id(o))
                    out.append(o)
        return out

    def near(self, y0: float, y1: float) -> list[Box]:
        out: dict[int, Box] = {}
        for k in self._keys(y0, y1):
            for o in self.bands.get(k, ()):
                out[id(o)] = o
        return list(out.values())


def _line_hits_box(ln: LineP, b: Box) -> bool:
    """Liang-Barsky: does the segment cross the box?"""
    x0, y0, dx, dy = ln.x0, ln.y0, ln.x1 - ln.x0, ln.y1 - ln.y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0 - b.x0), (dx, b.x1 - x0), (-dy, y0 - b.y0), (dy, b.y1 - y0)):
        if p == 0:
            if q < 0:
                return False
            continue
        r = q / p
        if p < 0:
            t0 = max(t0, r)
        else:
            t1 = min(t1, r)
        if t0 > t1:
            return False
    return True


def _line_y_max(ln: LineP, x0: float, x1: float) -> float:
    """The lowest y of the segment over the x range [x0, x1] (the segment's own y where it has no x extent)."""
    lo, hi = min(ln.x0, ln.x1), max(ln.x0, ln.x1)
    a, b = max(lo, x0), min(hi, x1)
    if hi - lo < 1e-9 or a > b:
        return max(ln.y0, ln.y1)

    def y_at(x: float) -> float:
        return ln.y0 + (ln.y1 - ln.y0) * (x - ln.x0) / (ln.x1 - ln.x0)

    return max(y_at(a), y_at(b))


# -- text helpers ------------------------------------------------------------------------------------------------
def fmt_t(t: float) -> str:
    if abs(t * 1000 - round(t * 1000)) < 1e-6:
        return f"{t:.3f}"
    return f"{t:.6f}"


def _mark_face(m: Mark) -> str:
    return "sans-oblique" if m.kind == "app" else "sans"


def _mark_text(m: Mark, lang: str) -> str:
    if m.kind == "timer":
        return f"{label('timer', lang)} {m.text}"
    return m.text


def _pill_text(m: Mark, multi: bool, lang: str) -> str:
    name = m.to_state or "?"
    return f"{conn_text(m.conn, lang)} {name}" if (multi and m.conn) else name


def _seg_text(a: Arrow) -> str:
    return a.label + (" ×" if a.lost else "")


def fold_text(f: Fold, d: Diagram, lang: str) -> str:
    """The one-line summary of a folded bulk transfer."""
    extra = msg("fold_acks", lang, n=f.acks) if f.acks else ""
    if f.retx:
        extra += msg("fold_retx", lang, n=f.retx)
    if f.lost:
        extra += msg("fold_lost", lang, n=f.lost)
    if f.win and f.win[0] != f.win[1]:
        extra += msg("fold_window", lang, a=f.win[0], b=f.win[1])
    return msg(
        "fold",
        lang,
        n=f.data,
        src=d.lanes[f.src].name,
        dst=d.lanes[f.dst].name,
        size=fmt_bytes(f.nbytes),
        extra=extra,
    )


def state_color(name: str) -> str:
    """The colour of state ``name`` in every renderer (grey for anything that is not a state)."""
    return _state_color(name)


def _state_color(name: str) -> str:
    from tcpwise.vocab import STATE_COLORS, TcpState

    try:
        return STATE_COLORS[TcpState(name)]
    except ValueError:
        return "#ddd"


# -- horizontal layout -------------------------------------------------------------------------------------------
def head_texts(d: Diagram, i: int, lang: str) -> list[tuple[str, float, str]]:
    """The lines of lane ``i``'s head: (text, size, face)."""
    from tcpwise.i18n import role_text

    lane = d.lanes[i]
    out = [(lane.name, 15.0, "sans-bold")]
    sub = " ".join(
        p
        for p in (
            lane.addr if lane.addr != lane.name else "",
            f"({role_text(lane.role, lang)})" if lane.role else "",
        )
        if p
    )
    if sub:
        out.append((sub, 12.0, "sans"))
    if lane.initial:
        out.append((", ".join(dict.fromkeys(lane.initial.values())), 11.0, "mono-bold"))
    return out


@dataclass
class _Cols:
    pill: list[float]  # pill column width per lane
    text: list[float]  # text column width per lane


def _columns(d: Diagram, lang: str) -> _Cols:
    n = max(1, len(d.lanes))
    pill = [0.0] * n
    text = [0.0] * n
    for m in d.marks:
        if m.lane == GLOBAL:
            continue
        if m.kind == "state":
            multi = len(d.lanes[m.lane].conns) > 1
            pill[m.lane] = max(
                pill[m.lane], text_width(_pill_text(m, multi, lang), PILL_SIZE, "mono-bold") + 12
            )
        else:
            w = text_width(_mark_text(m, lang), MARK_SIZE, _mark_face(m))
            text[m.lane] = max(text[m.lane], min(TEXT_MAX, w + 2))
    return _Cols(pill, text)


def _outer_w(cols: _Cols, i: int) -> float:
    w = OFF + cols.pill[i]
    if cols.text[i]:
        w += (PILL_GAP if cols.pill[i] else 0) + cols.text[i]
    return w


def _lanes(d: Diagram, cols: _Cols, lang: str) -> tuple[list[float], float]:
    n = max(1, len(d.lanes))
    heads = [
        max((text_width(t, s, f) for t, s, f in head_texts(d, i, lang)), default=0)
        for i in range(len(d.lanes))
    ]
    heads += [0.0] * (n - len(heads))
    left_side = n > 1  # the first lane writes to its left
    min_gap = 540.0 if n <= 2 else 300.0
    gaps = [min_gap] * max(0, n - 1)
    for a in d.arrows:
        if a.src == a.dst:
            continue
        # the label sits in the gap next to the sender, on the receiver's side
        g = a.src if a.dst > a.src else a.src - 1
        need = text_width(_seg_text(a), SEG_SIZE, "mono") + 2 * OFF + 16
        if a.lost and abs(a.dst - a.src) == 1:
            need += 40  # room for the cross past the label
        if 0 <= g < len(gaps):
            gaps[g] = max(gaps[g], need)
    for i in range(len(gaps)):
        if i >= 1 or not left_side:
            gaps[i] = max(gaps[i], _outer_w(cols, i) + 40)
        gaps[i] = max(gaps[i], (heads[i] + heads[i + 1]) / 2 + 24)
    first_outer = _outer_w(cols, 0) if left_side else 0.0
    x_first: float = TIME_COL + max(first_outer + 12, heads[0] / 2 + 8, 60.0)
    lane_x = [x_first]
    for gap in gaps:
        lane_x.append(lane_x[-1] + gap)
    last = n - 1
    right = max(
        _outer_w(cols, last) + 16 if (last > 0 or not left_side) else 40.0, heads[last] / 2 + 12, 60.0
    )
    return lane_x, lane_x[-1] + right


# -- vertical layout ---------------------------------------------------------------------------------------------
class _Placer:
    def __init__(self, d: Diagram, lane_x: list[float], width: float, cols: _Cols, lang: str) -> None:
        self.d, self.lane_x, self.width, self.cols, self.lang = d, lane_x, width, cols, lang
        self.grid = _Grid()
        self.line_grid: dict[int, list[LineP]] = defaultdict(list)
        self.plan = Plan(lane_x, width, [0.0] * len(d.items))
        self.send_y: dict[int, float] = {}
        self.lost_end: dict[int, tuple[float, float]] = {}
        self.last_time: float | None = None
        self.last_reason: dict[tuple[int, int], str] = {}  # the last loss reason shown, per path
        self.pending_reason: tuple[tuple[int, int], str] | None = None
        self.multi = [len(lane.conns) > 1 for lane in d.lanes]
        self.flight = self._flight_estimate()

    # geometry helpers
    def _advance_fn(self) -> tuple[float, float]:
        times = sorted({it.t for it in self.d.items})
        gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False) if b - a > 1e-9)
        typical = gaps[len(gaps) // 2] if gaps else 1.0
        return typical, max(1.0, 50 * typical)

    def advance(self, dt: float) -> float:
        typical = self.typical
        if dt <= 1e-9:
            return 0.0
        if dt <= typical:
            return max(6.0, STEP * dt / typical)
        return STEP * (1 + 0.6 * math.log2(dt / typical))

    def _flight_estimate(self) -> float:
        self.typical, self.idle = self._advance_fn()
        flights = sorted(
            self.advance(a.t1 - a.t0) for a in self.d.arrows if a.t1 is not None and not a.orphan
        )
        return max(24.0, flights[len(flights) // 2] if flights else 30.0)

    def outer(self, lane: int) -> tuple[float, float, str]:
        """(x of the pill column's lane-side edge, x of the text column's start, text-anchor) for ``lane``."""
        x = self.lane_x[lane]
        pw = self.cols.pill[lane]
        gap = PILL_GAP if pw else 0.0
        if lane == 0 and len(self.lane_x) > 1:
            return x - OFF, x - OFF - pw - gap, "end"
        return x + OFF, x + OFF + pw + gap, "start"

    # building an item's labels at row y
    def _time_group(self, t: float, y: float) -> Group:
        return Group([TextP(TIME_COL - 8, y + 4, [fmt_t(t)], "tw-time", TIME_SIZE, "mono", "end")])

    def _seg_group(self, a: Arrow, y: float, x_from: float, rightward: bool) -> Group:
        x = x_from + OFF if rightward else x_from - OFF
        cls = "tw-seg tw-lost" if a.lost else "tw-seg"
        return Group(
            [TextP(x, y - 5, [_seg_text(a)], cls, SEG_SIZE, "mono", "start" if rightward else "end")]
        )

    def _lost_geometry(self, a: Arrow, y: float) -> tuple[float, float]:
        x0, x1 = self.lane_x[a.src], self.lane_x[a.dst]
        if a.src == a.dst:
            return x0 + 40, y + self.flight * 0.5
        if abs(a.dst - a.src) == 1:
            ex = x0 + (x1 - x0) * 0.62
        else:  # across several lanes: stop in the last gap, never on a lane in between
            prev = self.lane_x[a.dst - 1] if a.dst > a.src else self.lane_x[a.dst + 1]
            ex = x1 - (x1 - prev) * 0.38
        ey = y + self.flight * (ex - x0) / (x1 - x0)
        return ex, ey

    def _reason_options(self, a: Arrow, ex: float, ey: float) -> list[tuple[Group, list[LineP]]]:
        # the reason in full the first time; a loss on the same path for the same reason just says "lost"
        # (the tooltip keeps the reason): ten retransmissions into a black hole need one explanation
        path = (a.src, a.dst)
        same = self.last_reason.get(path) == a.reason
        self.pending_reason = (path, a.reason)
        why = label("lost", self.lang) + (
            f": {a.reason}" if a.reason and a.reason != "loss" and not same else ""
        )
        lines = wrap(why, REASON_MAX, lambda s: text_width(s, MARK_SIZE - 1, "sans"))
        cls, size, face = "tw-mark tw-why", MARK_SIZE - 1, "sans"
        opts: list[tuple[Group, list[LineP]]] = []
        for dx, dy, anchor in ((0, 20, "middle"), (-10, 20, "end"), (10, 20, "start"), (0, 38, "middle")):
            t = TextP(ex + dx, ey + dy, lines, cls, size, face, anchor)
            leader = [LineP(ex, ey + 7, ex + dx, ey + dy - 12, "leader")] if dy > 20 else []
            opts.append((Group([t]), leader))
        return opts

    def build(
        self, it: Item, y: float
    ) -> tuple[list[Group], list[LineP], list[list[tuple[Group, list[LineP]]]]]:
        """The item's labels at row ``y``: fixed groups, lines, and groups with alternative positions."""
        groups: list[Group] = []
        lines: list[LineP] = []
        options: list[list[tuple[Group, list[LineP]]]] = []
        if it.t != self.last_time:
            groups.append(self._time_group(it.t, y))
        a = it.arrow
        if it.kind == "send" and a is not None:
            x0, x1 = self.lane_x[a.src], self.lane_x[a.dst]
            groups.append(self._seg_group(a, y, x0, x1 >= x0))
            if a.lost:
                ex, ey = self._lost_geometry(a, y)
                lines.append(LineP(x0, y, ex, ey, "lost"))
                groups.append(Group([IconP("cross", ex, ey)]))
                options.append(self._reason_options(a, ex, ey))
        elif it.kind == "recv" and a is not None:
            x0, x1 = self.lane_x[a.src], self.lane_x[a.dst]
            if a.orphan:
                groups.append(self._seg_group(a, y - 14, x0, x1 >= x0))
                lines.append(LineP(x0, y - 14, x1, y, "dup"))
            elif a.dup:
                y0 = self.send_y.get(a.send_index, y - MIN_SLOPE)
                lines.append(LineP(x0, y0, x1, y, "dup"))
                right = x1 >= x0
                t = TextP(
                    x1 - OFF if right else x1 + OFF,
                    y + 15,
                    [f"{label('dup', self.lang)}: {a.label}"],
                    "tw-seg tw-dup",
                    SEG_SIZE,
                    "mono",
                    "end" if right else "start",
                )
                groups.append(Group([t]))
            else:
                y0 = self.send_y.get(a.send_index, y - MIN_SLOPE)
                lines.append(LineP(x0, y0, x1, y, "arrow"))
        elif it.kind == "mark" and it.mark is not None:
            self._mark(it.mark, y, groups, lines)
        elif it.kind == "fold" and it.fold is not None:
            self._fold(it.fold, y, groups, lines)
        return groups, lines, options

    def _mark(self, m: Mark, y: float, groups: list[Group], lines: list[LineP]) -> None:
        lang = self.lang
        if m.lane == GLOBAL:
            x0, x1 = self._global_span()
            text_lines = wrap(m.text, x1 - x0 - 16, lambda s: text_width(s, MARK_SIZE, "sans"))
            h = LINE_GAP * len(text_lines) + 10
            groups.append(
                Group(
                    [
                        FoldP(x0, x1, y - 12, y - 12 + h, True, "note"),
                        TextP(
                            (x0 + x1) / 2, y + 3, text_lines, "tw-mark tw-note", MARK_SIZE, "sans", "middle"
                        ),
                    ]
                )
            )
            return
        lx = self.lane_x[m.lane]
        pill_edge, text_x, anchor = self.outer(m.lane)
        if m.kind == "state":
            text = _pill_text(m, self.multi[m.lane], lang)
            w = text_width(text, PILL_SIZE, "mono-bold") + 12
            px = pill_edge if anchor == "start" else pill_edge - w
            lines.append(LineP(lx, y, pill_edge, y, "connector"))
            title = msg("state_at", lang, a=m.from_state, b=m.to_state, t=fmt_t(m.t))
            groups.append(Group([PillP(px, y, w, text, _state_color(m.to_state or ""))], title))
            return
        width = self.cols.text[m.lane] or TEXT_MAX
        face = _mark_face(m)
        text_lines = wrap(_mark_text(m, lang), width, lambda s: text_width(s, MARK_SIZE, face))
        cls = {"app": "tw-mark tw-app", "note": "tw-mark tw-note", "timer": "tw-mark tw-timer"}.get(
            m.kind, "tw-mark"
        )
        prims: list[Prim] = [TextP(text_x, y + 4, text_lines, cls, MARK_SIZE, face, anchor)]
        title = ""
        if m.kind == "timer":
            prims.insert(0, IconP("timer", lx, y))
            title = msg("timer_fired", lang, name=m.text, t=fmt_t(m.t))
        groups.append(Group(prims, title))

    def _global_span(self) -> tuple[float, float]:
        if len(self.lane_x) > 1:
            return self.lane_x[0] + 24, self.lane_x[-1] - 24
        return TIME_COL + 8, self.width - 8

    def _fold(self, f: Fold, y: float, groups: list[Group], lines: list[LineP]) -> None:
        xa, xb = self.lane_x[f.src], self.lane_x[f.dst]
        lo, hi = min(xa, xb) + OFF, max(xa, xb) - OFF
        text = fold_text(f, self.d, self.lang)
        span = msg("fold_span", self.lang, t0=fmt_t(f.t0), t1=fmt_t(f.t1))
        text_lines = wrap(text, hi - lo - 24, lambda s: text_width(s, MARK_SIZE, "sans-bold")) + [span]
        h = 14 + LINE_GAP * len(text_lines) + 18
        mid = (lo + hi) / 2
        groups.append(
            Group(
                [
                    FoldP(lo, hi, y, y + h, xb >= xa),
                    TextP(mid, y + 20, text_lines, "tw-fold", MARK_SIZE, "sans-bold", "middle"),
                ],
                title=text,
            )
        )
        groups.append(self._time_group(f.t1, y + h))

    # collision checks
    def hard_shift(self, groups: list[Group]) -> float:
        best = math.inf
        for g in groups:
            for p in g.prims:
                b = p.box()
                for o in self.grid.hits(b):
                    best = min(best, o.y1 + PAD - b.y0)
        return 0.0 if best == math.inf else max(1.0, best)

    def _lines_near(self, y0: float, y1: float) -> list[LineP]:
        out: dict[int, LineP] = {}
        for k in range(math.floor(y0 / _Grid.BAND), math.floor(y1 / _Grid.BAND) + 1):
            for ln in self.line_grid.get(k, ()):
                out[id(ln)] = ln
        return list(out.values())

    def soft_shift(self, groups: list[Group], lines: list[LineP]) -> float:
        """How far down the row should move so that its labels clear the lines already drawn and its own lines
        clear the labels already placed (0: nothing in the way). Lines still in flight are unknown: a burst of
        parallel connections can still cross labels (they keep their halo)."""
        best = 0.0
        for g in groups:
            for p in g.prims:
                if isinstance(p, IconP):
                    continue
                b = p.box().grow(1)
                for ln in self._lines_near(b.y0, b.y1):
                    if _line_hits_box(ln, b):
                        best = max(best, _line_y_max(ln, b.x0, b.x1) + PAD - b.y0)
        for ln in lines:
            if ln.kind not in ("arrow", "lost", "dup"):
                continue
            lo, hi = min(ln.y0, ln.y1), max(ln.y0, ln.y1)
            for o in self.grid.near(lo, hi):
                inner = o.grow(-1)
                if inner.width > 0 and inner.height > 0 and _line_hits_box(ln, inner):
                    # endpoints sit on lanes; a box touching the arrow's own end row is its time label or head
                    best = max(best, 2.0)
                    break
        return best

    def commit(self, groups: list[Group], lines: list[LineP]) -> None:
        for g in groups:
            for p in g.prims:
                self.grid.add(p.box())
            self.plan.groups.append(g)
        for ln in lines:
            self.plan.lines.append(ln)
            if ln.kind in ("arrow", "lost", "dup"):
                lo, hi = min(ln.y0, ln.y1), max(ln.y0, ln.y1)
                for k in range(math.floor(lo / _Grid.BAND), math.floor(hi / _Grid.BAND) + 1):
                    self.line_grid[k].append(ln)

    def place(self, idx: int, it: Item, y_min: float) -> float:
        y = y_min
        if it.kind == "recv" and it.arrow is not None and not it.arrow.orphan:
            y = max(y, self.send_y.get(it.arrow.send_index, y) + MIN_SLOPE)
        base = y
        soft = SOFT_MAX
        use_soft = True
        for _ in range(2000):
            groups, lines, options = self.build(it, y)
            dy = self.hard_shift(groups)
            chosen: list[tuple[Group, list[LineP]]] = []
            if not dy:
                for opts in options:
                    pick = next(
                        (o for o in opts if not self.hard_shift([o[0]]) and not _clash(o[0], groups)), None
                    )
                    if pick is None:
                        dy = max(1.0, self.hard_shift([opts[0][0]]) or 4.0)
                        break
                    chosen.append(pick)
            if not dy and use_soft:
                extra_groups = groups + [g for g, _ in chosen]
                extra_lines = lines + [ln for _, lns in chosen for ln in lns]
                s = self.soft_shift(extra_groups, extra_lines)
                if s and s <= soft:
                    soft -= s
                    y += s
                    continue
                if s:
                    # the lines nearby cannot be cleared within SOFT_MAX: do not grow the row for nothing
                    use_soft = False
                    y = base
                    continue
            if dy:
                y += dy
                continue
            for g, lns in chosen:
                groups.append(g)
                lines.extend(lns)
            self.commit(groups, lines)
            if self.pending_reason is not None:
                self.last_reason[self.pending_reason[0]] = self.pending_reason[1]
                self.pending_reason = None
            break
        if it.t != self.last_time:
            self.last_time = it.t
        if it.kind == "send" or (it.kind == "recv" and it.arrow is not None and it.arrow.orphan):
            self.send_y[idx] = y if it.kind == "send" else y - 14
        return y


def _clash(g: Group, others: list[Group]) -> bool:
    for p in g.prims:
        b = p.box()
        for o in others:
            for q in o.prims:
                if b.overlaps(q.box(), PAD):
                    return True
    return False


def plan(d: Diagram, lang: str, folded: int = 0) -> Plan:
    """Lay out diagram ``d``: lane positions, one row per item, every label's place."""
    cols = _columns(d, lang)
    lane_x, width = _lanes(d, cols, lang)
    p = _Placer(d, lane_x, width, cols, lang)
    prev_y = float(TOP)
    prev_t: float | None = None
    floor = float(TOP)  # nothing may go above this (a run-wide note or a fold pushes it down)
    for idx, it in enumerate(d.items):
        y = max(prev_y, floor)
        if prev_t is not None:
            dt = it.t - prev_t
            if dt >= p.idle:
                top = max(prev_y + 10, p.grid.bottom + 6)
                p.plan.breaks.append((top, top + BREAK_H, dt))
                band = Group(
                    [
                        TextP(
                            TIME_COL - 8,
                            top + BREAK_H / 2 + 5,
                            [f"≈ {_gap(dt)}"],
                            "tw-gap",
                            13.0,
                            "sans-bold",
                            "end",
                        )
                    ]
                )
                p.commit([band], [])
                p.grid.add(Box(TIME_COL, top, width, top + BREAK_H))
                y = top + BREAK_H + 14
            else:
                y = max(y, prev_y + p.advance(dt))
        if it.arrow is not None and it.kind == "send":
            p.send_y[idx] = y
        y = p.place(idx, it, y)
        p.plan.rows[idx] = y
        if it.kind == "send":
            p.send_y[idx] = y
        if it.kind == "fold" or (it.mark is not None and it.mark.lane == GLOBAL):
            floor = p.grid.bottom + 8
        prev_y, prev_t = y, it.t
    p.plan.bottom = max(prev_y, p.grid.bottom) + 30
    p.plan.folded = folded
    return p.plan


def _gap(dt: float) -> str:
    from tcpwise.render.textutil import human_gap

    return human_gap(dt)

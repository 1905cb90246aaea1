"""Folding a bulk transfer: a run of data segments and their ACKs becomes one summary row.

A diagram with one arrow per segment is what a handshake or a teardown needs, but a 100 kB response is 70 data
segments and 70 ACKs: a pile of labels no one reads. :func:`fold` finds each *bulk run* -- a stretch of the
diagram's rows made only of data-carrying segments and pure ACKs between the same two hosts (no SYN, FIN or RST,
no state change, timer or application call other than send/recv in between) -- and replaces it by one
:class:`Fold`: "37 data segments B → A, 53.6 kB, 37 ACKs, 2 retransmissions, window 65535 → 0".

A run is cut only where no segment is in flight, so every folded arrow starts and ends inside its fold and the
rows around it stay exact. Runs with fewer than ``min_data`` data segments are left alone. The HTML page shows the
folded diagram with an expand control that reveals the full one; the text format folds the same way unless
asked for every segment.
"""

from __future__ import annotations

from dataclasses import replace

from tcpwise.render.diagram import Arrow, Diagram, Fold, Item
from tcpwise.vocab import AppCall

__all__ = ["Fold", "fold", "MIN_DATA"]  # Fold lives with the diagram's other row types

MIN_DATA = 8  # data segments below which a run is drawn segment by segment
_BULK_FLAGS = frozenset({"A", "PA", "P"})


def _bulk_arrow(a: Arrow) -> bool:
    return a.seg.flags in _BULK_FLAGS and not a.orphan and not a.dup


def _bulk_item(it: Item) -> bool:
    if it.arrow is not None:
        return _bulk_arrow(it.arrow)
    m = it.mark
    return m is not None and m.kind == "app" and m.call in (AppCall.SEND, AppCall.RECV) and not m.errno


def _cut_points(d: Diagram) -> list[bool]:
    """``ok[c]``: no segment is in flight across the boundary before item ``c``."""
    n = len(d.items)
    diff = [0] * (n + 2)
    for a in d.arrows:
        if a.send_index >= 0 and a.recv_index > a.send_index:
            diff[a.send_index + 1] += 1
            diff[a.recv_index + 1] -= 1
    ok = []
    run = 0
    for c in range(n + 1):
        run += diff[c]
        ok.append(run == 0)
    return ok


def _stretches(d: Diagram) -> list[tuple[int, int]]:
    """Maximal [start, end) stretches of bulk items between one pair of lanes with data flowing one way."""
    out: list[tuple[int, int]] = []
    i, n = 0, len(d.items)
    while i < n:
        first = d.items[i].arrow
        if first is None or not _bulk_item(d.items[i]):
            i += 1
            continue
        pair = frozenset((first.src, first.dst))
        data_src: int | None = None
        j = i
        while j < n and _bulk_item(d.items[j]):
            it = d.items[j]
            a = it.arrow
            if a is None:
                if it.mark is None or it.mark.lane not in pair:
                    break
            elif frozenset((a.src, a.dst)) != pair:
                break
            elif it.kind == "send" and a.seg.len > 0:
                if data_src is None:
                    data_src = a.src
                elif a.src != data_src:
                    break
            j += 1
        out.append((i, j))
        i = max(j, i + 1)
    return out


def _summarise(items: list[Item]) -> Fold | None:
    data = [it.arrow for it in items if it.kind == "send" and it.arrow is not None and it.arrow.seg.len > 0]
    if not data:
        return None
    src, dst = data[0].src, data[0].dst
    if any(a.src != src for a in data):  # data both ways: not a bulk transfer
        return None
    f = Fold(src, dst, items[0].t, items[-1].t)
    seen_end: int | None = None  # highest relative byte sent so far, by absolute seq arithmetic
    from tcpwise.wire.seq import seq_diff

    isn = data[0].seg.seq
    wins: list[int] = []
    for it in items:
        a = it.arrow
        if a is None:
            f.calls += 1
            continue
        if it.kind != "send":
            continue
        f.arrows.append(a)
        if a.src == src and a.seg.len > 0:
            f.data += 1
            f.nbytes += a.seg.len
            start = seq_diff(a.seg.seq, isn)
            if seen_end is not None and start < seen_end:
                f.retx += 1
            seen_end = max(seen_end or 0, start + a.seg.len)
        elif a.src == dst:
            f.acks += 1
            wins.append(a.seg.win)
        if a.lost:
            f.lost += 1
    if wins:
        f.win = (wins[0], wins[-1])
    return f


def fold(d: Diagram, min_data: int = MIN_DATA) -> tuple[Diagram, int]:
    """``d`` with every bulk run of at least ``min_data`` data segments folded into one ``fold`` item; also
    returns how many arrows were folded away (0: nothing changed, ``d`` itself is returned)."""
    ok = _cut_points(d)
    spans: list[tuple[int, int, Fold]] = []
    for lo, hi in _stretches(d):
        s = next((c for c in range(lo, hi + 1) if ok[c]), None)
        e = next((c for c in range(hi, lo - 1, -1) if ok[c]), None)
        if s is None or e is None or e - s < 2:
            continue
        f = _summarise(d.items[s:e])
        if f is not None and f.data >= min_data:
            spans.append((s, e, f))
    if not spans:
        return d, 0
    items: list[Item] = []
    arrows: list[Arrow] = []
    copies: dict[int, Arrow] = {}
    folded = 0
    k = 0
    for s, e, f in spans:
        items.extend(d.items[k:s])
        items.append(Item("fold", f.t0, fold=f))
        folded += len(f.arrows)
        k = e
    items.extend(d.items[k:])
    # fresh arrow copies with indices into the new item list (the unfolded diagram keeps its own)
    new_items: list[Item] = []
    for idx, it in enumerate(items):
        if it.arrow is not None:
            a = copies.get(id(it.arrow))
            if a is None:
                a = copies[id(it.arrow)] = replace(it.arrow, send_index=-1, recv_index=-1)
                arrows.append(a)
            if it.kind == "send":
                a.send_index = idx
            else:
                a.recv_index = idx
                if a.orphan or a.dup:
                    a.send_index = a.send_index if a.send_index >= 0 else idx
            it = Item(it.kind, it.t, arrow=a)
        new_items.append(it)
    for dup in arrows:  # a duplicate shares its original's send row
        if dup.dup:
            orig = next((o for o in arrows if not o.dup and o.seg == dup.seg and o.t0 == dup.t0), None)
            if orig is not None:
                dup.send_index = orig.send_index
    out = replace(d, items=new_items, arrows=arrows)
    return out, folded

"""Nothing overlaps, nothing is clipped, nothing renders as tofu: every picture, measured twice.

* In Python, from the layout's own boxes (fast, no browser): no two label boxes of a plan intersect, and every
  character drawn has a measured width (no guessed glyphs).
* In headless Chromium (``@pytest.mark.browser``), from the boxes the browser lays out (getBoundingClientRect of
  each label's text and solid shapes): no two labels overlap, none sticks out of its SVG, every ``<text>`` is
  inside a label group, and every CJK ideograph is one em wide (tofu, the .notdef box of a missing font, is 0.6 em
  in DejaVu). Pictures: every scenario in en and zh (folded and, where a bulk transfer was folded, unfolded), the
  recorded lab runs, and ``trace --conn`` runs of captures exported from the simulator.

Each family has a planted-bug twin that must turn red: collision avoidance switched off, a private-use character
(a glyph no font has), an SVG cut narrower than its content.
"""

from __future__ import annotations

import re

import pytest
from browser_boxes import CHROMIUM, measure, problems
from pictures import all_runs, all_svgs, scenario_runs

import tcpwise.render.svglayout as layout
from tcpwise.render.diagram import build
from tcpwise.render.fold import fold
from tcpwise.render.measure import Box, unmeasured
from tcpwise.render.svg import render_svg


def _plan_boxes(run, lang: str, do_fold: bool = True) -> list[list[Box]]:  # type: ignore[no-untyped-def]
    d = build(run, lang=lang)
    n = 0
    if do_fold:
        d, n = fold(d)
    p = layout.plan(d, lang, n)
    return [[prim.box() for prim in g.prims] for g in p.groups]


def _overlaps(groups: list[list[Box]]) -> list[tuple[Box, Box]]:
    flat = sorted(((b, gi) for gi, g in enumerate(groups) for b in g), key=lambda x: x[0].y0)
    out = []
    for i, (a, ga) in enumerate(flat):
        for b, gb in flat[i + 1 :]:
            if b.y0 >= a.y1:
                break
            if ga != gb and a.overlaps(b):
                out.append((a, b))
    return out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_layout_boxes_never_overlap(lang: str) -> None:
    bad = {}
    for name, run in all_runs().items():
        for do_fold in (True, False):
            found = _overlaps(_plan_boxes(run, lang, do_fold))
            if found:
                bad[f"{name} fold={do_fold}"] = found[:2]
    assert not bad, bad


def test_layout_check_turns_red_without_collision_avoidance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout._Placer, "hard_shift", lambda self, groups: 0.0)
    monkeypatch.setattr(layout, "SOFT_MAX", 0.0)
    assert _overlaps(_plan_boxes(scenario_runs()["syn-flood"], "en"))


def test_every_drawn_character_is_measured() -> None:
    """The layout guesses nothing: each character of each label is in the DejaVu tables or is a CJK ideograph."""
    missing: dict[str, set[str]] = {}
    for name, svg in all_svgs().items():
        for text in re.findall(r">([^<>]+)<", svg):
            chars = unmeasured(text) - set("\n")
            if chars:
                missing.setdefault(name, set()).update(chars)
    assert not missing, missing


def test_fold_keeps_every_segment_in_the_unfolded_view() -> None:
    """rst-on-timeout's response fills the client's window: one fold of data segments and ACKs whose counts add
    up to what the unfolded diagram draws. The fold ends when Linux's sender-side SWS avoidance holds back the
    last few hundred bytes of window (RFC 9293 §3.8.6.2.1) and the persist timer takes over."""
    run = scenario_runs()["rst-on-timeout"]
    d = build(run)
    folded, n = fold(d)
    f = next(it.fold for it in folded.items if it.fold is not None)
    assert f.data >= 8 and n == f.data + f.acks == len(f.arrows)
    assert f.nbytes == sum(a.seg.len for a in f.arrows) > 60_000 and f.retx == 0
    assert f.win is not None and 0 < f.win[1] < f.win[0]
    assert len(folded.items) == len(d.items) - 2 * n + 1  # each folded arrow had a send and a recv row
    svg = render_svg(run)
    label = f"{f.data} data segments B → A, {f.nbytes / 1000:.1f} kB, {f.acks} ACKs, window {f.win[0]} → {f.win[1]}"
    assert label in svg
    assert svg.count("<line") < render_svg(run, fold=False).count("<line") - 60


@pytest.mark.browser
def test_no_overlap_clip_or_tofu_in_the_browser() -> None:
    svgs = all_svgs()
    assert any(k.startswith("lab:") for k in svgs) and any(k.startswith("trace:") for k in svgs)
    assert len(svgs) >= 2 * (22 + 2 + 6)
    found = measure(svgs)
    assert set(found) == set(svgs)
    assert not problems(found), "\n".join(problems(found))
    assert sum(r["labels"] for r in found.values()) > 3000


@pytest.mark.browser
def test_browser_checks_turn_red_on_planted_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CHROMIUM is not None
    run = scenario_runs()["syn-flood"]
    zh = render_svg(scenario_runs()["close"], lang="zh")
    tofu = zh.replace(">close — 四次挥手<", ">close — 四次\ue000挥手<", 1)  # private use: no font has a glyph
    assert tofu != zh
    w = re.search(r'<svg [^>]*width="(\d+)"', zh)
    assert w is not None
    clipped = zh.replace(f'width="{w.group(1)}"', 'width="400"', 1).replace(
        f'viewBox="0 0 {w.group(1)} ', 'viewBox="0 0 400 ', 1
    )
    with monkeypatch.context() as m:
        m.setattr(layout._Placer, "hard_shift", lambda self, groups: 0.0)
        m.setattr(layout, "SOFT_MAX", 0.0)
        crowded = render_svg(run)
    found = measure({"crowded": crowded, "tofu": tofu, "clipped": clipped, "good": zh})
    assert found["crowded"]["n_overlaps"] > 0
    assert found["tofu"]["tofu"] and not found["good"]["tofu"]
    assert found["clipped"]["clipped"] and not found["good"]["clipped"]
    assert not problems({"good": found["good"]})

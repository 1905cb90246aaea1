"""Mermaid and SVG renderers: structure, labels, drops, compressed time, self-containment."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from render_fixtures import close_run, series_run

from tcpwise.events import Event, Host, Run
from tcpwise.render import render

SVG = "{http://www.w3.org/2000/svg}"


def test_mermaid_sequence_diagram() -> None:
    out = render(close_run(), "mermaid")
    assert isinstance(out, str)
    lines = out.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert "    participant A as A 198.18.0.1 (client)" in lines
    assert "    A->>B: S seq=0 len=0 win=65535" in lines
    assert "    B->>A: SA seq=0 ack=1 len=0 win=65160" in lines
    assert "    A-xB: A seq=102 ack=2 len=0 win=65535 (lost: random loss)" in lines
    assert "    Note over A: FIN_WAIT_2 → TIME_WAIT" in lines
    assert "    Note over B: ⏱ rto" in lines
    assert any(line.startswith("    Note over A,B: ≈ 60 s") for line in lines)
    assert sum(1 for line in lines if re.match(r"    \w+(->>|-x)\w+: ", line)) == 11


def test_mermaid_escapes_its_reserved_characters() -> None:
    run = Run(
        "x",
        hosts=[Host("host-1", "198.18.0.1"), Host("B", "198.18.1.1")],
        events=[Event(0.0, "host-1", "note", text="a; b #1")],
    )
    out = render(run, "mermaid")
    assert "participant host_1 as host-1 198.18.0.1" in out
    assert "Note over host_1: a#59; b #35;1" in out


def _svg(run: Run, **kw: object) -> ET.Element:
    out = render(run, "svg", **kw)  # type: ignore[arg-type]
    assert isinstance(out, str)
    return ET.fromstring(out)


def test_svg_is_wellformed_self_contained_and_compact() -> None:
    out = render(close_run(), "svg")
    root = ET.fromstring(out)
    assert root.tag == SVG + "svg"
    # nothing fetched from elsewhere: no href/src other than the in-document marker reference
    assert not re.search(r'(href|src)="(?!#)', out)
    assert "url(#tw-head)" in out and "http://" not in out.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # the 60 s of TIME_WAIT is a broken axis, not 60 s of pixels
    height = float(root.get("height", "0"))
    assert 600 < height < 1400, height
    assert "≈ 60 s" in out


def test_svg_draws_arrows_labels_drop_bands_timers() -> None:
    root = _svg(close_run())
    texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
    assert "SA seq=0 ack=1 len=0 win=65160" in texts
    assert "A seq=102 ack=2 len=0 win=65535 ×" in texts  # the lost one
    assert {
        "SYN_SENT",
        "ESTABLISHED",
        "FIN_WAIT_1",
        "FIN_WAIT_2",
        "TIME_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
    } <= set(texts)
    assert "timer rto" in texts and "timer time_wait" in texts
    arrows = [ln for ln in root.iter(SVG + "line") if ln.get("stroke-width") == "1.6"]
    assert len(arrows) == 11
    heads = [ln for ln in arrows if ln.get("marker-end")]
    assert len(heads) == 10  # the lost segment ends in a cross, not an arrow head
    lost = [ln for ln in arrows if not ln.get("marker-end")][0]
    assert lost.get("stroke") == "#c62828"
    # sloped: every delivered arrow ends lower than it starts
    assert all(float(ln.get("y2", 0)) > float(ln.get("y1", 0)) for ln in arrows)
    bands = [r for r in root.iter(SVG + "rect") if r.find(SVG + "title") is not None]
    states = {"".join(r.find(SVG + "title").itertext()) for r in bands}  # type: ignore[union-attr]
    assert {"SYN_SENT", "ESTABLISHED", "TIME_WAIT", "LAST_ACK", "LISTEN"} <= states


def test_svg_time_is_monotonic() -> None:
    root = _svg(close_run())
    times = [
        (float(t.get("y", 0)), "".join(t.itertext()))
        for t in root.iter(SVG + "text")
        if t.get("class") == "tw-time" and re.fullmatch(r"\d+\.\d+", "".join(t.itertext()))
    ]
    ys = [y for y, _ in times]
    ts = [float(v) for _, v in times]
    assert ys == sorted(ys) and ts == sorted(ts) and ts[-1] == 60.52


def test_svg_absolute_and_zh() -> None:
    out = render(close_run(), "svg", absolute=True, lang="zh")
    assert "SA seq=3000000000 ack=1000001" in out
    assert "标志" in out and "丢失" in out


def test_svg_series_plot_instead_of_arrows() -> None:
    root = _svg(series_run())
    lines = list(root.iter(SVG + "polyline"))
    assert len(lines) == 3  # one panel per series
    texts = " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))
    assert "TIME_WAIT" in texts and "600,000" in texts and "failed_connects" in texts


def test_svg_many_events_are_capped() -> None:
    base = close_run()
    ev = []
    for i in range(400):
        for e in base.events[:-2]:
            ev.append(dataclasses.replace(e, t=e.t + i))
    out = render(Run("big", hosts=base.hosts, events=ev), "svg")
    assert "more events not drawn" in out
    assert len(out) < 3_000_000


MERMAID_JS = os.environ.get("TCPWISE_MERMAID_JS", "")  # path to mermaid.min.js (npm package "mermaid")


@pytest.mark.browser
@pytest.mark.skipif(
    not (MERMAID_JS and os.path.isfile(MERMAID_JS) and shutil.which("chromium")),
    reason="set TCPWISE_MERMAID_JS to a mermaid.min.js to check the output with real Mermaid",
)
def test_real_mermaid_parses_every_diagram(tmp_path: Path) -> None:
    from tcpwise.scenarios import catalogue, run_scenario

    srcs = {s.id: render(run_scenario(s.id), "mermaid") for s in catalogue()}
    srcs["fixture-zh"] = render(close_run(), "mermaid", lang="zh")
    srcs["escapes"] = render(
        Run("x", hosts=[Host("h-1", "198.18.0.1")], events=[Event(0.0, "h-1", "note", text="a; b #1")]),
        "mermaid",
    )
    page = tmp_path / "m.html"
    page.write_text(
        f'<html><body><div id="out"></div><script src="{Path(MERMAID_JS).as_uri()}"></script><script>'
        f"const srcs = {json.dumps(srcs)}; mermaid.initialize({{startOnLoad: false}});"
        "(async () => { const res = []; for (const [k, v] of Object.entries(srcs)) {"
        " try { await mermaid.render('m' + res.length, v); res.push(k + ':ok'); }"
        " catch (e) { res.push(k + ':ERR ' + (e.message || e)); } }"
        " document.getElementById('out').setAttribute('data-res', res.join('|')); })();</script></body></html>"
    )
    profile = tmp_path / "profile"
    p = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", f"--user-data-dir={profile}", "--virtual-time-budget=30000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    m = re.search(r'data-res="([^"]*)"', p.stdout)
    assert m, p.stderr[-2000:]
    results = m.group(1).split("|")
    assert len(results) == len(srcs) and all(r.endswith(":ok") for r in results), results

"""Every picture tcpwise draws, for the layout tests: each catalogue scenario (en and zh, folded and, where a bulk
transfer was folded, unfolded), recorded lab runs (tests/render/data/lab-*.json, written by ``tcpwise lab run ID
--format json``) and ``trace --conn`` runs of captures exported from the simulator."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from tcpwise.events import Run

DATA = Path(__file__).parent / "data"
TRACED = (
    "lost-last-ack",
    "rst-on-timeout",
    "client-leak",
    "half-open-partition",
    "syn-flood",
    "simultaneous-close",
)


@functools.lru_cache(maxsize=1)
def scenario_runs() -> dict[str, Run]:
    from tcpwise.scenarios import catalogue, run_scenario

    return {sc.id: run_scenario(sc.id) for sc in catalogue()}


@functools.lru_cache(maxsize=1)
def lab_runs() -> dict[str, Run]:
    return {
        f"lab:{p.stem[4:]}": Run.from_json(p.read_text(encoding="utf-8"))
        for p in sorted(DATA.glob("lab-*.json"))
    }


@functools.lru_cache(maxsize=1)
def trace_runs() -> dict[str, Run]:
    """``trace --conn N`` of the pcap each TRACED scenario exports (at most 3 connections each)."""
    from tcpwise.errors import UsageError
    from tcpwise.render import render
    from tcpwise.trace.conn_view import connection_run

    out: dict[str, Run] = {}
    tmp = Path(tempfile.mkdtemp(prefix=f"twpic{os.getpid()}-"))
    for sid in TRACED:
        pcap = tmp / f"{sid}.pcap"
        data = render(scenario_runs()[sid], "pcap")
        assert isinstance(data, bytes)
        pcap.write_bytes(data)
        for n in (1, 2, 3):
            try:
                run, _ = connection_run(str(pcap), n)
            except UsageError:
                break
            run.title = run.title.replace(str(tmp) + "/", "")  # the temp dir is noise in the title
            out[f"trace:{sid}#{n}"] = run
    return out


def all_runs() -> dict[str, Run]:
    return {**scenario_runs(), **lab_runs(), **trace_runs()}


def all_svgs(langs: tuple[str, ...] = ("en", "zh")) -> dict[str, str]:
    from tcpwise.render.svg import render_svg, render_svg_folded

    out: dict[str, str] = {}
    for name, run in all_runs().items():
        for lang in langs:
            svg, folded = render_svg_folded(run, lang=lang)
            out[f"{name}/{lang}"] = svg
            if folded:
                out[f"{name}/{lang}/unfolded"] = render_svg(run, lang=lang, fold=False)
    return out

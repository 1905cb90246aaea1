"""The terminal diagram as a reader meets it: 80 columns, each host's messages in its own column, no EOF shown
to an application that had already closed, bulk transfers folded."""

from __future__ import annotations

import dataclasses

import pytest
from pictures import scenario_runs

from tcpwise.render import render
from tcpwise.render.diagram import GLOBAL, build
from tcpwise.render.text import _fits, _Layout, _mark_lines, _mark_rows
from tcpwise.term import cell_width
from tcpwise.vocab import AppCall


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_scenario_fits_80_columns(lang: str) -> None:
    wide = []
    for sid, run in scenario_runs().items():
        out = render(run, "text", lang=lang)
        assert isinstance(out, str)
        wide += [f"{sid}: {line}" for line in out.splitlines() if cell_width(line) > 80]
    assert not wide, wide[:5]


def _column_violations(width: int | None, mark_rows=_mark_rows) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    """(marks checked, marks written outside their own host's column) over every scenario."""
    checked, bad = 0, []
    for sid, run in scenario_runs().items():
        d = build(run)
        n = len(d.lanes)
        if n > 4 or not _fits(n, width):
            continue
        multi = {i: len(lane.conns) > 1 for i, lane in enumerate(d.lanes)}
        last = n - 1
        right = max(
            (cell_width(_mark_lines(m, multi.get(m.lane, False))) for m in d.marks if m.lane == last),
            default=20,
        )
        lay = _Layout(n, width, right)
        for m in d.marks:
            if m.lane == GLOBAL:
                continue
            x = lay.x[m.lane]
            end = lay.x[m.lane + 1] if m.lane + 1 < n else lay.width
            for row in mark_rows(lay, m, multi.get(m.lane, False)):
                cols = [i for i, ch in enumerate(row.cells) if ch not in (" ", "|", "")]
                checked += 1
                if not (cols and cols[0] == x + 2 and cols[-1] < end):
                    bad.append(f"{sid}: {m.text!r} at {cols[:1]}, lane at {x}")
    return checked, bad


@pytest.mark.parametrize("width", [80, None])
def test_every_message_is_written_in_its_own_hosts_column(width: int | None) -> None:
    """A mark's text starts two cells right of its own lane's bar and ends before the next lane's bar."""
    checked, bad = _column_violations(width)
    assert checked > 500 and not bad, bad[:5]


def test_the_column_check_catches_a_message_in_the_neighbours_column() -> None:
    """Plant the old bug: a long message of the last host written right-aligned against its bar, i.e. in the
    previous host's column."""

    def old_rows(lay, m, multi, lang="en"):  # type: ignore[no-untyped-def]
        rows = _mark_rows(lay, m, multi, lang)
        if m.lane == len(lay.x) - 1 and m.lane > 0:
            for r in rows:
                text = "".join(r.cells[lay.x[m.lane] + 2 :]).rstrip()
                r.cells[lay.x[m.lane] + 2 :] = [" "] * (len(r.cells) - lay.x[m.lane] - 2)
                r.put(lay.x[m.lane] - 1 - cell_width(text), text)
        return rows

    _, bad = _column_violations(80, old_rows)
    assert bad


def _column_of(out: str, needle: str) -> tuple[int, str]:
    line = next(line for line in out.splitlines() if needle in line)
    return line.index(needle), line


def test_b_s_reset_is_in_b_s_column() -> None:
    from tcpwise.scenarios import run_scenario

    out = str(render(run_scenario("lost-last-ack", overrides=["time_wait=0"]), "text"))
    head = out.splitlines()[3]
    b = head.index("B 198.18.1.1")
    col, line = _column_of(out, "app: ECONNRESET")
    assert col == b + 2, line


def test_per_ip_limit_message_is_in_b_s_column_when_wide() -> None:
    out = str(render(scenario_runs()["client-leak"], "text", width=None))
    head = next(line for line in out.splitlines() if "C 198.18.0.2" in line)
    b = head.index("B 198.18.1.1")
    col, line = _column_of(out, "per-IP limit 10")
    assert col >= b + 2, line  # right of B's bar, not in C's column


def _eof_after_close(run) -> list[str]:  # type: ignore[no-untyped-def]
    closed: set[tuple[str, str | None]] = set()
    bad = []
    for ev in run.events:
        key = (ev.host, ev.conn)
        if ev.kind == "app" and ev.call in (AppCall.CLOSE, AppCall.ABORT):
            closed.add(key)
        elif ev.kind == "app" and ev.call is AppCall.EOF and key in closed:
            bad.append(f"{run.scenario}: {ev.host} sees EOF at {ev.t} after close()")
    return bad


def test_no_eof_after_the_application_closed() -> None:
    """`sim close` used to show "recv() returns EOF" on A after A's close(): the endpoint signalled the FIN to an
    application that no longer had the socket. Now no app sees EOF after its own close(), in any scenario."""
    bad = [b for run in scenario_runs().values() for b in _eof_after_close(run)]
    assert not bad, bad
    out = str(render(scenario_runs()["close"], "text"))
    a_col = out.splitlines()[3].index("A 198.18.0.1")
    eofs = [line for line in out.splitlines() if "recv() returns EOF" in line]
    assert eofs and all(line.index("app:") != a_col + 2 for line in eofs), eofs
    # the check can fail: the old run had A's EOF after A's close()
    run = scenario_runs()["close"]
    a_close = next(e for e in run.events if e.host == "A" and e.call is AppCall.CLOSE)
    planted = dataclasses.replace(a_close, t=a_close.t + 0.5, call=AppCall.EOF)
    assert _eof_after_close(dataclasses.replace(run, events=[*run.events, planted]))


def test_bulk_transfer_is_one_row_unless_asked() -> None:
    import re

    run = scenario_runs()["rst-on-timeout"]
    folded = str(render(run, "text"))
    full = str(render(run, "text", fold=False))
    m = re.search(r"(\d+) data segments B → A, [\d.]+ kB", folded)
    assert m and "window" in folded and "win=0" in folded
    assert len(full.splitlines()) > len(folded.splitlines()) + 60
    assert "data segments" not in full
    zh = str(render(run, "text", lang="zh"))
    assert f"B → A 共 {m.group(1)} 个数据段" in zh


def test_no_color_unless_asked() -> None:
    run = scenario_runs()["close"]
    plain = str(render(run, "text"))
    assert "\x1b[" not in plain
    assert "\x1b[" in str(render(run, "text", color=True))

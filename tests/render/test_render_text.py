"""Text renderer and the shared diagram model (pairing, relative numbering, lanes)."""

from __future__ import annotations

import dataclasses

import pytest
from render_fixtures import CONN_A, J, K, close_run, seg, series_run

from tcpwise.errors import UsageError
from tcpwise.events import Event, Host, Run, SegmentInfo
from tcpwise.render import FORMATS, render
from tcpwise.render.diagram import build
from tcpwise.render.text import cell_width, sparkline


def test_pairs_every_send_with_its_recv_or_drop() -> None:
    d = build(close_run())
    sends = [e for e in close_run().events if e.kind == "send"]
    assert len(d.arrows) == len(sends) == 11
    lost = [a for a in d.arrows if a.lost]
    assert len(lost) == 1 and lost[0].t1 is None and lost[0].reason == "random loss"
    delivered = [a for a in d.arrows if not a.lost]
    assert all(a.t1 is not None and a.t1 == pytest.approx(a.t0 + 0.01) for a in delivered)
    assert all(a.src != a.dst for a in d.arrows)


def test_relative_numbers_follow_each_sides_isn_across_the_wrap() -> None:
    labels = [a.label for a in build(close_run()).arrows]
    assert labels[0] == "S seq=0 len=0 win=65535"  # no ack= without the ACK flag
    assert labels[1] == "SA seq=0 ack=1 len=0 win=65160"
    assert labels[2] == "A seq=1 ack=1 len=0 win=65535"  # K+1 wrapped past 2**32 and is still 1
    assert labels[5] == "FA seq=101 ack=1 len=0 win=65535"
    absolute = [a.label for a in build(close_run(), absolute=True).arrows]
    assert absolute[1] == f"SA seq={K} ack={J + 1} len=0 win=65160"
    assert absolute[2] == f"A seq={J + 1} ack={(K + 1) & 0xFFFFFFFF} len=0 win=65535"


def test_run_without_handshake_counts_from_one() -> None:
    # a run that starts ESTABLISHED: the first segment seen in each direction is byte 1 (textbook "seq=u")
    ev = [
        Event(0.0, "A", "send", segment=seg("A", "FA", 5000, 9000)),
        Event(0.01, "B", "recv", segment=seg("A", "FA", 5000, 9000)),
    ]
    run = Run("x", hosts=[Host("A", "198.18.0.1"), Host("B", "198.18.1.1")], events=ev)
    assert build(run).arrows[0].label == "FA seq=1 ack=1 len=0 win=65535"


def test_duplicate_and_unsent_arrivals_get_their_own_arrows() -> None:
    s1, s2 = seg("A", "PA", J + 1, K + 1, 10), seg("B", "A", K + 1, J + 11)
    ev = [
        Event(0.0, "A", "send", segment=s1),
        Event(0.01, "B", "recv", segment=s1),
        Event(0.02, "B", "recv", segment=s1),  # network duplicate
        Event(0.03, "A", "recv", segment=s2),
    ]  # never seen sent (e.g. a one-sided trace)
    d = build(Run("x", hosts=[Host("A", "198.18.0.1"), Host("B", "198.18.1.1")], events=ev))
    assert [(a.dup, a.orphan) for a in d.arrows] == [(False, False), (True, False), (False, True)]
    out = render(Run("x", hosts=[Host("A", "198.18.0.1"), Host("B", "198.18.1.1")], events=ev), "text")
    assert " dup " in out and out.count("-->|") + out.count("|<--") == 3


def test_text_diagram_shows_states_timers_drops_gap_and_checks() -> None:
    out = render(close_run(), "text")
    assert isinstance(out, str)
    for needle in (
        "[SYN_SENT -> ESTABLISHED]",
        "[FIN_WAIT_2 -> TIME_WAIT]",
        "[LAST_ACK -> CLOSED]",
        "(timer rto)",
        "(timer time_wait)",
        "close()",
        "≈ 60 s",
        "✓ A enters TIME_WAIT",
    ):
        assert needle in out, needle
    lost_row = next(line for line in out.splitlines() if "lost" in line)
    assert "A seq=102 ack=2 len=0" in lost_row and "--x" in lost_row  # at 80 columns win= makes room
    assert max(len(line) for line in out.splitlines()) <= 80
    wide = render(close_run(), "text", width=None)
    assert isinstance(wide, str)
    lost_row = next(line for line in wide.splitlines() if "lost" in line)
    assert "A seq=102 ack=2 len=0 win=65535" in lost_row and "--x" in lost_row
    # one arrow row per segment, drawn in the right direction
    assert sum(1 for line in out.splitlines() if "->|" in line) == 5
    assert sum(1 for line in out.splitlines() if "|<-" in line) == 5
    assert "\x1b[" not in out
    assert max(cell_width(line) for line in out.splitlines()) <= 100


def test_failing_check_and_chinese_labels() -> None:
    out = render(close_run(fail=True), "text", lang="zh")
    assert "✗ TIME_WAIT 在最后一个 FIN 之后持续 60 秒" in out
    assert "检查 (1/2)" in out and "说明:" in out and "A 先关闭" in out
    assert max(cell_width(line) for line in out.splitlines()) <= 100


def test_color_only_when_asked() -> None:
    out = render(close_run(), "text", color=True)
    assert "\x1b[31m" in out  # the lost arrow is red
    plain = __import__("re").sub(r"\x1b\[[0-9;]*m", "", out)
    assert plain == render(close_run(), "text")


def test_three_hosts_get_three_lanes() -> None:
    base = close_run()
    extra = Event(0.4, "R", "note", text="NAT entry expires")
    run = Run("x", hosts=base.hosts + [Host("R", "198.18.0.254", "router")], events=base.events + [extra])
    out = render(run, "text", width=None)  # --wide: lanes side by side
    assert isinstance(out, str)
    header = next(line for line in out.splitlines() if "A 198.18.0.1" in line)
    assert "A 198.18.0.1" in header and "B 198.18.1.1" in header and "R 198.18.0.254" in header
    assert "NAT entry expires" in out
    narrow = render(run, "text")  # three lanes do not fit 80 columns: one line per event
    assert isinstance(narrow, str)
    assert "R 198.18.0.254 (router)" in narrow and max(len(line) for line in narrow.splitlines()) <= 80


def test_several_connections_on_one_host_are_labelled() -> None:
    run = close_run()
    run.events = [
        dataclasses.replace(e, conn=CONN_A) if e.kind == "state" and e.host == "A" else e for e in run.events
    ]
    run.events.append(
        Event(61.0, "A", "state", from_state="CLOSED", to_state="SYN_SENT", conn="A:40001>B:80")
    )
    assert f"{CONN_A} [CLOSED -> SYN_SENT]" in render(run, "text")


def test_series_runs_print_sparklines_and_a_table() -> None:
    out = render(series_run(), "text")
    assert "TIME_WAIT" in out and "max 600000 at t=60" in out
    assert "█" in out and "▁" in out
    assert sparkline([0, 1, 2, 3]) == "▁▃▆█"
    assert sparkline([5, 5]) == "▅▅"


def test_unknown_format_or_language_is_a_usage_error() -> None:
    assert FORMATS == ("text", "json", "lines", "mermaid", "svg", "html", "pcap")
    with pytest.raises(UsageError, match="valid: text, json"):
        render(close_run(), "png")
    with pytest.raises(UsageError, match="valid: en, zh"):
        render(close_run(), "text", lang="fr")


def test_json_is_the_schema() -> None:
    out = render(close_run(), "json")
    assert isinstance(out, str)
    assert Run.from_json(out).to_dict() == close_run().to_dict()


def test_many_hosts_fall_back_to_one_line_per_event() -> None:
    hosts = [Host(f"H{i}", f"198.18.{i}.1") for i in range(6)]
    ev = [Event(0.0, "H3", "state", from_state="CLOSED", to_state="LISTEN")]
    for i in range(1, 6):
        s = SegmentInfo("198.18.0.1", f"198.18.{i}.1", 40000 + i, 80, 100, 0, "S", 0, 65535)
        ev += [Event(i * 0.01, "H0", "send", segment=s), Event(i * 0.01 + 0.005, f"H{i}", "recv", segment=s)]
    ev.append(Event(5.0, "H0", "drop", segment=s, reason="loss"))
    out = render(Run("many", hosts=hosts, events=ev), "text")
    assert isinstance(out, str)
    lines = out.splitlines()
    assert "    0.010  H0 -> H1  S seq=0 len=0 win=65535  arr 0.015" in lines
    assert "    0.000  H3    [CLOSED -> LISTEN]" in lines
    assert any("≈ 5" in line for line in lines)
    assert "    5.000  H0 -> H5  S seq=0 len=0 win=65535  x lost (random loss)" in lines
    assert max(cell_width(line) for line in lines) <= 100


def test_segments_rewritten_by_a_nat_still_pair() -> None:
    sent = SegmentInfo("198.18.0.1", "198.18.1.1", 40000, 80, 100, 0, "S", 0, 65535)
    natted = SegmentInfo("198.18.1.254", "198.18.1.1", 61000, 80, 100, 0, "S", 0, 65535)
    ev = [Event(0.0, "A", "send", segment=sent), Event(0.01, "B", "recv", segment=natted)]
    d = build(Run("nat", hosts=[Host("A", "198.18.0.1"), Host("B", "198.18.1.1")], events=ev))
    assert len(d.arrows) == 1 and d.arrows[0].t1 == 0.01 and not d.arrows[0].orphan


def test_empty_and_hostless_and_unsorted_runs_render() -> None:
    empty = Run("empty")
    for fmt in ("text", "mermaid", "svg", "html", "pcap", "json"):
        assert render(empty, fmt)
    assert "(no events recorded)" in str(render(empty, "text"))
    run = close_run()
    run.hosts = []
    run.events = run.events[-2:] + run.events[:-2]  # the 60.52 s timer logged first
    d = build(run)
    assert [lane.name for lane in d.lanes] == ["A", "B"]  # lanes from the events, in time order
    assert [it.t for it in d.items] == sorted(it.t for it in d.items)
    assert len(d.arrows) == 11 and sum(a.lost for a in d.arrows) == 1


def test_a_note_without_host_spans_the_lanes() -> None:
    run = close_run()
    run.events.insert(
        20, Event(run.events[20].t, "", "note", text="... 5100 events of the bulk transfer ...")
    )
    d = build(run)
    assert len(d.lanes) == 2
    out = str(render(run, "text"))
    row = next(line for line in out.splitlines() if "5100 events" in line)
    assert row.startswith(" " * 12 + "|") and row.rstrip().endswith("|")
    assert "Note over A,B: ... 5100 events" in str(render(run, "mermaid"))
    assert 'fill="#fff8dc"' in str(render(run, "svg"))


def test_a_dropped_segment_delivered_later_is_one_long_arrow() -> None:
    s = seg("A", "PA", J + 1, K + 1, 10)
    ev = [
        Event(0.0, "A", "send", segment=s),
        Event(0.0, "A", "drop", segment=s, reason="held"),
        Event(3.0, "B", "recv", segment=s),
    ]
    d = build(Run("held", hosts=[Host("A", "198.18.0.1"), Host("B", "198.18.1.1")], events=ev))
    (a,) = d.arrows
    assert (a.lost, a.t0, a.t1, a.reason) == (False, 0.0, 3.0, "held back by the delay box")

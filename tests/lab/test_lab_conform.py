"""The conformance diff on synthetic Runs (no kernel needed)."""

from __future__ import annotations

from tcpwise.events import Event, Host, Run, SegmentInfo
from tcpwise.lab.conform import ConformResult, compare, format_table, sequences


def _seg(flags: str, seq: int = 0, win: int = 65535) -> SegmentInfo:
    return SegmentInfo("198.18.0.1", "198.18.1.1", 40000, 80, seq, 0, flags, 0, win)


def _run(
    world: str, a_states: list[tuple[float, str]], a_flags: list[str], isn: int = 1000, win: int = 65535
) -> Run:
    ev: list[Event] = []
    prev = "CLOSED"
    for t, st in a_states:
        ev.append(Event(t=t, host="A", kind="state", from_state=prev, to_state=st, conn="A:40000>B:80"))
        prev = st
    for i, f in enumerate(a_flags):
        ev.append(Event(t=0.1 * i, host="A", kind="send", segment=_seg(f, isn + i, win)))
    ev.sort(key=lambda e: e.t)
    return Run(scenario="x", world=world, hosts=[Host("A", "198.18.0.1"), Host("B", "198.18.1.1")], events=ev)


CLOSE = [
    (0.1, "SYN_SENT"),
    (0.2, "ESTABLISHED"),
    (0.5, "FIN_WAIT_1"),
    (0.6, "FIN_WAIT_2"),
    (0.7, "TIME_WAIT"),
]


def test_identical_stories_match_despite_isn_and_window() -> None:
    sim = _run("sim", CLOSE, ["S", "A", "FA", "A"], isn=1, win=100)
    lab = _run("lab", CLOSE, ["S", "A", "FA", "A"], isn=999_999, win=64240)
    assert compare(sim, lab) == []


def test_missing_state_is_reported_with_position() -> None:
    sim = _run("sim", CLOSE, ["S", "A", "FA", "A"])
    lab = _run("lab", [s for s in CLOSE if s[1] != "FIN_WAIT_2"], ["S", "A", "FA", "A"])
    (d,) = compare(sim, lab)
    assert d.host == "A" and d.what == "states"
    assert d.ops == ["at 3: only the model has FIN_WAIT_2"]


def test_flag_difference_is_reported() -> None:
    sim = _run("sim", CLOSE, ["S", "A", "FA", "A"])
    lab = _run("lab", CLOSE, ["S", "A", "FA", "FA", "A"])
    (d,) = compare(sim, lab)
    assert d.what == "flags" and d.ops == ["at 3: only the kernel has FA"]
    lab2 = _run("lab", CLOSE, ["S", "A", "RA"])
    (d2,) = compare(sim, lab2)
    assert d2.ops[0].startswith("at 2: model FA A / kernel RA")


def test_transient_states_are_ignored_in_both_worlds() -> None:
    # FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT within one segment's processing: the FIN_WAIT_2 lasts 0 s.
    sim = _run(
        "sim",
        [
            (0.1, "SYN_SENT"),
            (0.2, "ESTABLISHED"),
            (0.5, "FIN_WAIT_1"),
            (0.6, "FIN_WAIT_2"),
            (0.6, "TIME_WAIT"),
        ],
        [],
    )
    lab = _run(
        "lab", [(0.1, "SYN_SENT"), (0.2, "ESTABLISHED"), (0.5, "FIN_WAIT_1"), (0.602, "TIME_WAIT")], []
    )
    assert sequences(sim, "A")[0] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "TIME_WAIT"]
    assert compare(sim, lab) == []


def test_horizon_cuts_both_runs() -> None:
    sim = _run("sim", CLOSE + [(60.7, "CLOSED")], ["S"])
    lab = _run("lab", CLOSE, ["S"])
    assert compare(sim, lab) != []
    assert compare(sim, lab, horizon=8.0) == []


def test_table_and_json_shape() -> None:
    sim = _run("sim", CLOSE, ["S"])
    lab = _run("lab", CLOSE, ["S", "R"])
    r = ConformResult("close", False, compare(sim, lab), 8.0, deviation="kernel says so")
    d = r.to_dict()
    assert d["match"] is False and d["diff"][0]["what"] == "flags" and d["deviation"] == "kernel says so"
    plain = ConformResult("half-close", False, compare(sim, lab), 8.0)
    table = format_table([r, plain, ConformResult("handshake", True, [], 8.0)])
    assert "documented Linux deviation: kernel says so" in table
    assert "half-close               NO" in table and "only the kernel has R" in table
    assert "1/3 scenarios match the model, 1 differ by a documented Linux deviation" in table

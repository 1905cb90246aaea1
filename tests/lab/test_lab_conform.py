"""The conformance diff on synthetic Runs (no kernel needed)."""

from __future__ import annotations

import pytest

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
    r = ConformResult("close", False, compare(sim, lab), 8.0, deviation="kernel says so", reason="differs")
    d = r.to_dict()
    assert set(d) >= {"id", "match", "level", "reason", "diff"}  # the --json contract
    assert d["id"] == "close" and d["match"] is False and d["level"] == "segment" and d["diff"] is not None
    assert d["deviation"] == "kernel says so"
    ok = ConformResult("handshake", True, [], 8.0).to_dict()
    assert ok["match"] is True and ok["diff"] is None
    none = ConformResult("old-duplicate", False, [], 0.0, level="none", reason="cannot").to_dict()
    assert none["level"] == "none" and none["reason"] == "cannot"
    plain = ConformResult("half-close", False, compare(sim, lab), 8.0, reason="A flags differ")
    table = format_table([r, plain, ConformResult("handshake", True, [], 8.0)])
    assert all(len(line) <= 80 for line in table.splitlines())
    assert "half-close               NO" in table and "close                    dev" in table
    assert "1/3 scenarios conform" in table and "1 differ by a documented Linux deviation" in table


# --- segment-level normalisation and diff (tcpwise.lab.segdiff) ----------------------------------------------------
def _seg2(
    src: str, flags: str, seq: int, ack: int, n: int = 0, win: int = 100, **opts: object
) -> SegmentInfo:
    a, b = ("198.18.0.1", "198.18.1.1") if src == "A" else ("198.18.1.1", "198.18.0.1")
    pa, pb = (40000, 80) if src == "A" else (80, 40000)
    return SegmentInfo(a, b, pa, pb, seq % 2**32, ack % 2**32, flags, n, win, opts=dict(opts) or None)


def _conv(
    world: str, isn_a: int, isn_b: int, *, ws: int = 7, ack_bug: int = 0, ecr_stuck: bool = False
) -> Run:
    """A handshake, 100 bytes A->B and B's ACK; timestamps on both sides."""
    segs = [
        (0.00, "A", _seg2("A", "S", isn_a, 0, win=64240, mss=1460, ws=ws, sackok=True, ts=[10, 0])),
        (0.05, "B", _seg2("B", "SA", isn_b, isn_a + 1, win=65160, mss=1460, ws=ws, sackok=True, ts=[50, 10])),
        (0.10, "A", _seg2("A", "A", isn_a + 1, isn_b + 1, win=502, ts=[110, 50])),
        (0.50, "A", _seg2("A", "PA", isn_a + 1, isn_b + 1, n=100, win=502, ts=[510, 50])),
        (
            0.55,
            "B",
            _seg2("B", "A", isn_b + 1, isn_a + 101 + ack_bug, win=509, ts=[550, 10 if ecr_stuck else 510]),
        ),
    ]
    ev: list[Event] = []
    for t, host, seg in segs:
        ev.append(Event(t=t, host=host, kind="send", segment=seg))
        ev.append(Event(t=t + 0.05, host="B" if host == "A" else "A", kind="recv", segment=seg))
    ev.sort(key=lambda e: e.t)
    return Run(scenario="x", world=world, hosts=[Host("A", "198.18.0.1"), Host("B", "198.18.1.1")], events=ev)


def test_normalise_relative_numbers_scaled_windows_and_echoes() -> None:
    from tcpwise.lab.segdiff import normalise

    segs = normalise(_conv("sim", 1000, 7000))
    a, b = segs[("A", 0)], segs[("B", 0)]
    assert [s.seq for s in a] == [0, 1, 1] and a[2].ack == 1 and b[1].ack == 101
    assert a[0].win == 64240 and a[1].win == 502 << 7  # a SYN's window is never scaled
    assert a[0].opts == ("mss", "ws", "sackok", "ts") and a[1].opts == ("ts",)
    assert a[0].echo == "-" and b[1].echo == "#2"  # B's ACK echoes A's data segment (A's third)


def test_isns_windows_and_ports_do_not_count_but_an_ack_does() -> None:
    from tcpwise.lab.segdiff import first_segment_diff, normalise

    model = normalise(_conv("sim", 1000, 7000))
    assert first_segment_diff(model, normalise(_conv("lab", 55555, 123456))) is None
    d = first_segment_diff(model, normalise(_conv("lab", 55555, 123456, ack_bug=1)))
    assert d is not None and d.host == "B" and d.index == 1 and d.what == ["ack"]
    assert "ack" in d.describe()[0] and d.to_dict()["kernel"]["ack"] == 102


def test_a_timestamp_echo_that_never_updates_is_caught() -> None:
    from tcpwise.lab.segdiff import first_segment_diff, normalise

    d = first_segment_diff(normalise(_conv("sim", 1, 2, ecr_stuck=True)), normalise(_conv("lab", 3, 4)))
    assert d is not None and d.what == ["echo"]


def test_missing_window_scale_is_caught_and_ignore_is_honoured() -> None:
    from tcpwise.lab.segdiff import first_segment_diff, normalise

    d = first_segment_diff(normalise(_conv("sim", 1, 2, ws=0)), normalise(_conv("lab", 3, 4)))
    assert d is not None and d.index == 0 and "win" not in d.what and d.what  # the SYN's options differ first
    d2 = first_segment_diff(normalise(_conv("sim", 1, 2)), normalise(_conv("lab", 3, 4, ack_bug=1)), ("ack",))
    assert d2 is None


def test_timing_tolerance_is_stated() -> None:
    from tcpwise.lab.segdiff import timing_tolerance

    assert timing_tolerance(0.2) == pytest.approx(0.051)  # 13 % + 25 ms
    assert timing_tolerance(60.0) == pytest.approx(7.825)


def test_every_catalogue_scenario_has_a_lab_plan_or_a_reason() -> None:
    from tcpwise.lab.playbook import plan_for
    from tcpwise.scenarios import catalogue, parse_overrides

    for sc in catalogue():
        plan = plan_for(sc.id)
        if plan.level == "none":
            assert plan.reason, sc.id
            continue
        assert sc.build is not None and sc.lab, sc.id
        params = sc.resolve(parse_overrides(sc, plan.overrides))
        script = sc.script(params)  # the lab-scale script builds
        assert 2 <= len(script.hosts) <= 3 and script.steps, sc.id


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_non_finite_or_negative_set_is_refused_before_anything_runs(value: str) -> None:
    from tcpwise.errors import UsageError
    from tcpwise.lab.conform import _params
    from tcpwise.scenarios import get_scenario

    with pytest.raises(UsageError, match="time_wait"):
        _params(get_scenario("close"), {"time_wait": value})


def test_unbounded_script_is_refused() -> None:
    from tcpwise.errors import UsageError
    from tcpwise.lab.executor import validate_script
    from tcpwise.script import Connect, HostSpec, Listen, Script

    hosts = (HostSpec("A", "198.18.0.1"), HostSpec("B", "198.18.1.1"))
    steps = (Listen(0.0, "B"), Connect(0.0, "A", "B"))
    validate_script(Script(hosts, steps, duration=10.0))
    for bad in (float("nan"), float("inf"), 1e9):
        with pytest.raises(UsageError, match="duration"):
            validate_script(Script(hosts, steps, duration=bad))
    with pytest.raises(UsageError, match="keepalive_probes"):
        validate_script(Script((HostSpec("A", "a", config={"keepalive_probes": 1000}), hosts[1]), steps))

"""timewait-pileup: the checks hold for the default and documented variants; the flow model agrees with the
packet model it is calibrated from; bad parameters are usage errors."""

from __future__ import annotations

import pytest

from tcpwise.errors import UsageError
from tcpwise.scenarios import run_scenario
from tcpwise.scenarios.timewait import calibrate, packet_pileup
from tcpwise.sim.fleet import Lifecycle, simulate_flow


def _ok(run):  # noqa: ANN001, ANN202
    assert run.ok, [(c.claim, c.detail) for c in run.checks if not c.ok]


def test_default_flow_run_all_checks_hold() -> None:
    run = run_scenario("timewait-pileup")
    _ok(run)
    v = run.summary["values"]
    assert v["model"] == "flow" and v["time_wait"] == 60.0
    assert run.series is not None and len(run.series["t"]) == 90
    assert max(run.series["TIME_WAIT"]) == 28232  # the port range is full
    assert len(run.events) < 200  # one calibration lifecycle, not 90 000


def test_scale_run_is_a_time_series_not_an_event_log() -> None:
    run = run_scenario("timewait-pileup", overrides={"rate": "10000", "duration": "120"})
    _ok(run)
    v = run.summary["values"]
    assert v["attempts"] == 1_200_000
    assert v["succeeded"] + v["failed"] == 1_200_000
    assert v["first_failure"] == pytest.approx(28232 / 10000, abs=0.002)
    assert len(run.series["t"]) == 120


@pytest.mark.parametrize(
    "overrides",
    [
        {"rate": "100", "duration": "4"},  # packet model, below the limit
        {"fin_timeout": "30"},  # the correction: TIME_WAIT still 60 s
        {"timestamps": "0"},
        {"nat": "1"},  # tw_recycle behind NAT
    ],
)
def test_variants_hold(overrides: dict[str, str]) -> None:
    _ok(run_scenario("timewait-pileup", overrides=overrides))


def test_fin_timeout_does_not_change_time_wait() -> None:
    run = run_scenario("timewait-pileup", overrides={"fin_timeout": "30", "rate": "100", "duration": "5"})
    v = run.summary["values"]
    assert v["fin_wait_2"] == pytest.approx(30.0)
    assert v["time_wait"] == pytest.approx(60.0)


def test_flow_model_matches_packet_model_through_exhaustion() -> None:
    """The two models, same parameters: identical TIME_WAIT, ports and failure series (small port range so the
    packet model reaches exhaustion quickly)."""
    p = {
        "rate": 20.0,
        "duration": 15.0,
        "port_range": "40000-40199",
        "delay": 0.05,
        "tw_reuse": 2,
        "timestamps": True,
        "fin_timeout": 60.0,
        "model": "packet",
        "nat": False,
        "nat_clients": 3,
    }
    packet, sim = packet_pileup(p)
    lc = calibrate(p).lc
    flow = simulate_flow(20.0, 15.0, 200, lc)
    assert packet.failed == flow.failed == 100
    assert packet.first_failure == flow.first_failure == pytest.approx(10.0)
    for key in ("TIME_WAIT", "ports_in_use", "failed_connects", "connects", "server_conns"):
        assert packet.series[key] == flow.series[key], key
    assert sim.counters["segments"] >= 7 * (packet.succeeded - 5)  # every lifecycle went over the wire


def test_flow_model_matches_packet_model_with_tw_reuse() -> None:
    """With tcp_tw_reuse=1 the packet model's allocator takes TIME_WAIT ports over; the flow model, fed the
    measured reuse delay, gives the same TIME_WAIT and port series."""
    p = {
        "rate": 40.0,
        "duration": 12.0,
        "port_range": "40000-40199",
        "delay": 0.05,
        "tw_reuse": 1,
        "timestamps": True,
        "fin_timeout": 60.0,
    }
    packet, _ = packet_pileup(p)
    flow = simulate_flow(40.0, 12.0, 200, calibrate(p).lc)
    assert packet.failed == flow.failed == 0
    for key in ("TIME_WAIT", "ports_in_use", "connects", "server_conns"):
        assert packet.series[key] == flow.series[key], key
    assert max(flow.series["ports_in_use"]) == 200  # every port used, TIME_WAIT taken over instead of failing


def test_tw_reuse_needs_timestamps_on_the_packet_model() -> None:
    p = {
        "rate": 1.0,
        "duration": 1.0,
        "port_range": "32768-60999",
        "delay": 0.05,
        "tw_reuse": 1,
        "timestamps": True,
        "fin_timeout": 60.0,
    }
    assert calibrate(p).lc.reuse_after == pytest.approx(1.0, abs=0.11)
    assert calibrate({**p, "timestamps": False}).lc.reuse_after is None
    assert calibrate({**p, "tw_reuse": 2}).lc.reuse_after is None  # 2 = loopback only; 198.18.x is not


def test_flow_model_port_limit_is_exact() -> None:
    lc = Lifecycle(0.1, 0.2, 0.3, 60.0, 60.3, None, 7, 0)
    res = simulate_flow(1000, 10, 5000, lc)
    assert res.succeeded == 5000 and res.failed == 5000 and res.first_failure == pytest.approx(5.0)
    assert max(res.series["ports_in_use"]) == 5000


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": "0"},
        {"rate": "-5"},
        {"duration": "1e9"},
        {"model": "quantum"},
        {"port_range": "9-1"},
        {"port_range": "abc"},
        {"tw_reuse": "3"},
        {"rate": "5000", "model": "packet"},
        {"delay": "1"},
    ],
)
def test_bad_parameters_are_usage_errors(bad: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        run_scenario("timewait-pileup", overrides=bad)

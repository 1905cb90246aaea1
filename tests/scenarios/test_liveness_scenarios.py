"""The liveness scenarios: measured detection/give-up times equal the Linux arithmetic, variants flip the
outcome, and bad parameters are usage errors."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tcpwise.endpoint.rto import linux_retrans_timeout
from tcpwise.errors import UsageError
from tcpwise.scenarios import get_scenario, run_scenario
from tcpwise.scenarios import query as q


def _failed(run):  # type: ignore[no-untyped-def]
    return [(c.claim, c.detail) for c in run.checks if not c.ok]


def _err_time(run, host: str, errno: str) -> float:  # type: ignore[no-untyped-def]
    return next(e.t for e in q.errors(run, host, errno))


def test_half_open_crash_rst_only_when_a_sends() -> None:
    run = run_scenario("half-open-crash")
    assert run.ok, _failed(run)
    assert _err_time(run, "A", "ECONNRESET") > 10000.0


@pytest.mark.parametrize(
    "knobs,expect",
    [({}, 7875.0), ({"keepalive_time": "60", "keepalive_intvl": "10", "keepalive_probes": "3"}, 90.0)],
)
def test_half_open_crash_keepalive_detection_time(knobs: dict[str, str], expect: float) -> None:
    run = run_scenario("half-open-crash", overrides={"keepalive": "1", **knobs})
    assert run.ok, _failed(run)
    last_rx = max(e.t for e in q.recvs(run, "A") if e.t < 10.0)
    assert _err_time(run, "A", "ETIMEDOUT") - last_rx == pytest.approx(expect, abs=1e-6)


def test_half_open_partition_retries2_and_backoff() -> None:
    run = run_scenario("half-open-partition")
    assert run.ok, _failed(run)
    budget = linux_retrans_timeout(15, 0.2, 120.0)
    assert budget == pytest.approx(924.6)
    data = [e.t for e in q.sends(run, "A") if e.segment.len > 0]
    gave_up = _err_time(run, "A", "ETIMEDOUT") - data[0]
    assert budget <= gave_up < budget + 2.0  # first expiry past the budget with a ~200 ms first RTO
    gaps = [b - a for a, b in pairwise(data)]
    # One tail loss probe one RTO after the data (Linux, RFC 8985), then the RTO doubles.
    assert gaps[1] == pytest.approx(gaps[0]) and gaps[2] == pytest.approx(2 * gaps[1])
    assert max(gaps) == pytest.approx(120.0)


def test_half_open_partition_user_timeout() -> None:
    run = run_scenario("half-open-partition", overrides={"user_timeout": "30"})
    assert run.ok, _failed(run)
    # Linux: 30 s after the first RTO retransmission (data, tail loss probe, RTO: the third transmission).
    first_rto = [e.t for e in q.sends(run, "A") if e.segment.len > 0][2]
    assert _err_time(run, "A", "ETIMEDOUT") - first_rto == pytest.approx(30.0, abs=1e-6)


def test_heartbeat_asymmetry_epipe_on_the_following_write() -> None:
    run = run_scenario("heartbeat-asymmetry")
    assert run.ok, _failed(run)
    writes = run.summary["values"]["writes"]
    assert [w[1] for w in writes[:2]] == [8, 8] and writes[2][1] is None and writes[2][2] == "EPIPE"


def test_heartbeat_shorter_than_timeout_keeps_it_alive() -> None:
    run = run_scenario("heartbeat-asymmetry", overrides={"interval": "5"})
    assert run.ok, _failed(run)
    assert run.summary["values"]["server_closed"] == []


def test_heartbeat_checks_can_fail() -> None:
    # Judge the failing run by the healthy variant's claims: they must not hold.
    run = run_scenario("heartbeat-asymmetry")
    checks = get_scenario("heartbeat-asymmetry").check(run, {**run.params, "interval": 5.0})
    assert not all(c.ok for c in checks)


@pytest.mark.parametrize("death", ["crash", "partition"])
def test_keepalive_tuned_vs_default(death: str) -> None:
    run = run_scenario("keepalive", overrides={"death": death})
    assert run.ok, _failed(run)
    assert run.summary["values"]["default_detect"] == pytest.approx(7875.0, abs=1e-6)
    # Probes carry no data and SEG.SEQ = SND.NXT - 1; A's RST closes the story (tcp_keepalive_timer).
    assert q.sends(run, "A")[-1].segment.flags.startswith("R")


def test_middlebox_idle_timeout_black_hole() -> None:
    run = run_scenario("middlebox-idle-timeout")
    assert run.ok, _failed(run)
    v = run.summary["values"]
    assert v["expired"] and v["expired"][0] == pytest.approx(350.65) and v["dropped"] >= 30


@pytest.mark.parametrize("ka_time,survives", [("300", True), ("7200", False)])
def test_middlebox_keepalive_below_timeout(ka_time: str, survives: bool) -> None:
    run = run_scenario("middlebox-idle-timeout", overrides={"keepalive": "1", "keepalive_time": ka_time})
    assert run.ok, _failed(run)
    assert (not run.summary["values"]["expired"]) is survives


def test_rst_on_timeout_discards_unsent() -> None:
    run = run_scenario("rst-on-timeout")
    assert run.ok, _failed(run)
    v = run.summary["values"]
    assert v["client_read"] + v["queued_at_close"] == v["written"] and v["queued_at_close"] > 0
    assert "TIME_WAIT" not in q.state_path(run, "B")


def test_rst_on_timeout_graceful_variant_leaves_time_wait() -> None:
    run = run_scenario("rst-on-timeout", overrides={"close": "fin"})
    assert run.ok, _failed(run)
    assert q.time_in_state(run, "B", "TIME_WAIT") == pytest.approx(60.0)
    assert run.summary["values"]["client_read"] == run.summary["values"]["written"]


@pytest.mark.parametrize(
    "sid,bad",
    [
        ("half-open-crash", {"reboot_at": "5"}),
        ("half-open-crash", {"keepalive_probes": "0"}),
        ("half-open-partition", {"user_timeout": "-1"}),
        ("heartbeat-asymmetry", {"interval": "0"}),
        ("keepalive", {"death": "meteor"}),
        ("middlebox-idle-timeout", {"idle_timeout": "0"}),
        ("rst-on-timeout", {"close": "maybe"}),
        ("rst-on-timeout", {"response": "1000"}),
    ],
)
def test_bad_parameters_are_usage_errors(sid: str, bad: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        run_scenario(sid, overrides=bad)


def test_middlebox_that_resets_gives_immediate_errors() -> None:
    run = run_scenario("middlebox-idle-timeout", overrides={"on_expired": "rst"})
    assert run.ok, _failed(run)
    assert _err_time(run, "A", "ECONNRESET") == pytest.approx(500.05)
    assert not q.errors(run, None, "ETIMEDOUT") and run.summary["values"]["box_resets"] == 2


def test_half_open_crash_keepalive_meets_a_rebooted_peer() -> None:
    # B is back before keepalive would give up: the next probe draws a RST (ECONNRESET, not ETIMEDOUT).
    run = run_scenario(
        "half-open-crash",
        overrides={"keepalive": "1", "keepalive_time": "60", "reboot_at": "100", "send_at": "200"},
    )
    assert run.ok, _failed(run)
    assert _err_time(run, "A", "ECONNRESET") == pytest.approx(135.75)
    assert not q.errors(run, "A", "ETIMEDOUT")


@pytest.mark.parametrize(
    "sid,bad",
    [
        ("keepalive", {"die_at": "1"}),
        ("middlebox-idle-timeout", {"send_at": "2"}),
        ("rst-on-timeout", {"send_timeout": "0.1"}),
    ],
)
def test_story_breaking_parameters_are_refused(sid: str, bad: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        run_scenario(sid, overrides=bad)

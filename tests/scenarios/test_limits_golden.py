"""Golden traces and variant checks of the connection-limit and TIME_WAIT scenarios (limits.py, timewait.py).

Every case runs once (module cache); the run must pass all its checks, match its golden JSON (regenerate with
``pytest tests/scenarios --update-golden`` and review the diff), and the tests below read its measured values.
"""

from __future__ import annotations

from functools import cache

import pytest

from golden import GOLDEN, check_golden, golden_name
from tcpwise.events import Run
from tcpwise.scenarios import run_scenario

CASES = [
    ("timewait-pileup", ()),
    ("timewait-pileup", (("nat", "1"),)),
    ("close-wait-leak", ()),
    ("client-leak", ()),
    ("syn-flood", ()),
    ("accept-queue-overflow", ()),
    ("accept-queue-overflow", (("abort_on_overflow", "1"),)),
    ("pool-dead-connections", ()),
]


@cache
def _run(sid: str, overrides: tuple[tuple[str, str], ...] = ()) -> Run:
    return run_scenario(sid, seed=1, overrides=dict(overrides))


@pytest.mark.parametrize(
    "sid,overrides", CASES, ids=[golden_name(s, o).removesuffix(".trace") for s, o in CASES]
)
def test_golden_trace(sid: str, overrides: tuple[tuple[str, str], ...], update_golden: bool) -> None:
    check_golden(_run(sid, overrides), golden_name(sid, overrides), update_golden)


def test_golden_files_stay_small() -> None:
    total = sum(
        (GOLDEN / golden_name(s, o)).stat().st_size for s, o in CASES if (GOLDEN / golden_name(s, o)).exists()
    )
    assert total < 600_000, f"golden files of the limits group take {total} bytes"


# -- close-wait-leak ------------------------------------------------------------------------------------------
def test_close_wait_leak_counts() -> None:
    v = _run("close-wait-leak").summary["values"]
    assert v["peak_fds"] == 1024 and v["accepted"] == 1020  # 3 std fds + listener + 1020 sockets
    assert v["peak_accept_queue"] == 129  # backlog 128 + 1
    assert v["emfile"] > 0 and v["connect_timeouts"] > 0
    cw = _run("close-wait-leak").series["B.CLOSE_WAIT"]
    assert cw == sorted(cw) and cw[-1] >= 1020


def test_close_wait_leak_small_fd_limit() -> None:
    run = run_scenario("close-wait-leak", overrides={"fd_limit": "40", "backlog": "8", "extra": "30"})
    assert run.ok, [(c.claim, c.detail) for c in run.checks if not c.ok]
    assert run.summary["values"]["accepted"] == 36


# -- client-leak ----------------------------------------------------------------------------------------------
def test_client_leak_limit_protects_other_client() -> None:
    v = _run("client-leak").summary["values"]
    assert v["unlimited"]["C_completed"] == 0 and v["limited"]["C_completed"] == 3
    assert v["limited"]["server_est_from_A"] == 10


# -- syn-flood -----------------------------------------------------------------------------------------------
def test_syn_flood_both_cookie_settings() -> None:
    v = _run("syn-flood").summary["values"]
    # Linux (measured on 6.18): backlog 64 -> 65 SYN_RCVD entries, with or without cookies.
    assert v["cookies_off"]["peak_syn_rcvd"] == 65 and v["cookies_off"]["completed"] == 0
    assert v["cookies_on"]["completed"] == 1 and v["cookies_on"]["stats"]["SyncookiesSent"] > 0
    assert v["cookies_on"]["syn_queue_limit"] == 65


def test_syn_flood_quarter_rule_without_cookies() -> None:
    """With a backlog above tcp_max_syn_backlog, no cookies: 128 - 32 + 1 = 97 entries (Linux 6.18 measured)."""
    run = run_scenario(
        "syn-flood", overrides={"backlog": "256", "flood_duration": "2", "client_at": "1", "timeout": "1"}
    )
    assert run.summary["values"]["cookies_off"]["peak_syn_rcvd"] == 97


def test_syn_flood_main_run_with_cookies_is_the_same_story() -> None:
    run = run_scenario(
        "syn-flood", overrides={"syncookies": "1", "flood_duration": "3", "timeout": "2", "client_at": "1"}
    )
    assert run.ok, [(c.claim, c.detail) for c in run.checks if not c.ok]
    assert max(run.series["A.completed"]) == 1  # the main series is now the cookie run


# -- accept-queue-overflow ------------------------------------------------------------------------------------
def test_accept_queue_ghost_connection() -> None:
    v = _run("accept-queue-overflow").summary["values"]
    assert (
        v["ghost_server_established"] - v["ghost_client_established"] > 5.0
    )  # seconds of one-sided ESTABLISHED
    assert v["stats"]["ListenOverflows"] > 0 and v["resets"] == 0
    v1 = _run("accept-queue-overflow", (("abort_on_overflow", "1"),)).summary["values"]
    assert v1["resets"] >= 1


# -- pool-dead-connections ------------------------------------------------------------------------------------
def test_pool_naive_vs_validating() -> None:
    v = _run("pool-dead-connections").summary["values"]
    assert v["naive"]["errors"] > 0 and v["validating"]["errors"] == 0
    assert v["naive"]["held_sockets"] > v["validating"]["held_sockets"]
    assert v["naive"]["close_wait_held"] > 0 == v["validating"]["close_wait_held"]


# -- bad parameters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sid,bad",
    [
        ("close-wait-leak", {"fd_limit": "2"}),
        ("client-leak", {"max_conns": "0"}),
        ("syn-flood", {"syncookies": "7"}),
        ("accept-queue-overflow", {"backlog": "0"}),
        ("pool-dead-connections", {"bursts": "a,b"}),
        ("pool-dead-connections", {"bursts": ""}),
        ("pool-dead-connections", {"max_idle": "-1"}),
        ("client-leak", {"delay": "-1"}),
    ],
)
def test_bad_parameters_are_usage_errors(sid: str, bad: dict[str, str]) -> None:
    from tcpwise.errors import UsageError

    with pytest.raises(UsageError):
        run_scenario(sid, overrides=bad)

"""Kernel demonstrations in quick mode (real kernel, root): each demo's claim must hold, with its numbers."""

from __future__ import annotations

import os

import pytest

from tcpwise.lab import demos

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def test_time_wait_is_60s_whatever_fin_timeout_says() -> None:
    r = demos.run_demo("time-wait", quick=True)
    assert r.ok, r.text()
    assert 58 <= r.facts["time_wait_timer_s"] <= 60.5  # TCP_TIMEWAIT_LEN, though tcp_fin_timeout = 5
    assert 3.5 <= r.facts["fin_wait_2_timer_s"] <= 5.5  # tcp_fin_timeout governs the orphaned FIN_WAIT_2


def test_port_exhaustion_and_tw_reuse() -> None:
    r = demos.run_demo("port-exhaustion")
    assert r.ok, r.text()
    assert r.facts["connections_before_error"] == 8 and r.facts["error"] == "EADDRNOTAVAIL"
    assert r.facts["tw_reuse_1"] == "connected" and r.facts["tw_reuse_2_loopback_only"] == "EADDRNOTAVAIL"


def test_close_wait_leak_to_emfile() -> None:
    r = demos.run_demo("close-wait-leak")
    assert r.ok, r.text()
    assert r.facts["accept_emfile"] and r.facts["first_failure"] == "timeout"


def test_keepalive_detection_time() -> None:
    r = demos.run_demo("keepalive", quick=True)
    assert r.ok, r.text()
    assert r.facts["error"] == "ETIMEDOUT" and r.facts["default_detection_s"] == 7200 + 75 * 9


def test_syn_flood_and_syncookies() -> None:
    r = demos.run_demo("syn-flood")
    assert r.ok, r.text()
    assert (
        r.facts["legit_without_syncookies"] == "timed out" and r.facts["legit_with_syncookies"] == "connected"
    )


def test_accept_queue_overflow() -> None:
    r = demos.run_demo("accept-queue-overflow")
    assert r.ok, r.text()
    assert r.facts["accept_queue"] == 3


def test_rst_on_linger() -> None:
    r = demos.run_demo("rst-on-linger")
    assert r.ok, r.text()


def test_unknown_demo_is_usage_error() -> None:
    from tcpwise.errors import UsageError

    with pytest.raises(UsageError, match="valid: time-wait"):
        demos.run_demo("nope")


def test_middlebox_idle_timeout_and_keepalive() -> None:
    r = demos.run_demo("middlebox-idle-timeout", quick=True)
    assert r.ok, r.text()
    assert r.facts["plain"].startswith("lost") and r.facts["with_keepalive_1s"] == "delivered"

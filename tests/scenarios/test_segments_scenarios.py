"""The segment-level stories (tcpwise.scenarios.segments): golden traces, and each claim turns red when the model
goes back to the RFC reading it replaced (a test must be able to fail)."""

from __future__ import annotations

import pytest

from golden import check_golden, golden_name
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.scenarios import run_scenario

CASES = [("window-scaling", {}), ("read-window-update", {}), ("ack-unsent-data", {}), ("lost-fin", {})]


@pytest.mark.parametrize(
    "sid,overrides", CASES, ids=[golden_name(s, o).removesuffix(".trace") for s, o in CASES]
)
def test_segments_golden(sid: str, overrides: dict[str, str], update_golden: bool) -> None:
    check_golden(run_scenario(sid, seed=1, overrides=overrides), golden_name(sid, overrides), update_golden)


def test_rfc_window_update_rule_turns_read_window_update_red(monkeypatch: pytest.MonkeyPatch) -> None:
    def rfc_rule(self: Endpoint) -> bool:  # RFC 9293 §3.8.6.2.2: update once the window opened by an MSS
        return bool(self._rcv_window() - self.rcv_adv >= self.eff_mss)

    monkeypatch.setattr(Endpoint, "_read_opens_window", rfc_rule)
    assert not run_scenario("read-window-update").ok


def test_no_loss_probe_turns_lost_fin_red(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Endpoint, "_tlp_allowed", lambda self: False)
    assert not run_scenario("lost-fin").ok


def test_unscaled_windows_turn_window_scaling_red(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcpwise.endpoint.config import EndpointConfig

    monkeypatch.setattr(EndpointConfig, "offered_wscale", property(lambda self: None))
    assert not run_scenario("window-scaling").ok


def test_silent_drop_turns_ack_unsent_data_red(monkeypatch: pytest.MonkeyPatch) -> None:
    orig = Endpoint._rcv_ack

    def silent(self: Endpoint, seg, now):  # type: ignore[no-untyped-def]
        if (seg.ack - self.snd_max) & 0xFFFFFFFF < 1 << 31 and seg.ack != self.snd_max:
            return False  # an older kernel's tcp_ack: discard, say nothing
        return orig(self, seg, now)

    monkeypatch.setattr(Endpoint, "_rcv_ack", silent)
    assert not run_scenario("ack-unsent-data").ok

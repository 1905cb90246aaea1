"""The checks can fail: for each group of the catalogue, one deliberate bug in the model that a check must catch.

A scenario's checks are its own claims about its own run, so they could pass for the wrong reason (a check
that reads the wrong event, or one that holds whatever the model does). Each test below breaks the model in one
specific, realistic way — the kind of bug a refactoring could introduce — and demands that the scenario's
checks go red, naming the claim that must fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tcpwise.endpoint import listener as listener_mod
from tcpwise.endpoint import stack as stack_mod
from tcpwise.endpoint import tcb as tcb_mod
from tcpwise.events import Run
from tcpwise.scenarios import run_scenario
from tcpwise.vocab import TimerName


def _failed_claims(run: Run) -> list[str]:
    return [c.claim for c in run.checks if not c.ok]


def _no_time_wait_restart(self: Any, now: float) -> None:
    """Bug: a retransmitted FIN in TIME_WAIT is ACKed but the 2*MSL timer is not restarted."""


def _time_wait_twice_as_long(orig: Callable[..., None]) -> Callable[..., None]:
    def enter(self: Any, now: float, trigger: Any) -> None:
        orig(self, now, trigger)
        at = self.timers.deadline(TimerName.TIME_WAIT)
        if at is not None:
            self.timers.arm(TimerName.TIME_WAIT, at + self.cfg.time_wait)

    return enter


def _keepalive_interval_doubled(orig: Callable[..., None]) -> Callable[..., None]:
    """Bug: keepalive probes waited twice the configured interval between probes."""

    def on_keepalive(self: Any, now: float) -> None:
        orig(self, now)
        at = self.timers.deadline(TimerName.KEEPALIVE)
        if at is not None and self.ka_probes > 0:
            self.timers.arm(TimerName.KEEPALIVE, at + self.cfg.keepalive_intvl)

    return on_keepalive


def _syn_queue_bigger(self: Any) -> bool:
    """Bug: the SYN queue holds ten more entries than Linux's backlog + 1."""
    return len(self.syn_queue) >= self.syn_queue_limit + 10


def _tw_reuse_without_timestamps(orig: Callable[..., bool]) -> Callable[..., bool]:
    """Bug: tcp_tw_reuse would take over a TIME_WAIT tuple whatever the timestamp rules say."""

    def reusable(self: Any, tw: Any, now: float, cfg: Any) -> bool:
        return bool(cfg.tw_reuse)

    return reusable


CASES: list[tuple[str, dict[str, str], Callable[[pytest.MonkeyPatch], None], str]] = [
    (
        "close",
        {},
        lambda mp: mp.setattr(
            tcb_mod.Endpoint, "_enter_time_wait", _time_wait_twice_as_long(tcb_mod.Endpoint._enter_time_wait)
        ),
        "TIME_WAIT lasts 60 s",
    ),
    (
        "lost-last-ack",
        {},
        lambda mp: mp.setattr(tcb_mod.Endpoint, "_restart_time_wait", _no_time_wait_restart),
        "restarts its TIME_WAIT timer",
    ),
    (
        "keepalive",
        {},
        # timers dispatch through the endpoint's handler table, so the bug goes there
        lambda mp: mp.setitem(
            tcb_mod._TIMER_HANDLERS,
            TimerName.KEEPALIVE,
            _keepalive_interval_doubled(tcb_mod.Endpoint._on_keepalive),
        ),
        "probes go unanswered",
    ),
    (
        "syn-flood",
        {},
        lambda mp: mp.setattr(listener_mod.Listener, "syn_queue_full", _syn_queue_bigger),
        "fill the SYN queue",
    ),
    (
        "timewait-pileup",
        {"tw_reuse": "1", "timestamps": "0", "model": "packet", "rate": "200", "duration": "5"},
        lambda mp: mp.setattr(
            stack_mod.TcpStack, "_tw_reusable", _tw_reuse_without_timestamps(stack_mod.TcpStack._tw_reusable)
        ),
        "without timestamps does nothing",
    ),
]


def test_every_mutation_case_passes_unmutated() -> None:
    for sid, overrides, _mutate, _claim in CASES:
        run = run_scenario(sid, overrides=overrides)
        assert run.ok, (sid, _failed_claims(run))


@pytest.mark.parametrize("sid,overrides,mutate,claim", CASES, ids=[c[0] for c in CASES])
def test_a_planted_model_bug_turns_a_check_red(
    sid: str,
    overrides: dict[str, str],
    mutate: Callable[[pytest.MonkeyPatch], None],
    claim: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mutate(monkeypatch)
    failed = _failed_claims(run_scenario(sid, overrides=overrides))
    assert failed, f"{sid}: the planted bug went unnoticed by every check"
    if claim:
        assert any(claim in c for c in failed), failed

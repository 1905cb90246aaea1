"""keepalive-race: the inverted ladder fails requests, the ladder's fix fails none of 10 000; checks can fail."""

from __future__ import annotations

import pytest

from tcpwise.events import Run
from tcpwise.scenarios import keepalive_race as kr
from tcpwise.scenarios import run_scenario


@pytest.fixture(scope="module")
def default_run() -> Run:
    return run_scenario("keepalive-race")


def test_default_run_holds(default_run: Run) -> None:
    assert default_run.ok, [(c.claim, c.detail) for c in default_run.checks if not c.ok]
    v = default_run.summary["values"]
    assert v["configured"]["requests"] == 10000 and v["configured"]["failed"] > 0
    assert v["fixed"]["requests"] == 10000 and v["fixed"]["failed"] == 0
    # a connection fails when its idle time (since the response) is within a round trip below the server's 5 s
    assert 5 - 2 * 0.05 - 1e-6 <= v["configured"]["failure_idle_min"]
    assert v["configured"]["failure_idle_max"] <= 5 + 1e-6


def test_the_diagram_shows_the_crossing(default_run: Run) -> None:
    texts = [e.text or "" for e in default_run.events if e.kind == "app"]
    assert any("502" in t for t in texts)
    assert any(
        e.kind == "send" and e.host == "B" and e.segment and "R" in e.segment.flags
        for e in default_run.events
    )
    assert len(default_run.events) < 200  # a window, not the 10k-request log


def test_correct_ladder_and_retry() -> None:
    ok = run_scenario("keepalive-race", overrides={"client_idle": "4", "requests": "500"})
    assert ok.ok and ok.summary["values"]["configured"]["failed"] == 0
    retried = run_scenario("keepalive-race", overrides={"retry": "1", "requests": "500"})
    c = retried.summary["values"]["configured"]
    assert retried.ok and c["failed"] == 0 and c["retried"] > 0


def test_margin_matches_the_ladder() -> None:
    from tcpwise.ladder.rules import margin_for

    for s in (0.5, 1, 5, 60, 350, 3600):
        assert kr.ladder_margin(s) == margin_for(s, None)


def test_bad_parameters() -> None:
    from tcpwise.errors import UsageError

    for bad in ({"server_idle": "0"}, {"requests": "0"}, {"fixed_idle": "9"}, {"jitter": "10"}):
        with pytest.raises(UsageError):
            run_scenario("keepalive-race", overrides=bad)


def test_a_fix_without_margin_turns_red(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: a 'fix' that sets the pool idle equal to the server's (no margin) still races."""
    monkeypatch.setattr(kr, "ladder_margin", lambda s: 0.0)
    run = run_scenario("keepalive-race", overrides={"requests": "2000"})
    assert not run.ok
    assert run.summary["values"]["fixed"]["failed"] > 0

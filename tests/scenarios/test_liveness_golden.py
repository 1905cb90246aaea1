"""Golden traces of the liveness scenarios: the event log against a checked-in file (same approach as
test_scenarios_golden.py; regenerate with ``pytest tests/scenarios --update-golden`` and read the diff)."""

from __future__ import annotations

import pytest

from golden import check_golden, golden_name
from tcpwise.scenarios import run_scenario

CASES = [
    ("half-open-crash", {}),
    ("half-open-partition", {}),
    ("half-open-partition", {"user_timeout": "30"}),
    ("heartbeat-asymmetry", {}),
    ("keepalive", {}),
    ("middlebox-idle-timeout", {}),
    ("middlebox-idle-timeout", {"keepalive": "1", "keepalive_time": "300"}),
    ("rst-on-timeout", {}),
]


@pytest.mark.parametrize(
    "sid,overrides", CASES, ids=[golden_name(s, o).removesuffix(".trace") for s, o in CASES]
)
def test_liveness_golden(sid: str, overrides: dict[str, str], update_golden: bool) -> None:
    check_golden(run_scenario(sid, seed=1, overrides=overrides), golden_name(sid, overrides), update_golden)

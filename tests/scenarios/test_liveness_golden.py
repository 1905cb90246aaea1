"""Golden traces of the liveness scenarios (see test_history_golden.py for the approach)."""

from __future__ import annotations

import pytest
from test_history_golden import check_golden, golden_name  # type: ignore[import-not-found]

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


@pytest.mark.parametrize("sid,overrides", CASES, ids=[golden_name(s, o)[:-5] for s, o in CASES])
def test_liveness_golden(sid: str, overrides: dict[str, str], update_golden: bool) -> None:
    check_golden(sid, overrides, update_golden)

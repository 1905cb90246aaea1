"""Golden traces of the history scenarios (why-three, old-duplicate): the event log against a checked-in file.

Same approach as test_scenarios_golden.py: regenerate with ``pytest tests/scenarios --update-golden`` and read the
diff before committing.
"""

from __future__ import annotations

import pytest

from golden import check_golden, golden_name
from tcpwise.scenarios import run_scenario

CASES = [
    ("why-three", {}),
    ("why-three", {"handshake": "2"}),
    ("why-three", {"client": "gone"}),
    ("old-duplicate", {}),
    ("old-duplicate", {"time_wait": "1"}),
]


@pytest.mark.parametrize(
    "sid,overrides", CASES, ids=[golden_name(s, o).removesuffix(".trace") for s, o in CASES]
)
def test_history_golden(sid: str, overrides: dict[str, str], update_golden: bool) -> None:
    check_golden(run_scenario(sid, seed=1, overrides=overrides), golden_name(sid, overrides), update_golden)

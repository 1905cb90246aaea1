"""Golden traces: the JSON event log of every foundation scenario (and variant) against a checked-in file.

Any change to the endpoint or simulator that changes what goes on the wire shows up here as a reviewable diff.
Regenerate with ``pytest tests/scenarios --update-golden`` and read the diff before committing.
"""

from __future__ import annotations

import pytest

from golden import check_golden, golden_name
from tcpwise.scenarios import run_scenario

CASES = [
    ("handshake", {}),
    ("simultaneous-open", {}),
    ("close", {}),
    ("close-three-segments", {}),
    ("half-close", {}),
    ("simultaneous-close", {}),
    ("lost-last-ack", {}),
    ("lost-last-ack", {"time_wait": "0"}),
    ("server-close", {}),
]


@pytest.mark.parametrize(
    "sid,overrides", CASES, ids=[golden_name(s, o).removesuffix(".trace") for s, o in CASES]
)
def test_golden_trace(sid: str, overrides: dict[str, str], update_golden: bool) -> None:
    check_golden(run_scenario(sid, seed=1, overrides=overrides), golden_name(sid, overrides), update_golden)

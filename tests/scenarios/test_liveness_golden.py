"""Golden traces of the liveness scenarios: the event log against a checked-in file (same approach as
test_scenarios_golden.py; regenerate with ``pytest tests/scenarios --update-golden`` and read the diff)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpwise.scenarios import run_scenario

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

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


def _name(sid: str, overrides: dict[str, str]) -> str:
    return sid + "".join(f"__{k}={v}" for k, v in sorted(overrides.items())) + ".json"


@pytest.mark.parametrize("sid,overrides", CASES, ids=[_name(s, o)[:-5] for s, o in CASES])
def test_liveness_golden(sid: str, overrides: dict[str, str], update_golden: bool) -> None:
    run = run_scenario(sid, seed=1, overrides=overrides)
    assert run.ok, [c.claim for c in run.checks if not c.ok]
    got = run.to_dict()
    path = GOLDEN / _name(sid, overrides)
    if update_golden or not path.exists():
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if not update_golden:
            pytest.fail(f"golden file {path.name} was missing and has been written: review and commit it")
        return
    want = json.loads(path.read_text(encoding="utf-8"))
    assert got["events"] == want["events"], f"event log of {sid} changed (rerun with --update-golden and review)"
    assert got == want

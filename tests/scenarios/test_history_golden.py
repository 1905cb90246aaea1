"""Golden traces of the history scenarios (why-three, old-duplicate): the event log against a checked-in file.

Same approach as test_scenarios_golden.py: regenerate with ``pytest tests/scenarios --update-golden`` and read the
diff before committing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpwise.scenarios import run_scenario

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

CASES = [
    ("why-three", {}),
    ("why-three", {"handshake": "2"}),
    ("why-three", {"client": "gone"}),
    ("old-duplicate", {}),
    ("old-duplicate", {"time_wait": "1"}),
]


def golden_name(sid: str, overrides: dict[str, str]) -> str:
    suffix = "".join(f"__{k}={v}" for k, v in sorted(overrides.items()))
    return f"{sid}{suffix}.json"


def check_golden(sid: str, overrides: dict[str, str], update: bool) -> None:
    run = run_scenario(sid, seed=1, overrides=overrides)
    assert run.ok, [c.claim for c in run.checks if not c.ok]
    got = run.to_dict()
    path = GOLDEN / golden_name(sid, overrides)
    if update or not path.exists():
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if not update:
            pytest.fail(f"golden file {path.name} was missing and has been written: review and commit it")
        return
    want = json.loads(path.read_text(encoding="utf-8"))
    assert got["events"] == want["events"], f"event log of {sid} changed (rerun with --update-golden and review)"
    assert got == want


@pytest.mark.parametrize("sid,overrides", CASES, ids=[golden_name(s, o)[:-5] for s, o in CASES])
def test_history_golden(sid: str, overrides: dict[str, str], update_golden: bool) -> None:
    check_golden(sid, overrides, update_golden)

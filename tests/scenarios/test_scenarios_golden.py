"""Golden traces: the JSON event log of every foundation scenario (and variant) against a checked-in file.

Any change to the endpoint or simulator that changes what goes on the wire shows up here as a reviewable diff.
Regenerate with ``pytest tests/scenarios --update-golden`` and read the diff before committing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpwise.scenarios import run_scenario

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

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


def _name(sid: str, overrides: dict[str, str]) -> str:
    suffix = "".join(f"__{k}={v}" for k, v in sorted(overrides.items()))
    return f"{sid}{suffix}.json"


@pytest.mark.parametrize("sid,overrides", CASES, ids=[_name(s, o)[:-5] for s, o in CASES])
def test_golden_trace(sid: str, overrides: dict[str, str], update_golden: bool) -> None:
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

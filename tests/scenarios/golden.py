"""The one golden-trace comparison every scenario group uses.

A run's JSON (events, checks, summary) is compared with ``tests/golden/<id>[__k=v...].json``. Regenerate with
``pytest tests/scenarios --update-golden`` and read the diff before committing: any change to what goes on the
wire shows up there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from tcpwise.events import Run

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def golden_name(sid: str, overrides: dict[str, str] | Iterable[tuple[str, str]]) -> str:
    items = overrides.items() if isinstance(overrides, dict) else overrides
    return sid + "".join(f"__{k}={v}" for k, v in sorted(items)) + ".json"


def check_golden(run: Run, name: str, update: bool) -> None:
    """Assert ``run`` passes its checks and equals its golden file (or write the file when updating)."""
    assert run.ok, [(c.claim, c.detail) for c in run.checks if not c.ok]
    got = json.loads(run.to_json())
    path = GOLDEN / name
    if update or not path.exists():
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if not update:
            pytest.fail(f"golden file {path.name} was missing and has been written: review and commit it")
        return
    want = json.loads(path.read_text(encoding="utf-8"))
    assert got["events"] == want["events"], (
        f"event log of {run.scenario} changed (rerun with --update-golden)"
    )
    assert got == want

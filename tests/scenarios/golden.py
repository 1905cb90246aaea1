"""The one golden-trace comparison every scenario group uses.

A run's canonical one-line-per-event trace (``tcpwise sim ID --format lines``: events with relative numbers,
then the checks; narratives left out) is compared with ``tests/golden/<id>[__k=v...].trace``. Regenerate with
``pytest tests/scenarios --update-golden`` and read the diff before committing: any change to what goes on the
wire, to a state change or its cause, shows up there as a line.

The JSON form must round-trip through the schema too (``Run.from_json(run.to_json())`` renders the same
trace), so the golden also pins what the typed schema keeps.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

import pytest

from tcpwise.events import Run
from tcpwise.render.lines import render_lines

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def golden_name(sid: str, overrides: dict[str, str] | Iterable[tuple[str, str]]) -> str:
    items = overrides.items() if isinstance(overrides, dict) else overrides
    return sid + "".join(f"__{k}={v}" for k, v in sorted(items)) + ".trace"


def check_golden(run: Run, name: str, update: bool) -> None:
    """Assert ``run`` passes its checks and equals its golden trace (or write the file when updating)."""
    assert run.ok, [(c.claim, c.detail) for c in run.checks if not c.ok]
    got = render_lines(run)
    assert render_lines(Run.from_json(run.to_json())) == got, "the JSON form lost something the trace shows"
    path = GOLDEN / name
    if update or not path.exists():
        path.write_text(got, encoding="utf-8")
        if not update:
            pytest.fail(f"golden file {path.name} was missing and has been written: review and commit it")
        return
    want = path.read_text(encoding="utf-8")
    if got != want:
        diff = "".join(
            list(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "now", n=1))[:60]
        )
        pytest.fail(f"trace of {run.scenario} changed (rerun with --update-golden):\n{diff}")

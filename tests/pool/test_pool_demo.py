"""`tcpwise demo pool` (run_pool_demo): the naive pool shows errors and growing sockets, the fix shows none."""

from __future__ import annotations

import io
import re

import pytest

from tcpwise.demo_pool import run_pool_demo


@pytest.mark.slow
def test_pool_demo_naive_vs_fixed() -> None:
    out = io.StringIO()
    assert run_pool_demo(out) == 0
    text = out.getvalue()
    naive, fixed = text.split("tcpwise.pool (validate", 1)
    m = re.search(r"-> (\d+) errors seen by the application", naive)
    assert m and int(m.group(1)) > 0
    held = re.search(r"(\d+) sockets still held by the process", naive)
    assert held and int(held.group(1)) > 8  # grew beyond one burst
    assert "-> 0 errors seen by the application, 0 of 48 requests failed" in fixed
    assert "0 in CLOSE_WAIT" in fixed


@pytest.mark.slow
def test_pool_demo_check_turns_red_without_the_defences(monkeypatch: pytest.MonkeyPatch) -> None:
    """With validation and retry switched off inside tcpwise.pool, the demo must notice (exit 1, errors shown)."""
    from tcpwise.pool import pool as pool_mod

    orig_run = pool_mod.Pool.run
    monkeypatch.setattr(pool_mod.Pool, "_check_idle", lambda self, conn, now: None)
    monkeypatch.setattr(pool_mod.Pool, "run", lambda self, op, retries=None: orig_run(self, op, retries=0))
    out = io.StringIO()
    assert run_pool_demo(out) == 1
    fixed = out.getvalue().split("tcpwise.pool (validate", 1)[1]
    assert "-> 0 errors seen by the application" not in fixed

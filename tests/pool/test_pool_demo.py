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

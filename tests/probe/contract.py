"""The JSON contract of ``tcpwise probe --format json`` (issue 13), as a checker the tests share."""

from __future__ import annotations

from typing import Any

STATES = {
    "CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT",
    "CLOSING", "LAST_ACK", "TIME_WAIT",
}  # fmt: skip
BEHAVIOUR_KEYS = {"name", "verdict", "closed_after_s", "closed_by", "how", "left", "finding"}


def check_contract(doc: Any, allow_null_fds: bool = False) -> None:
    """Raise AssertionError naming the first thing that breaks the contract."""
    assert isinstance(doc, dict) and set(doc) == {"target", "behaviours"}, f"top-level keys {sorted(doc)}"
    assert isinstance(doc["behaviours"], list)
    for b in doc["behaviours"]:
        assert isinstance(b, dict) and set(b) == BEHAVIOUR_KEYS, f"behaviour keys {sorted(b)}"
        assert isinstance(b["name"], str) and b["name"]
        assert b["verdict"] in ("pass", "fail"), b["verdict"]
        c = b["closed_after_s"]
        assert c is None or (isinstance(c, (int, float)) and c >= 0), c
        assert b["closed_by"] in ("target", "probe", None), b["closed_by"]
        assert b["how"] in ("FIN", "RST", None), b["how"]
        assert (c is None) == (b["closed_by"] is None), (c, b["closed_by"])
        left = b["left"]
        assert isinstance(left, dict) and set(left) == {"states", "fds"}, left
        assert all(s in STATES and isinstance(n, int) and n > 0 for s, n in left["states"].items()), left
        fds = left["fds"]
        assert (fds is None and allow_null_fds) or (isinstance(fds, int) and fds >= 0), fds
        f = b["finding"]
        if f is not None:
            assert {"id", "severity", "message", "advice", "evidence"} <= set(f), sorted(f)
            assert f["severity"] in ("info", "warn", "crit") and f["message"] and f["advice"]
        if b["verdict"] == "fail":
            assert f is not None, f"{b['name']}: a failing verdict needs a finding"
        else:
            assert f is None, f"{b['name']}: a pass carries no finding"

"""Hostile parameters: every ``--set`` value is in its declared range or refused in one line, and no value inside
the range can crash, hang or exhaust the machine — a run either finishes or stops at its budget.

The edge sweep runs every parameter at both ends of its range (and 0 where 0 is allowed) in child processes, each
under a small wall-time and memory budget; the outcomes allowed are "ran", "over budget" and a one-line usage
error (a combination the scenario refuses). Anything else — a traceback, a hang past the budget plus a margin,
a child that dies — fails the test.
"""

from __future__ import annotations

import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tcpwise.errors import BudgetExceeded, UsageError
from tcpwise.scenarios import catalogue, get_scenario, run_scenario
from tcpwise.scenarios.base import Param, parse_overrides, run_budget

BAD_TEXTS = ("nan", "inf", "-inf", "NaN", "1e400", "-1e18", "1e18", "99999999999999999999999", "x", "", "0x")
EDGE_WALL_S = 2.0  # per run; a run over budget must stop within this plus a margin
EDGE_RSS = 1 << 30


def _params() -> list[tuple[str, str, Param]]:
    return [(sc.id, name, p) for sc in catalogue() for name, p in sc.params.items()]


def accepted_bad_values(sid: str) -> list[str]:
    """Every bad value that ``--set`` on ``sid`` let through (the test wants none)."""
    sc = get_scenario(sid)
    leaks = []
    for name, p in sc.params.items():
        texts = list(BAD_TEXTS)
        if p.lo is not None and p.hi is not None:
            texts += [repr(p.lo - 1 if type(p.default) is int else p.lo - 1e-6)]
            if not p.inf_ok:
                texts += [repr(p.hi + 1 if type(p.default) is int else p.hi * 1.01 + 1e-6)]
        for text in texts:
            try:
                value = parse_overrides(sc, [f"{name}={text}"])[name]
            except UsageError as exc:
                assert "\n" not in str(exc)
                continue
            if type(p.default) is bool or (p.choices is not None and value in p.choices):
                continue  # "0" and "" parse as valid booleans/choices
            if isinstance(value, float) and (math.isnan(value) or (math.isinf(value) and not p.inf_ok)):
                leaks.append(f"{name}={text}")
            elif isinstance(value, int | float) and p.lo is not None and p.hi is not None:
                if value < p.lo or (value > p.hi and not (p.inf_ok and math.isinf(value))):
                    leaks.append(f"{name}={text}")
    return leaks


def test_every_parameter_declares_what_is_valid() -> None:
    for sid, name, p in _params():
        kind = type(p.default)
        if kind is bool:
            continue
        declared = p.choices is not None or p.pattern is not None or (p.lo is not None and p.hi is not None)
        assert declared, f"{sid}: {name} declares no range, choices or pattern"
        assert p.help and p.help_zh, f"{sid}: {name} needs help in en and zh"


@pytest.mark.parametrize("sid", [sc.id for sc in catalogue()])
def test_bad_values_are_refused_in_one_line(sid: str) -> None:
    assert accepted_bad_values(sid) == []


def test_a_range_check_that_lets_nan_through_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: a Param.check that accepts anything. The sweep above must turn red."""
    monkeypatch.setattr(Param, "check", lambda self, name, value, typed=None: value)
    assert "delay=nan" in accepted_bad_values("close")


def test_the_error_names_the_range() -> None:
    with pytest.raises(UsageError, match=r"delay=-1: must be 0.0001..10 s"):
        parse_overrides(get_scenario("handshake"), ["delay=-1"])
    with pytest.raises(UsageError, match=r"one of crash, partition"):
        parse_overrides(get_scenario("keepalive"), ["death=melt"])


def test_minus_zero_is_zero() -> None:
    """``--set time_wait=-0`` printed "TIME_WAIT lasts -0 s"."""
    (value,) = parse_overrides(get_scenario("close"), ["time_wait=-0"]).values()
    assert value == 0 and math.copysign(1.0, value) == 1.0
    run = run_scenario("close", overrides={"time_wait": "-0"})
    assert "-0" not in (run.summary.get("text") or "")


def _edge_cases() -> list[tuple[str, str, str]]:
    cases = []
    for sid, name, p in _params():
        if type(p.default) is bool or p.lo is None or p.hi is None:
            continue
        values = {p.lo, p.hi}
        if p.lo <= 0 <= p.hi:
            values.add(0)
        for v in sorted(values):
            cases.append((sid, name, str(int(v)) if type(p.default) is int else repr(float(v))))
    return cases


# One case in a child process: its outcome on stdout. The parent kills it when it runs past its budget plus a
# margin — a run that does not stop at its budget (say, a check quadratic in the log) is a hang, and a failure.
CHILD = """
import sys
from tcpwise.errors import BudgetExceeded, UsageError
from tcpwise.scenarios import run_scenario
from tcpwise.scenarios.base import run_budget
sid, name, text, wall, rss = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
try:
    run_scenario(sid, overrides={name: text}, budget=run_budget(wall, rss))
except BudgetExceeded:
    print("budget")
except UsageError:
    print("refused")
else:
    print("ran")
"""
HANG_S = EDGE_WALL_S * 3 + 10


def _run_edge(case: tuple[str, str, str]) -> tuple[str, str, str, str]:
    try:
        res = subprocess.run(
            [sys.executable, "-c", CHILD, *case, str(EDGE_WALL_S), str(EDGE_RSS)],
            capture_output=True,
            text=True,
            timeout=HANG_S,
        )
    except subprocess.TimeoutExpired:
        return (*case, f"HANG past {HANG_S:g} s")
    out = res.stdout.strip()
    if res.returncode != 0 or out not in ("ran", "budget", "refused"):
        return (*case, f"CRASH rc={res.returncode}: {res.stderr.strip()[-300:]}")
    return (*case, out)


@pytest.mark.slow
def test_values_at_the_edges_of_every_range_run_or_stop_at_their_budget() -> None:
    cases = _edge_cases()
    assert len(cases) > 100
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(_run_edge, cases))
    bad = [o for o in outcomes if o[3] not in ("ran", "budget", "refused")]
    assert bad == []


def test_cli_refuses_non_finite_values_in_one_line() -> None:
    for args in (["close", "--set", "time_wait=nan"], ["handshake", "--set", "delay=-1"]):
        res = subprocess.run(
            [sys.executable, "-m", "tcpwise.cli", "sim", *args], capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tcpwise: error: --set "), res.stderr
        assert res.stdout == ""


def test_a_run_over_its_budget_stops_with_one_line(tmp_path: Any) -> None:
    # 100,000 pooled requests take far more than a 1 s budget: the run must stop at it, not grind on.
    with pytest.raises(BudgetExceeded, match="budget of 1 s"):
        run_scenario("keepalive-race", overrides={"requests": "100000"}, budget=run_budget(1.0, EDGE_RSS))

"""The scenario format: a catalogue entry is data (id, titles, claim, parameters) plus three functions.

* ``build(params) -> Script`` — the timed steps (lab-capable scenarios are run from this by the lab too);
* ``check(run, params) -> list[Check]`` — the claims, judged on the recorded events of either world;
* ``narrate(run, params) -> (en, zh)`` — the story, with every number taken from the run.

Scenarios that need more than a script (a NAT box, a heartbeat application, a pool, thousands of clients) give
a ``simulate(params, seed) -> Run`` of their own and are not lab-capable through the script executor.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tcpwise.errors import BudgetExceeded, UsageError
from tcpwise.events import Check, Run
from tcpwise.script import Script
from tcpwise.sim import budget as sim_budget
from tcpwise.sim.budget import Budget

__all__ = [
    "Param",
    "Scenario",
    "register",
    "catalogue",
    "get_scenario",
    "run_scenario",
    "parse_overrides",
    "claim",
    "COMMON_PARAMS",
]

Params = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Param:
    """One scenario parameter: its default (whose type is the parameter's type), a help line in en and zh, and
    what values make sense — a closed interval ``[lo, hi]`` in ``unit`` for numbers (finite always; ``+inf``
    only where ``inf_ok`` says it means "never"), the ``choices`` for a closed set, a ``pattern`` for a
    structured string. Anything outside is a one-line error naming the range, before anything runs."""

    default: Any
    help: str
    help_zh: str = ""
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Any, ...] | None = None
    inf_ok: bool = False
    pattern: str | None = None

    def __post_init__(self) -> None:
        kind = type(self.default)
        if kind in (int, float) and (self.lo is None or self.hi is None) and self.choices is None:
            raise ValueError(f"numeric parameter needs lo and hi (or choices): {self.help!r}")
        self.check("default", self.default)  # a default outside its own range is a bug

    def describe_range(self) -> str:
        """``0.001..10 s``, ``one of 2, 3`` or ``a value like 32768-60999`` — for help and errors."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.lo is not None and self.hi is not None:
            unit = f" {self.unit}" if self.unit else ""
            hi = "inf" if self.inf_ok else f"{self.hi:g}"
            return f"{self.lo:g}..{hi}{unit}"
        if self.pattern is not None:
            return f"a value like {self.default}"
        return type(self.default).__name__

    def check(self, name: str, value: Any, typed: str | None = None) -> Any:
        """Return ``value`` if it is in range, else raise UsageError naming the range (and what was ``typed``)."""
        shown = value if typed is None else typed
        bad = UsageError(f"--set {name}={shown}: must be {self.describe_range()} ({self.help})")
        if self.choices is not None:
            if value not in self.choices:
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
                raise bad
            return value
        if math.isnan(value) or (math.isinf(value) and not (self.inf_ok and value > 0)):
            raise UsageError(
                f"--set {name}={shown}: must be a finite number in {self.describe_range()} ({self.help})"
            )
        assert self.lo is not None and self.hi is not None
        if value < self.lo or (value > self.hi and not (self.inf_ok and math.isinf(value))):
            raise bad
        return value

    def parse(self, name: str, text: str) -> Any:
        kind = type(self.default)
        try:
            if kind is bool:
                low = text.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if kind is int:
                value: Any = int(text, 0)
            elif kind is float:
                value = float(text) + 0.0  # -0 is 0: "TIME_WAIT lasts -0 s" is no one's number
            else:
                value = text
        except ValueError:
            raise UsageError(
                f"--set {name}={text}: expected {kind.__name__}, {self.describe_range()} ({self.help})"
            ) from None
        return self.check(name, value, text)


COMMON_PARAMS: dict[str, Param] = {
    "delay": Param(0.05, "one-way link delay in seconds", "单向链路时延（秒）", unit="s", lo=0.0001, hi=10.0),
}


@dataclass
class Scenario:
    id: str
    title: str
    title_zh: str
    claim: str
    claim_zh: str
    params: dict[str, Param]
    check: Callable[[Run, Params], list[Check]]
    narrate: Callable[[Run, Params], tuple[str, str]]
    build: Callable[[Params], Script] | None = None
    simulate: Callable[[Params, int], Run] | None = None
    lab: bool = False
    tags: tuple[str, ...] = ()
    record_payload: bool = False
    notes: dict[str, str] = field(default_factory=dict)

    def script(self, params: Params | None = None) -> Script:
        if self.build is None:
            raise UsageError(f"scenario {self.id!r} is not script-based (it needs sim components)")
        return self.build(self.resolve(params or {}))

    def resolve(self, overrides: Params) -> Params:
        """Defaults + overrides (already typed)."""
        p = {k: v.default for k, v in self.params.items()}
        p.update(overrides)
        return p

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "title_zh": self.title_zh,
            "claim": self.claim,
            "claim_zh": self.claim_zh,
            "lab": self.lab,
            "tags": list(self.tags),
            "params": {k: {"default": v.default, "help": v.help} for k, v in self.params.items()},
        }


_REGISTRY: dict[str, Scenario] = {}
_LOADED = False  # a test importing one group module first must not stop the rest of the catalogue loading


def register(sc: Scenario) -> Scenario:
    if sc.id in _REGISTRY:
        raise ValueError(f"duplicate scenario id {sc.id}")
    merged = dict(COMMON_PARAMS)
    merged.update(sc.params)
    sc.params = merged
    _REGISTRY[sc.id] = sc
    return sc


# The modules that hold the catalogue; importing one registers its scenarios.
_GROUPS = ("basic", "history", "liveness", "limits", "timewait", "keepalive_race", "segments")


def _load() -> None:
    global _LOADED
    _LOADED = True
    for group in _GROUPS:
        importlib.import_module(f"tcpwise.scenarios.{group}")


# The order of the catalogue (docs/scenarios.md): the connection's life from opening to its limits, then the
# production problems; anything not listed comes after, in registration order.
CATALOGUE_ORDER = (
    "handshake",
    "why-three",
    "simultaneous-open",
    "close",
    "close-three-segments",
    "half-close",
    "simultaneous-close",
    "lost-last-ack",
    "old-duplicate",
    "server-close",
    "timewait-pileup",
    "half-open-crash",
    "half-open-partition",
    "heartbeat-asymmetry",
    "keepalive",
    "middlebox-idle-timeout",
    "close-wait-leak",
    "client-leak",
    "syn-flood",
    "accept-queue-overflow",
    "rst-on-timeout",
    "pool-dead-connections",
)


def catalogue() -> list[Scenario]:
    if not _LOADED:
        _load()
    rank = {sid: i for i, sid in enumerate(CATALOGUE_ORDER)}
    return sorted(_REGISTRY.values(), key=lambda sc: rank.get(sc.id, len(rank)))


def get_scenario(sid: str) -> Scenario:
    if not _LOADED:
        _load()
    sc = _REGISTRY.get(sid)
    if sc is None:
        raise UsageError(f"unknown scenario {sid!r}; valid: {', '.join(_REGISTRY)}")
    return sc


def parse_overrides(sc: Scenario, pairs: list[str] | dict[str, Any] | None) -> Params:
    """``["k=v", ...]`` (CLI) or a dict of strings/values -> typed overrides; unknown keys are a UsageError."""
    if not pairs:
        return {}
    items: list[tuple[str, Any]]
    if isinstance(pairs, dict):
        items = list(pairs.items())
    else:
        items = []
        for pair in pairs:
            if "=" not in pair:
                raise UsageError(f"--set expects key=value, got {pair!r}")
            k, v = pair.split("=", 1)
            items.append((k.strip(), v.strip()))
    out: Params = {}
    for k, v in items:
        if k not in sc.params:
            raise UsageError(f"scenario {sc.id!r} has no parameter {k!r}; valid: {', '.join(sc.params)}")
        param = sc.params[k]
        out[k] = param.parse(k, v) if isinstance(v, str) else param.check(k, v)
    return out


# What one run may take by default (the CLI's --budget changes the time).
WALL_BUDGET_S = 300.0
RSS_BUDGET_BYTES = 3 << 30


def run_budget(wall_s: float = WALL_BUDGET_S, rss_bytes: int = RSS_BUDGET_BYTES) -> Budget:
    """A simulator budget that also stops the run after ``wall_s`` seconds of wall time or once the process's
    resident memory passes ``rss_bytes`` (read from /proc/self/statm, where it exists)."""
    deadline = time.monotonic() + wall_s
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def check() -> None:
        if time.monotonic() > deadline:
            raise BudgetExceeded(
                f"the run took longer than its budget of {wall_s:g} s of wall time: lower the "
                "rate, the duration or the data size (or raise --budget)"
            )
        try:
            with open("/proc/self/statm", "rb") as f:
                rss = int(f.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            return
        if rss > rss_bytes:
            raise BudgetExceeded(
                f"the run needs more than {rss_bytes >> 20} MiB of memory: lower the rate, the "
                "duration or the data size"
            )

    return Budget(check=check)


def run_scenario(
    sid: str,
    seed: int = 1,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    record: bool = True,
    budget: Budget | None = None,
) -> Run:
    """Run a scenario in the model world and judge its checks.

    Raises:
        UsageError: unknown scenario, unknown parameter or a value outside its declared range.
        BudgetExceeded: the run hit its budget (default: :func:`run_budget`).
    """
    sc = get_scenario(sid)
    params = sc.resolve(parse_overrides(sc, overrides))
    with sim_budget.using(budget or run_budget()):
        run = _simulate(sc, params, seed, record)
    run.scenario = sc.id
    run.title = sc.title
    run.params = params
    run.seed = seed
    run.checks = sc.check(run, params)
    try:
        en, zh = sc.narrate(run, params)
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError):
        # A narrative tells the story the scenario is about; with unusual parameters the run may never reach
        # the states it describes. The checks (which say what did happen) stay; the story says it is missing.
        en = "(no narrative: with these parameters the run did not reach what the story describes; see the checks)"
        zh = "（无叙述：在这些参数下运行没有到达叙述所描述的状态；请看检查结果）"
    run.summary.setdefault("values", {})
    run.summary["text"] = en
    run.summary["text_zh"] = zh
    run.summary["claim"] = sc.claim
    run.summary["claim_zh"] = sc.claim_zh
    run.summary["title_zh"] = sc.title_zh
    run.summary["ok"] = run.ok
    return run


def _simulate(sc: Scenario, params: Params, seed: int, record: bool) -> Run:
    if sc.simulate is not None:
        return sc.simulate(params, seed)
    from tcpwise.sim.runner import run_script

    _, run = run_script(
        sc.build(params) if sc.build else Script((), ()),
        seed,
        scenario=sc.id,
        params=params,
        record=record,
        record_payload=sc.record_payload,
    )
    return run


def claim(en: str, zh: str, ok: bool, detail: str = "") -> Check:
    """One check: a sentence (en + zh) and whether the run made it true; ``detail`` holds the measured facts."""
    return Check(claim=en, ok=bool(ok), claim_zh=zh, detail=detail or None)

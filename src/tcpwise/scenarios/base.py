"""The scenario format: a catalogue entry is data (id, titles, claim, parameters) plus three functions.

* ``build(params) -> Script`` — the timed steps (lab-capable scenarios are run from this by the lab too);
* ``check(run, params) -> list[Check]`` — the claims, judged on the recorded events of either world;
* ``narrate(run, params) -> (en, zh)`` — the story, with every number taken from the run.

Scenarios that need more than a script (a NAT box, a heartbeat application, a pool, thousands of clients) give
a ``simulate(params, seed) -> Run`` of their own and are not lab-capable through the script executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.events import Check, Run
from tcpwise.script import Script

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
    default: Any
    help: str
    help_zh: str = ""

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
                return int(text, 0)
            if kind is float:
                return float(text)
            return text
        except ValueError:
            raise UsageError(f"--set {name}={text}: expected {kind.__name__} ({self.help})") from None


COMMON_PARAMS: dict[str, Param] = {
    "delay": Param(0.05, "one-way link delay in seconds", "单向链路时延（秒）"),
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


def _load() -> None:
    # Importing the modules registers their scenarios (catalogue order = import order).
    global _LOADED
    _LOADED = True
    import importlib.util

    from tcpwise.scenarios import basic  # noqa: F401

    if importlib.util.find_spec("tcpwise.scenarios.library") is not None:  # the rest of the catalogue
        importlib.import_module("tcpwise.scenarios.library")


# The order of ../DESIGN.md's catalogue table; anything not listed comes after, in registration order.
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
        out[k] = sc.params[k].parse(k, v) if isinstance(v, str) else v
    return out


def run_scenario(
    sid: str, seed: int = 1, overrides: list[str] | dict[str, Any] | None = None, *, record: bool = True
) -> Run:
    """Run a scenario in the model world and judge its checks."""
    sc = get_scenario(sid)
    params = sc.resolve(parse_overrides(sc, overrides))
    if sc.simulate is not None:
        run = sc.simulate(params, seed)
    else:
        from tcpwise.sim.runner import run_script

        _, run = run_script(
            sc.build(params) if sc.build else Script((), ()),
            seed,
            scenario=sc.id,
            params=params,
            record=record,
            record_payload=sc.record_payload,
        )
    run.scenario = sc.id
    run.title = sc.title
    run.params = params
    run.seed = seed
    run.checks = sc.check(run, params)
    en, zh = sc.narrate(run, params)
    run.summary.setdefault("values", {})
    run.summary["text"] = en
    run.summary["text_zh"] = zh
    run.summary["claim"] = sc.claim
    run.summary["claim_zh"] = sc.claim_zh
    run.summary["title_zh"] = sc.title_zh
    run.summary["ok"] = run.ok
    return run


def claim(en: str, zh: str, ok: bool, detail: str = "") -> Check:
    """One check: a sentence (en + zh) and whether the run made it true; ``detail`` holds the measured facts."""
    return Check(claim=en, ok=bool(ok), claim_zh=zh, detail=detail or None)

"""Run the whole catalogue (or some of it) for the gallery report and the demo: one entry per scenario, with its
run or the error that prevented it. Rendering the entries is :mod:`tcpwise.render.report`'s job; running them is
the scenarios' — the renderers never run anything."""

from __future__ import annotations

import time
from collections.abc import Callable

from tcpwise.errors import UsageError
from tcpwise.render.report import ReportEntry
from tcpwise.scenarios.base import catalogue, run_scenario

__all__ = ["catalogue_entries"]


def catalogue_entries(
    lang: str = "en",
    seed: int = 1,
    only: list[str] | None = None,
    progress: Callable[[ReportEntry, float], None] | None = None,
) -> list[ReportEntry]:
    """Run every scenario of the catalogue (or the ``only`` ids, in catalogue order) in the simulator;
    ``progress(entry, seconds)`` is called after each one."""
    scenarios = list(catalogue())
    if only:
        known = {s.id for s in scenarios}
        unknown = [i for i in only if i not in known]
        if unknown:
            raise UsageError(f"unknown scenario {', '.join(unknown)} (valid: {', '.join(sorted(known))})")
        scenarios = [s for s in scenarios if s.id in only]
    entries: list[ReportEntry] = []
    for s in scenarios:
        title = (getattr(s, "title_zh", None) if lang == "zh" else None) or s.title
        claim = (getattr(s, "claim_zh", None) if lang == "zh" else None) or s.claim
        entry = ReportEntry(s.id, title, claim)
        t0 = time.perf_counter()
        try:
            entry.run = run_scenario(s.id, seed=seed)
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
            entry.error = f"{type(exc).__name__}: {exc}"
        entries.append(entry)
        if progress is not None:
            progress(entry, time.perf_counter() - t0)
    return entries

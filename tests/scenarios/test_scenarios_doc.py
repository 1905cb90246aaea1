"""docs/scenarios.md is generated from the catalogue: it must list every scenario id with its current checks."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_catalogue_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_scenarios_doc", ROOT / "tools" / "gen_scenarios_doc.py"
    )
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    want = gen.render()
    have = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    assert have == want, "docs/scenarios.md is stale: run .venv/bin/python tools/gen_scenarios_doc.py"


def test_every_design_id_is_in_the_catalogue() -> None:
    from tcpwise.scenarios import catalogue
    from tcpwise.scenarios.base import CATALOGUE_ORDER

    ids = [sc.id for sc in catalogue()]
    # The design's catalogue first, in its order; groups added later (keepalive-race, 23rd) come after it.
    assert ids[: len(CATALOGUE_ORDER)] == list(CATALOGUE_ORDER)
    assert "keepalive-race" in ids and len(ids) >= 23

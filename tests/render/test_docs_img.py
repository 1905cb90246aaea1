"""The pictures in the documentation are what the renderer draws today (``make docs-img`` regenerates them).

The SVGs are compared byte for byte with a fresh rendering; each PNG screenshot must exist and the manifest must
name, for it, the SHA-256 of the SVG it was taken from (a screenshot's own bytes depend on the Chromium version,
its source does not). The README must show the picture from docs/img.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_img", ROOT / "tools" / "docs_img.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["docs_img"] = mod
    spec.loader.exec_module(mod)
    return mod


def _stale(tool: ModuleType, runs: dict[str, Any] | None = None) -> list[str]:
    from pictures import scenario_runs

    files, busiest = tool._svgs(runs if runs is not None else scenario_runs())
    files["MANIFEST.json"] = tool.manifest(files, busiest)
    img = tool.IMG
    stale = [
        n
        for n, text in files.items()
        if not (img / n).exists() or (img / n).read_text(encoding="utf-8") != text
    ]
    stale += [f"{sid}.png" for sid in busiest if not (img / f"{sid}.png").exists()]
    return stale


def test_docs_img_is_current() -> None:
    assert _stale(_tool()) == [], "run `make docs-img` and commit docs/img"


def test_the_currency_check_turns_red_when_the_renderer_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from pictures import scenario_runs

    import tcpwise.render.svg as svg

    monkeypatch.setattr(svg, "_STYLE", svg._STYLE + ".tw-new{fill:red}")
    runs = {sid: scenario_runs()[sid] for sid in ("close", "lost-last-ack", "handshake", "half-close")}
    assert "close.svg" in _stale(_tool(), runs)


def test_readme_and_render_doc_show_the_pictures() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/img/close.svg)" in readme and "tcpwise completion" in readme
    doc = (ROOT / "docs" / "render.md").read_text(encoding="utf-8")
    busiest = json.loads((ROOT / "docs" / "img" / "MANIFEST.json").read_text())["busiest"]
    for sid in busiest:
        assert f"](img/{sid}.png)" in doc, sid

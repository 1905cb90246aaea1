"""``make docs-img``: regenerate the pictures the documentation shows, from the code that draws them.

* docs/img/close.svg, docs/img/lost-last-ack.svg -- the README's and docs/render.md's diagrams;
* docs/img/<id>.svg and docs/img/<id>.png for the three busiest diagrams of the catalogue (most labels in their
  default view), the PNG a headless-Chromium screenshot of the SVG, so that the page shows what a browser draws;
* docs/img/MANIFEST.json -- which scenarios are the busiest and the SHA-256 of the SVG each PNG was taken from.

tests/render/test_docs_img.py regenerates the SVGs in memory and compares them with these files, and checks the
manifest against them, so a change to the renderer that is not followed by ``make docs-img`` fails the suite.
Run with ``--check`` to do the same comparison from the command line (exit 1 when something is stale).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
FIXED = ("close", "lost-last-ack")  # README picture, docs/render.md example
BUSIEST = 3


def _svgs(runs: dict[str, Any] | None = None) -> tuple[dict[str, str], list[str]]:
    """Every SVG docs/img holds, by file name, and the busiest scenario ids (most labels first). ``runs`` (id ->
    Run) saves running the catalogue again when the caller has the runs already."""
    from tcpwise.render.svg import render_svg
    from tcpwise.scenarios import catalogue, run_scenario

    if runs is None:
        runs = {sc.id: run_scenario(sc.id) for sc in catalogue()}
    svgs = {sid: render_svg(run) for sid, run in runs.items()}
    count = {sid: s.count('<g class="lbl">') for sid, s in svgs.items()}
    busiest = sorted(count, key=lambda sid: (-count[sid], sid))[:BUSIEST]
    files = {f"{sid}.svg": svgs[sid] for sid in (*FIXED, *busiest)}
    return files, busiest


def manifest(files: dict[str, str], busiest: list[str]) -> str:
    doc = {
        "busiest": busiest,
        "png_from_svg_sha256": {
            f"{sid}.png": hashlib.sha256(files[f"{sid}.svg"].encode()).hexdigest() for sid in busiest
        },
    }
    return json.dumps(doc, indent=1) + "\n"


def _screenshot(svg: Path, png: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("docs-img: chromium is missing (make sysdeps installs it)")
    text = svg.read_text(encoding="utf-8")
    m = re.search(r'<svg [^>]*width="(\d+)" height="(\d+)"', text)
    assert m is not None
    with tempfile.TemporaryDirectory(prefix=f"twimg{os.getpid()}-") as tmp:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp}", f"--window-size={m.group(1)},{m.group(2)}", f"--screenshot={png}",
             svg.as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when stale")
    args = ap.parse_args()
    files, busiest = _svgs()
    files["MANIFEST.json"] = manifest(files, busiest)
    if args.check:
        stale = [n for n, text in files.items() if not (IMG / n).exists() or (IMG / n).read_text() != text]
        stale += [f"{sid}.png" for sid in busiest if not (IMG / f"{sid}.png").exists()]
        for n in stale:
            print(f"stale: docs/img/{n}", file=sys.stderr)
        return 1 if stale else 0
    IMG.mkdir(parents=True, exist_ok=True)
    keep = set(files) | {f"{sid}.png" for sid in busiest}
    # Pictures of scenarios that are no longer the busiest go; pictures other docs own (ladder, probe) stay: only
    # names this tool wrote before, per the previous manifest, are candidates.
    try:
        before = json.loads((IMG / "MANIFEST.json").read_text(encoding="utf-8")).get("busiest", [])
    except (OSError, ValueError):
        before = []
    for sid in before:
        for old in (IMG / f"{sid}.svg", IMG / f"{sid}.png"):
            if old.name not in keep and old.exists():
                old.unlink()
    for name, text in files.items():
        (IMG / name).write_text(text, encoding="utf-8")
    for sid in busiest:
        _screenshot(IMG / f"{sid}.svg", IMG / f"{sid}.png")
    print(f"docs/img: {', '.join(sorted(keep))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

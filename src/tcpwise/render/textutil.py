"""Small text helpers shared by the renderers: terminal cell width, CJK-aware wrapping, human durations."""

from __future__ import annotations

import re
import textwrap
import unicodedata

__all__ = ["cell_width", "wrap", "human_gap"]


def cell_width(s: str) -> int:
    """Terminal cells ``s`` occupies (wide and full-width characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def wrap(s: str, width: int) -> list[str]:
    """Wrap by terminal cells. Latin words (and numbers, state names like TIME_WAIT) are never split; CJK text,
    which has no spaces, may break between any two of its characters."""
    width = max(8, width)
    if cell_width(s) == len(s):
        return textwrap.wrap(s, width) or [""]
    # tokens: runs of non-space narrow characters, single wide characters, single spaces
    tokens = re.findall(r"[^\s\u1100-\uffff]+|\s|.", s)
    lines: list[str] = []
    cur = ""
    for tok in tokens:
        if cell_width(cur + tok) > width and cur.strip():
            lines.append(cur.rstrip())
            cur = "" if tok.isspace() else tok
            while cell_width(cur) > width:  # a single word longer than the line
                lines.append(cur[:width])
                cur = cur[width:]
        else:
            cur += tok
    if cur.strip():
        lines.append(cur.rstrip())
    return lines or [""]


def human_gap(dt: float) -> str:
    if dt >= 100:
        return f"{dt:.0f} s"
    if dt >= 1:
        return f"{dt:.1f} s".replace(".0 s", " s")
    return f"{dt * 1000:.0f} ms"

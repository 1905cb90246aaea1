"""Text boxes measured with the metrics of the fonts the SVG names, so that the layout can keep labels apart.

The SVG's style asks for DejaVu Sans / DejaVu Sans Mono (fonts-dejavu-core) with Noto Sans CJK SC
(fonts-noto-cjk) after them for Chinese; both are installed by ``make``. :mod:`tcpwise.render.fontdata` holds the
DejaVu advance widths read from the font files (tools/gen_fontmetrics.py); CJK ideographs and full-width forms are
one em in Noto Sans CJK. A character neither covers is guessed at :data:`UNKNOWN_EM` and reported by
:func:`unmeasured` (the tests require that every character tcpwise draws is measured).

A box's height follows what Chromium reports for an SVG ``<text>`` (``getBBox``): the top sits one font size above
the baseline (DejaVu's ascent rounds to 11 px at 12 px, Noto CJK's to 12 px) and the bottom 0.3 font sizes below
(3 px at 12 px). The estimates err on the large side: kerning only ever makes real text narrower.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from tcpwise.render import fontdata

__all__ = ["text_width", "Box", "text_box", "unmeasured", "FACES", "TOP_EM", "BOTTOM_EM", "UNKNOWN_EM"]

FACES = tuple(fontdata.WIDTHS)
TOP_EM = 1.0  # box top above the baseline, in font sizes
BOTTOM_EM = 0.3  # box bottom below the baseline
UNKNOWN_EM = 0.7  # a character no table covers (wider than DejaVu's average, so the guess errs large)


@lru_cache(maxsize=len(FACES))
def _table(face: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for first, widths in fontdata.WIDTHS[face].items():
        for i, w in enumerate(widths.split()):
            if w != "0":
                out[first + i] = int(w) / fontdata.UPEM
    return out


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in "WF"


def char_em(ch: str, face: str = "sans") -> float | None:
    """Advance of ``ch`` in em in ``face`` (with the CJK fallback), or None when no font covers it."""
    w = _table(face).get(ord(ch))
    if w is not None:
        return w
    if _wide(ch):
        return 1.0
    if unicodedata.category(ch) in ("Mn", "Me", "Cf"):  # combining marks, zero-width formatting
        return 0.0
    return None


def text_width(s: str, size: float, face: str = "sans") -> float:
    """Width in px of ``s`` set at ``size`` px in ``face`` (``sans``, ``sans-bold``, ``sans-oblique``, ``mono``,
    ``mono-bold``)."""
    total = 0.0
    for ch in s:
        w = char_em(ch, face)
        total += UNKNOWN_EM if w is None else w
    return total * size


def unmeasured(s: str, face: str = "sans") -> set[str]:
    """The characters of ``s`` that no font table covers (their width is a guess)."""
    return {ch for ch in s if char_em(ch, face) is None}


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned rectangle in SVG user units (y grows downwards)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box, pad: float = 0.0) -> bool:
        return (
            self.x0 < other.x1 + pad
            and other.x0 < self.x1 + pad
            and self.y0 < other.y1 + pad
            and other.y0 < self.y1 + pad
        )

    def grow(self, d: float) -> Box:
        return Box(self.x0 - d, self.y0 - d, self.x1 + d, self.y1 + d)

    def shift(self, dx: float, dy: float) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def text_box(
    x: float,
    baseline: float,
    lines: list[str] | str,
    size: float,
    face: str = "sans",
    anchor: str = "start",
    line_gap: float | None = None,
) -> Box:
    """The box of a (multi-line) ``<text>`` at ``x``/``baseline`` with ``text-anchor`` ``anchor``; lines are
    ``line_gap`` apart (default 1.2 font sizes)."""
    if isinstance(lines, str):
        lines = [lines]
    gap = size * 1.2 if line_gap is None else line_gap
    w = max((text_width(ln, size, face) for ln in lines), default=0.0)
    x0 = x if anchor == "start" else (x - w if anchor == "end" else x - w / 2)
    top = baseline - TOP_EM * size
    bottom = baseline + (len(lines) - 1) * gap + BOTTOM_EM * size
    return Box(x0, top, x0 + w, bottom)

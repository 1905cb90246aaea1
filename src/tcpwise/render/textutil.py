"""Small text helpers shared by the renderers: terminal cell width, CJK-aware wrapping, human durations.

The implementations live in :mod:`tcpwise.term` (every CLI uses them too); this module keeps the renderers'
imports short."""

from __future__ import annotations

from tcpwise.term import cell_width, fmt_seconds, wrap

__all__ = ["cell_width", "wrap", "human_gap"]


def human_gap(dt: float) -> str:
    """An idle gap as the diagrams print it after "≈" (``60 s``, ``5.3 s``, ``250 ms``): two significant digits
    are enough for "about"."""
    return fmt_seconds(dt, 2)

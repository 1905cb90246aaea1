"""Durations as people write them in configs: ``75s``, ``1m``, ``1h30m``, ``1h 30m``, ``500ms``, ``0.5s``, ``90``.

Each config language has its own default unit for a bare number — nginx and gunicorn mean seconds, HAProxy means
milliseconds (configuration.txt §2.5), Node's ``keepAliveTimeout`` is milliseconds — so the caller says which one
applies. Units understood (the union of nginx's "Measurement units", HAProxy's §2.5 and Go's ParseDuration):
``us``/``µs``, ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``. Several parts may follow each other from the most to the
least significant, optionally separated by blanks (nginx allows ``1h 30m``), as in Go's ``1h30m0s``.
"""

from __future__ import annotations

import math
import re

from tcpwise.errors import UsageError

__all__ = ["parse_duration", "format_duration", "UNITS", "NEVER_WORDS"]

UNITS: dict[str, float] = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
# Words that mean "this side never gives up on an idle connection" (urllib3's pool, Go's zero IdleTimeout).
NEVER_WORDS = frozenset({"never", "none", "off", "infinite", "inf", "unlimited", "forever"})

_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(µs|us|ms|sec|min|s|m|h|d|w)?", re.IGNORECASE)


def parse_duration(text: str | int | float, default_unit: str = "s", *, what: str = "duration") -> float:
    """Seconds in ``text``; a bare number is in ``default_unit``. Raises UsageError naming ``what``.

    >>> parse_duration("1h30m"), parse_duration("1h 30m"), parse_duration("500ms"), parse_duration("75")
    (5400.0, 5400.0, 0.5, 75.0)
    >>> parse_duration("3000", "ms")
    3.0
    """
    if isinstance(text, bool):
        raise UsageError(f"{what}: expected a duration, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text) * UNITS[default_unit]
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{what}: {text!r} is not a duration >= 0")
        return value
    s = text.strip()
    if not s:
        raise UsageError(f"{what}: empty duration")
    pos = 0
    total = 0.0
    last_rank = math.inf
    parts = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None or m.end() == pos:
            raise UsageError(f"{what}: cannot read {text!r} as a duration (e.g. 75s, 1m, 1h30m, 500ms)")
        unit = (m.group(2) or "").lower() or None
        if unit is None and parts:
            raise UsageError(f"{what}: {text!r}: a bare number can only stand alone")
        scale = UNITS[unit] if unit else UNITS[default_unit]
        if scale >= last_rank:  # "30m1h": parts must go from the most to the least significant (nginx rule)
            raise UsageError(f"{what}: {text!r}: units must go from the largest to the smallest")
        last_rank = scale
        total += float(m.group(1)) * scale
        parts += 1
        pos = m.end()
        while pos < len(s) and s[pos].isspace():
            pos += 1
    return total


def format_duration(seconds: float | None, *, never: str = "never") -> str:
    """The shortest exact spelling: ``5s``, ``500ms``, ``1m``, ``1h30m``, ``90s`` stays ``1m30s``."""
    if seconds is None or math.isinf(seconds):
        return never
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    if ms % 1000:
        if ms < 1000:
            return f"{ms}ms"
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    total = ms // 1000
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            n, total = divmod(total, size)
            out.append(f"{n}{unit}")
    return "".join(out)

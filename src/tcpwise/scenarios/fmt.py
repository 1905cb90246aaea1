"""Numbers in narratives and check details: a value the run did not produce prints as "never" or "n/a", never
as a crash (odd parameters can leave a state unreached, and the story must still be told)."""

from __future__ import annotations

__all__ = ["fmt_time", "fmt_num"]


def fmt_time(t: float | None, digits: int = 3) -> str:
    """``1.550 s``; ``never`` when the run never got there."""
    return "never" if t is None else f"{t:.{digits}f} s"


def fmt_num(x: float | None, spec: str = "g") -> str:
    """``format(x, spec)``; ``n/a`` when the run did not measure it."""
    return "n/a" if x is None else format(x, spec)

"""Numbers in narratives and check details: a value the run did not produce prints as "never" or "n/a", never
as a crash (odd parameters can leave a state unreached, and the story must still be told)."""

from __future__ import annotations

from tcpwise.term import fmt_num as term_fmt_num

__all__ = ["fmt_time", "fmt_num"]


def fmt_time(t: float | None, digits: int = 3) -> str:
    """``1.550 s``; ``never`` when the run never got there."""
    return "never" if t is None else f"{t:.{digits}f} s"


def fmt_num(x: float | None, spec: str = "") -> str:
    """``format(x, spec)``, or without ``spec`` a number for people (3 significant digits, so a kernel run's
    61.1459 s of TIME_WAIT reads 61.1); ``n/a`` when the run did not measure it."""
    if x is None:
        return "n/a"
    return format(x, spec) if spec else term_fmt_num(x)

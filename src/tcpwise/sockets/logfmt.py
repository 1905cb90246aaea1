"""One-line JSON log records carrying the guard's and pool's structured fields, and a log rate limiter.

The guard logs with ``extra={"event": "close", "peer": ..., "reason": ..., "duration": ..., ...}``; this
formatter writes those fields as JSON so log pipelines can count close reasons without parsing prose.
"""

from __future__ import annotations

import json
import logging

__all__ = ["JsonFormatter", "LogLimiter", "STRUCTURED_FIELDS"]

STRUCTURED_FIELDS = (
    "event",
    "peer",
    "reason",
    "duration",
    "bytes_in",
    "error",
    "source_key",
    "borrowed_at",
    "held_for",
    "pool",
    "suppressed",
    "fds",
    "fd_limit",
)


class JsonFormatter(logging.Formatter):
    """``{"t": ..., "level": ..., "logger": ..., "msg": ..., <structured fields>}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "t": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k in STRUCTURED_FIELDS:
            if k in record.__dict__:
                v = record.__dict__[k]
                out[k] = list(v) if isinstance(v, tuple) else v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class LogLimiter:
    """Token bucket per record kind, so a flood of refusals or errors cannot flood the log.

    ``allow(kind, now)`` returns ``None`` when the record must be dropped (it is counted), or the number of
    records of that kind dropped since the last one let through — put it in the record so the reader knows
    ("... and 4,512 more suppressed"). The counters the guard and pool keep stay exact either way: the log is
    for the story, the metrics for the numbers. ``now`` is passed in (loop time), so the limiter reads no clock.

    Args:
        rate: records per second let through per kind, sustained.
        burst: records let through at once before the rate applies.
    """

    __slots__ = ("rate", "burst", "_state")

    def __init__(self, rate: float = 1.0, burst: float = 10.0) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"log rate must be > 0 and burst >= 1, got rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        # kind -> [tokens, last refill time, suppressed since the last record let through]
        self._state: dict[str, list[float]] = {}

    def allow(self, kind: str, now: float) -> int | None:
        st = self._state.get(kind)
        if st is None:
            if len(self._state) > 1024:  # kinds are a small fixed set; bound it anyway
                self._state.clear()
            st = self._state[kind] = [self.burst, now, 0.0]
        else:
            st[0] = min(self.burst, st[0] + (now - st[1]) * self.rate)
            st[1] = now
        if st[0] < 1.0:
            st[2] += 1
            return None
        st[0] -= 1.0
        dropped = int(st[2])
        st[2] = 0.0
        return dropped

    def suppressed(self) -> dict[str, int]:
        """Records dropped per kind and not yet reported by a later record."""
        return {k: int(v[2]) for k, v in self._state.items() if v[2]}

"""One-line JSON log records carrying the guard's and pool's structured fields, and a log rate limiter.

The guard logs with ``extra={"event": "close", "peer": ..., "reason": ..., "duration": ..., ...}``; this
formatter writes those fields as JSON so log pipelines can count close reasons without parsing prose.
"""

from __future__ import annotations

import json
import logging

__all__ = ["JsonFormatter", "STRUCTURED_FIELDS"]

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

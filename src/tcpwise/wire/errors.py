"""The one exception the wire codec raises on malformed input.

Theory of operation: every parser in :mod:`tcpwise.wire` (``parse_tcp``, ``parse_ip``, ``parse_packet``) either
returns a value or raises :class:`WireError` with a one-line message naming the field and the offending value.
Anything else escaping a parser (``IndexError``, ``struct.error``, a bare ``ValueError``) is a bug; the Hypothesis
fuzz tests in ``tests/wire`` hold the codec to that (the same invariant h11 states for its AFL harness).

It subclasses :class:`ValueError` so callers that already catch ``ValueError`` keep working.
"""

from __future__ import annotations

__all__ = ["WireError"]


class WireError(ValueError):
    """Malformed or truncated packet bytes (or a checksum that does not verify, when asked to verify)."""

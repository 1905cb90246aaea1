"""Per-connection deadlines: first byte, idle read, stalled write, total lifetime (sans-IO).

Theory of operation
-------------------
A connection carries four timestamps (accepted, last byte read, write stalled since, or ``None``) and the
:class:`Timeouts` policy. :func:`next_deadline` gives the earliest moment something could expire together with
the reason it would expire for; the server arms *one* loop timer for that moment. Reads do not touch the timer:
they only move ``last_read`` forward. When the timer fires, :func:`next_deadline` is asked again; if the
deadline has moved into the future (data arrived meanwhile) the timer is simply re-armed — the "lazy timer"
trick that keeps the per-read cost at one float store instead of a timer cancel + reschedule per read.

Which timeout applies while the peer is silent:
  * no byte yet -> ``first_byte`` (slowloris: connect and never speak), falling back to ``idle``;
  * after the first byte -> ``idle`` (no byte read for that long).
``write`` applies only while the transport has paused writing (its buffer above the high-water mark because the
peer's receive window is closed); ``lifetime`` always applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpwise.guard.reasons import CloseReason

__all__ = ["Timeouts", "ConnClock", "next_deadline"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; ``None`` disables a timeout.

    Attributes:
        first_byte: from accept until the first byte is read (slowloris defence).
        idle: no byte read for this long after the first one (nginx ``keepalive_timeout``/``client_body_timeout``).
        write: the transport stayed paused (peer not reading, window closed) for this long (nginx ``send_timeout``).
        lifetime: total connection age, e.g. to rebalance long-lived clients.
        drain: graceful close: how long to wait for the peer's FIN after ours before closing anyway.
    """

    first_byte: float | None = None
    idle: float | None = None
    write: float | None = None
    lifetime: float | None = None
    drain: float = 5.0

    def __post_init__(self) -> None:
        for name in ("first_byte", "idle", "write", "lifetime"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"timeout {name} must be > 0 seconds or None, got {v}")
        if self.drain < 0:
            raise ValueError(f"drain must be >= 0 seconds, got {self.drain}")


@dataclass(slots=True)
class ConnClock:
    """The timestamps a connection's deadlines are computed from (loop time, seconds)."""

    accepted: float
    last_read: float | None = None  # None until the first byte
    write_paused_since: float | None = None


def next_deadline(t: Timeouts, c: ConnClock) -> tuple[float, CloseReason] | None:
    """Earliest deadline and the reason that would close the connection then; ``None`` if nothing applies."""
    best: tuple[float, CloseReason] | None = None
    if c.last_read is None:
        if t.first_byte is not None:
            best = (c.accepted + t.first_byte, CloseReason.FIRST_BYTE_TIMEOUT)
        elif t.idle is not None:
            best = (c.accepted + t.idle, CloseReason.IDLE_TIMEOUT)
    elif t.idle is not None:
        best = (c.last_read + t.idle, CloseReason.IDLE_TIMEOUT)
    if t.write is not None and c.write_paused_since is not None:
        d = c.write_paused_since + t.write
        if best is None or d < best[0]:
            best = (d, CloseReason.WRITE_TIMEOUT)
    if t.lifetime is not None:
        d = c.accepted + t.lifetime
        if best is None or d < best[0]:
            best = (d, CloseReason.LIFETIME)
    return best

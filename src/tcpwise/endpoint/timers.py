"""A connection's timers as data (smoltcp's ``Timer`` habit): named deadlines, the earliest one, and a fixed
firing order.

An endpoint arms at most one deadline per :class:`~tcpwise.vocab.TimerName`. :meth:`Timers.due` lists the
expired ones in the order of the enum (TIME_WAIT and FIN_WAIT_2 before RTO, PERSIST and KEEPALIVE): when
several fire at the same instant the connection-ending timers go first, and the order never depends on when they
were armed — one reason runs are a pure function of their inputs.
"""

from __future__ import annotations

from tcpwise.vocab import TimerName

__all__ = ["Timers", "EPSILON"]

# Deadlines are floats computed by different sums; a deadline within a nanosecond of ``now`` has come.
EPSILON = 1e-9
_ORDER = tuple(TimerName)


class Timers:
    __slots__ = ("_at",)

    def __init__(self) -> None:
        self._at: dict[TimerName, float] = {}

    def arm(self, name: TimerName, at: float) -> None:
        self._at[name] = at

    def disarm(self, name: TimerName) -> None:
        self._at.pop(name, None)

    def clear(self) -> None:
        self._at.clear()

    def deadline(self, name: TimerName) -> float | None:
        """When ``name`` fires, or None when it is not armed."""
        return self._at.get(name)

    def armed(self, name: TimerName) -> bool:
        return name in self._at

    def earliest(self) -> float | None:
        at = self._at
        return min(at.values()) if at else None

    def due(self, now: float) -> list[TimerName]:
        """The armed timers whose deadline has come, in firing order."""
        at = self._at
        return [n for n in _ORDER if n in at and at[n] <= now + EPSILON]

    def __len__(self) -> int:
        return len(self._at)

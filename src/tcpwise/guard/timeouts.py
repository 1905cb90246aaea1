"""Per-connection deadlines: first byte, idle read, request, minimum receive rate, stalled write, lifetime (sans-IO).

Theory of operation
-------------------
A connection carries a :class:`ConnClock` (when it was accepted, when a byte was last read, since when writing
has been stalled, and the state of the request in progress) and the :class:`Timeouts` policy.
:func:`next_deadline` gives the earliest moment something could expire together with the reason; the server
arms *one* loop timer for that moment. Reads do not touch the timer: they only move timestamps forward. When
the timer fires, :func:`next_deadline` is asked again; if the deadline has moved into the future (data arrived
meanwhile) the timer is simply re-armed — the "lazy timer" that keeps the per-read cost at a few stores.

Which timeout applies while the peer is silent:
  * no byte yet -> ``first_byte`` (slowloris: connect and never speak), falling back to ``idle``;
  * after the first byte -> ``idle`` (no byte read for that long).

Requests. The guard knows no protocol, so it calls a *request* everything the peer sends from the first byte
after the server last answered (or after the accept) until the server answers again (the handler writes). While
a request is in progress the client is on the clock — but only for the time the handler spends *waiting* for
its bytes (blocked in ``read``/``readline``/``readuntil``/``readexactly``): a handler that has what it needs and
computes for ten seconds before answering does not make its client slow. On that *client time*:
  * ``request``: the whole request must arrive within this many seconds (nginx ``client_header_timeout``,
    HAProxy ``timeout http-request``);
  * ``min_rate`` (bytes/s) after ``min_rate_grace`` seconds: each byte received buys ``1/min_rate`` more seconds,
    so the deadline is ``start + grace + bytes/min_rate`` (Apache ``mod_reqtimeout`` ``MinRate``). A slowloris
    that sends one byte just inside the idle timeout never trips ``idle``; it trips this, ``grace`` seconds (plus
    a few bytes' worth) after its first byte.

``write`` applies only while the transport has paused writing (its buffer above the high-water mark because the
peer's receive window is closed); ``lifetime`` always applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpwise.guard.reasons import CloseReason

__all__ = ["Timeouts", "ConnClock", "next_deadline", "below_min_rate"]

Deadline = tuple[float, CloseReason]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds (``min_rate``: bytes per second); ``None`` disables a timeout.

    Attributes:
        first_byte: from accept until the first byte is read (slowloris that never speaks).
        idle: no byte read for this long after the first one (nginx ``keepalive_timeout``/``client_body_timeout``).
        request: client time allowed for one whole request (see the module docstring).
        min_rate: bytes per second of client time a request must keep up after ``min_rate_grace``.
        min_rate_grace: client time a request may take before ``min_rate`` applies.
        write: the transport stayed paused (peer not reading, window closed) for this long (nginx ``send_timeout``).
        lifetime: total connection age, e.g. to rebalance long-lived clients.
        drain: graceful close: how long to wait for the peer's FIN after ours before closing anyway.
    """

    first_byte: float | None = None
    idle: float | None = None
    request: float | None = None
    min_rate: float | None = None
    min_rate_grace: float = 2.0
    write: float | None = None
    lifetime: float | None = None
    drain: float = 5.0

    def __post_init__(self) -> None:
        for name in ("first_byte", "idle", "request", "min_rate", "write", "lifetime"):
            v = getattr(self, name)
            if v is not None and not 0 < v < float("inf"):
                raise ValueError(f"timeout {name} must be > 0 and finite, or None, got {v}")
        for name in ("drain", "min_rate_grace"):
            v = getattr(self, name)
            if not 0 <= v < float("inf"):
                raise ValueError(f"{name} must be >= 0 seconds and finite, got {v}")


@dataclass(slots=True)
class ConnClock:
    """The timestamps a connection's deadlines are computed from (loop time, seconds)."""

    accepted: float
    last_read: float | None = None  # None until the first byte
    write_paused_since: float | None = None
    request_start: float | None = None  # first byte of the request not answered yet; None between requests
    request_bytes: int = 0
    request_waited: float = 0.0  # client time of this request in handler waits that have ended
    waiting: bool = False  # the handler is blocked waiting for bytes now
    wait_since: float = 0.0  # when that wait began (meaningful only while waiting)
    answered: int = 0  # requests answered so far

    def client_time(self, now: float) -> float:
        """Seconds of the current request during which the handler was waiting for the client."""
        if self.request_start is None:
            return 0.0
        t = self.request_waited
        if self.waiting:
            t += now - max(self.wait_since, self.request_start)
        return t

    def start_wait(self, now: float) -> None:
        self.waiting = True
        self.wait_since = now

    def end_wait(self, now: float) -> None:
        if self.waiting and self.request_start is not None:
            self.request_waited += now - max(self.wait_since, self.request_start)
        self.waiting = False

    def start_request(self, now: float) -> None:
        self.request_start = now
        self.request_bytes = 0
        self.request_waited = 0.0

    def answer(self) -> None:
        self.request_start = None
        self.answered += 1


def _earlier(a: Deadline | None, b: Deadline | None) -> Deadline | None:
    if a is None:
        return b
    if b is None or a[0] <= b[0]:
        return a
    return b


def _silence_deadline(t: Timeouts, c: ConnClock) -> Deadline | None:
    if c.last_read is None:
        if t.first_byte is not None:
            return (c.accepted + t.first_byte, CloseReason.FIRST_BYTE_TIMEOUT)
        if t.idle is not None:
            return (c.accepted + t.idle, CloseReason.IDLE_TIMEOUT)
        return None
    if t.idle is not None:
        return (c.last_read + t.idle, CloseReason.IDLE_TIMEOUT)
    return None


def _request_deadline(t: Timeouts, c: ConnClock) -> Deadline | None:
    """Request and minimum-rate deadlines: only while a request is in progress and the handler waits for it."""
    if c.request_start is None or not c.waiting:
        return None
    # The instant client time would have been 0 had the handler waited all along since then.
    base = max(c.wait_since, c.request_start) - c.request_waited
    best: Deadline | None = None
    if t.request is not None:
        best = (base + t.request, CloseReason.REQUEST_TIMEOUT)
    if t.min_rate is not None:
        best = _earlier(best, (base + t.min_rate_grace + c.request_bytes / t.min_rate, CloseReason.MIN_RATE))
    return best


def next_deadline(t: Timeouts, c: ConnClock) -> Deadline | None:
    """Earliest deadline and the reason that would close the connection then; ``None`` if nothing applies."""
    best = _silence_deadline(t, c)
    if t.write is not None and c.write_paused_since is not None:
        best = _earlier(best, (c.write_paused_since + t.write, CloseReason.WRITE_TIMEOUT))
    if t.lifetime is not None:
        best = _earlier(best, (c.accepted + t.lifetime, CloseReason.LIFETIME))
    return _earlier(best, _request_deadline(t, c))


def below_min_rate(t: Timeouts, c: ConnClock, now: float) -> bool:
    """A request is in progress and has so far received fewer than ``min_rate`` bytes per second of client time
    (grace not counted: this ranks eviction candidates, it does not close anything)."""
    if t.min_rate is None or c.request_start is None:
        return False
    return c.request_bytes < t.min_rate * c.client_time(now)

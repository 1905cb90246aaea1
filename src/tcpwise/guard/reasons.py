"""Why a guarded connection was closed: one reason per close, every one counted and logged.

The names are stable: they are Prometheus label values (``tcpwise_guard_closes_total{reason="idle_timeout"}``)
and the ``reason`` field of structured log records.
"""

from __future__ import annotations

import enum

__all__ = ["CloseReason"]


class CloseReason(enum.Enum):
    """Every way a guarded connection ends. ``str()`` gives the stable label value."""

    # Refused at accept time: closed before any application code ran.
    REFUSED_GLOBAL_LIMIT = "refused_global_limit"
    REFUSED_IP_LIMIT = "refused_ip_limit"
    REFUSED_RATE = "refused_rate"
    REFUSED_DRAINING = "refused_draining"
    # Closed by a guard timeout.
    FIRST_BYTE_TIMEOUT = "first_byte_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    REQUEST_TIMEOUT = "request_timeout"
    MIN_RATE = "min_rate"  # a request arrived slower than Timeouts.min_rate bytes/s (trickling slowloris)
    WRITE_TIMEOUT = "write_timeout"
    LIFETIME = "lifetime"
    # Closed to make room for a newcomer at the connection cap: it had not completed a request, or its request
    # was arriving below the minimum rate, and its source held the most connections (see docs/guard.md).
    EVICTED = "evicted"
    # Closed because the application finished with it (the "always close" remedy for CLOSE_WAIT leaks).
    HANDLER_DONE = "handler_done"
    HANDLER_ERROR = "handler_error"
    # Ended by the peer or the kernel.
    PEER_CLOSED = "peer_closed"
    PEER_RESET = "peer_reset"
    DEAD_PEER = "dead_peer"  # ETIMEDOUT: TCP_USER_TIMEOUT, keepalive or retransmission give-up (tcp(7))
    ERROR = "error"
    # Server shutting down (SIGTERM drain deadline passed).
    SHUTDOWN = "shutdown"

    def __str__(self) -> str:
        return self.value

    @property
    def refused(self) -> bool:
        return self.value.startswith("refused_")

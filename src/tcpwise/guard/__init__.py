"""tcpwise.guard: the server-side remedies for connection-life problems, as an asyncio library.

Limits (global, per-IP with IPv6 prefix aggregation, accept rate), descriptor headroom (pause accepting before
RLIMIT_NOFILE), eviction of connections that have not earned their slot, fair per-source set-up, first-byte /
idle / request / minimum-rate / write / lifetime timeouts, keepalive + TCP_USER_TIMEOUT on every socket, FIN
or RST close modes, always-close, graceful SIGTERM drain, rate-limited logging, and one counted, logged reason
per close. See docs/guard.md.

    from tcpwise.guard import Guard, GuardConfig, Limits, Timeouts
    guard = Guard(handle, GuardConfig(limits=Limits(max_per_ip=50), timeouts=Timeouts(idle=30)))
    server = await guard.start_server("0.0.0.0", 8080)
"""

from __future__ import annotations

from tcpwise.guard.heartbeat import HeartbeatMismatch, check_heartbeat, heartbeat
from tcpwise.guard.limits import Admission, Limits, source_key
from tcpwise.guard.reasons import CloseReason
from tcpwise.guard.server import Guard, GuardConfig, GuardedProtocol, GuardServer, start_guarded_server
from tcpwise.guard.timeouts import Timeouts
from tcpwise.sockets.options import Keepalive, apply_keepalive, set_abortive

__all__ = [
    "Admission",
    "GuardServer",
    "CloseReason",
    "Guard",
    "GuardConfig",
    "GuardedProtocol",
    "HeartbeatMismatch",
    "Keepalive",
    "Limits",
    "Timeouts",
    "apply_keepalive",
    "check_heartbeat",
    "heartbeat",
    "set_abortive",
    "source_key",
    "start_guarded_server",
]

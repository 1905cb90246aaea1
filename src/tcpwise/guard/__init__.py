"""tcpwise.guard: the notes' server-side remedies as an asyncio library.

Limits (global, per-IP with IPv6 prefix aggregation, accept rate), first-byte/idle/write/lifetime timeouts,
keepalive + TCP_USER_TIMEOUT on every socket, FIN or RST close modes, always-close, graceful SIGTERM drain,
and one counted, logged reason per close. See docs/guard.md.

    from tcpwise.guard import Guard, GuardConfig, Limits, Timeouts
    guard = Guard(handle, GuardConfig(limits=Limits(max_per_ip=50), timeouts=Timeouts(idle=30)))
    server = await guard.start_server("0.0.0.0", 8080)
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy re-exports (PEP 562): `tcpwise` CLI start-up imports tcpwise.guard.cli, which must not pay for asyncio.
_EXPORTS = {
    "HeartbeatMismatch": "heartbeat", "check_heartbeat": "heartbeat", "heartbeat": "heartbeat",
    "Admission": "limits", "Limits": "limits", "source_key": "limits",
    "CloseReason": "reasons",
    "Guard": "server", "GuardConfig": "server", "GuardedProtocol": "server", "start_guarded_server": "server",
    "Keepalive": "sockopts", "apply_keepalive": "sockopts", "set_abortive": "sockopts",
    "Timeouts": "timeouts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'tcpwise.guard' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tcpwise.guard.{mod}"), name)
    globals()[name] = value
    return value

"""tcpwise.sockets: what the guard (server side) and the pool (client side) share, below both of them.

* :mod:`.options` — keepalive, TCP_USER_TIMEOUT, SO_LINGER {1,0} (RST on close), TCP_NODELAY;
* :mod:`.metrics` — counters and gauges kept as plain numbers, exported to Prometheus on demand;
* :mod:`.logfmt` — one-line JSON log records and a rate limiter so floods cannot flood the log;
* :mod:`.fds` — the process's file-descriptor limit and count (headroom before EMFILE);
* :mod:`.procnet` — counting TCP sockets by state (``ss`` / ``/proc/net/tcp``), for tests, demos and benchmarks;
* :mod:`.testing` — loopback helpers (many source addresses from 127.0.0.0/8, how a connection ended);
* :mod:`.vclock` — an asyncio event loop on a virtual clock for timeout tests that do not sleep.

Layer: above ``vocab``, below the apps that use it (``guard``, ``pool``). Nothing here imports an app.
"""

from __future__ import annotations

from tcpwise.sockets.metrics import Metrics
from tcpwise.sockets.options import Keepalive, apply_keepalive, set_abortive, set_nodelay

__all__ = ["Keepalive", "Metrics", "apply_keepalive", "set_abortive", "set_nodelay"]

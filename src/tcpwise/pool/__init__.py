"""tcpwise.pool: an asyncio client connection pool that drops dead connections (see docs/pool.md).

from tcpwise.pool import Pool, PoolConfig
async with Pool("127.0.0.1", 7070, PoolConfig(max_size=20, max_idle_time=5, server_idle_timeout=10)) as pool:
    reply = await pool.run(lambda c: request(c, b"GET\\n"))   # retried on reset, idempotent requests only
"""

from __future__ import annotations

from tcpwise.pool.pool import RETRYABLE, Pool, PoolClosed, PoolConfig, PooledConnection, PoolTimeout
from tcpwise.pool.validate import Liveness, peek_liveness

__all__ = [
    "RETRYABLE",
    "Liveness",
    "Pool",
    "PoolClosed",
    "PoolConfig",
    "PoolTimeout",
    "PooledConnection",
    "peek_liveness",
]

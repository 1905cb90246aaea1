"""The client half of the example pair: requests through tcpwise.pool against examples/guard_server.py.

Run:   python examples/guard_server.py --port 7070 --idle 2 &
       python examples/pool_client.py --port 7070 --server-idle 2 --requests 200 --pause 3

The pause between bursts is longer than the server's idle timeout, which is exactly when a naive pool starts
handing out dead connections; this one retires them first (max_idle_time below the server's idle timeout),
validates on borrow and retries resets, so every request succeeds. The pool's counters are printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from tcpwise.pool import Pool, PoolConfig, PooledConnection
from tcpwise.sockets.logfmt import JsonFormatter


async def echo_request(conn: PooledConnection, payload: bytes) -> bytes:
    conn.writer.write(payload + b"\n")
    await conn.writer.drain()
    return bytes(await conn.reader.readuntil(b"\n"))


async def main(args: argparse.Namespace) -> int:
    cfg = PoolConfig(
        max_size=args.max_size,
        max_idle_time=args.server_idle / 2,  # retire connections well before the server would
        server_idle_timeout=args.server_idle,  # rejects a config that would not
        health_check_interval=min(1.0, args.server_idle / 4),
        leak_timeout=30,
    )
    failures = 0
    async with Pool(args.host, args.port, cfg) as pool:
        for burst in range(args.bursts):

            async def one(i: int, burst: int = burst) -> None:
                nonlocal failures
                msg = b"req %d-%d" % (burst, i)
                try:
                    reply = await pool.run(lambda c: echo_request(c, msg))
                    if reply != msg + b"\n":
                        failures += 1
                except Exception as exc:  # noqa: BLE001 - the example reports, not crashes
                    failures += 1
                    print(f"request failed: {exc!r}", file=sys.stderr)

            await asyncio.gather(*(one(i) for i in range(args.requests // args.bursts)))
            if burst + 1 < args.bursts:
                await asyncio.sleep(args.pause)
        print(json.dumps({"failures": failures, **pool.stats()}))
    return 1 if failures else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7070)
    p.add_argument("--server-idle", type=float, default=10.0, help="the server's idle timeout, seconds")
    p.add_argument("--max-size", type=int, default=10)
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--bursts", type=int, default=4)
    p.add_argument("--pause", type=float, default=1.0)
    a = p.parse_args()
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.WARNING, handlers=[h])
    sys.exit(asyncio.run(main(a)))

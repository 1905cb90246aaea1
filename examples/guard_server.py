"""A line-protocol server protected by tcpwise.guard — the server half of the example pair.

Run:   python examples/guard_server.py --port 7070 --idle 10 --per-ip 50
Then:  python examples/pool_client.py --port 7070

Protocol: each line is echoed back; ``sleep <s>`` answers after <s> seconds (an in-flight request for the
drain demo). SIGTERM (or Ctrl-C) drains: the listener closes at once, requests in flight finish, connections
still open at the deadline are closed with reason ``shutdown``; the close counts are printed on exit.
Logs are one JSON object per line on stderr (``--log-level INFO`` shows every refusal and timeout close).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from tcpwise.guard import Guard, GuardConfig, Keepalive, Limits, Timeouts
from tcpwise.sockets.logfmt import JsonFormatter


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        if line.startswith(b"sleep "):
            secs = min(float(line.split()[1]), 30.0)
            await asyncio.sleep(secs)
            writer.write(b"slept %g\n" % secs)
        else:
            writer.write(line)
        await writer.drain()
    # No writer.close() needed: the guard always closes when the handler returns.


async def main(args: argparse.Namespace) -> int:
    config = GuardConfig(
        limits=Limits(max_connections=args.max_conns, max_per_ip=args.per_ip, accept_rate=args.rate),
        timeouts=Timeouts(first_byte=args.first_byte, idle=args.idle, write=args.write_timeout, drain=2.0),
        keepalive=Keepalive(
            idle=args.ka_idle, interval=args.ka_intvl, count=args.ka_cnt, user_timeout=args.user_timeout
        ),
        close_mode="abortive" if args.rst else "graceful",
    )
    guard = Guard(handle, config)
    if args.metrics_port:
        from prometheus_client import start_http_server

        guard.metrics.register_prometheus()
        start_http_server(args.metrics_port, addr="127.0.0.1")
    server = await guard.start_server(args.host, args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {args.host}:{port}", flush=True)
    drained = guard.install_signal_handlers(timeout=args.drain, signals=(signal.SIGTERM, signal.SIGINT))
    left = await drained
    print(json.dumps({"drained": True, "closed_at_deadline": left, **guard.stats()}), flush=True)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7070)
    p.add_argument("--max-conns", type=int, default=10_000)
    p.add_argument("--per-ip", type=int, default=100)
    p.add_argument("--rate", type=float, default=None, help="new connections per second per IP")
    p.add_argument("--first-byte", type=float, default=5.0)
    p.add_argument("--idle", type=float, default=10.0)
    p.add_argument("--write-timeout", type=float, default=10.0)
    p.add_argument("--ka-idle", type=float, default=30.0)
    p.add_argument("--ka-intvl", type=float, default=5.0)
    p.add_argument("--ka-cnt", type=int, default=3)
    p.add_argument("--user-timeout", type=float, default=20.0)
    p.add_argument("--rst", action="store_true", help="close timed-out connections with RST (no TIME_WAIT)")
    p.add_argument("--drain", type=float, default=10.0, help="seconds to let requests finish on SIGTERM")
    p.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on 127.0.0.1:PORT")
    p.add_argument("--log-level", default="WARNING")
    a = p.parse_args()
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JsonFormatter())
    logging.basicConfig(level=a.log_level, handlers=[h])
    sys.exit(asyncio.run(main(a)))

"""Hostile load on loopback, bounded in count and time: floods, slowloris, and the legitimate clients they hurt.

Used by tcpwise's hostile-load tests and ``bench/bench_guard.py``, and usable against your own loopback server.
Three roles, each meant to run in its own process (``python -m tcpwise.guard.hostile ROLE ...``), talking JSON
lines on stdout:

* ``server``: a line-echo server (``ok <line>`` per line) — ``--kind guard`` (tcpwise.guard with the settings of
  ``tcpwise guard serve``) or ``--kind plain`` (``asyncio.start_server``, the reference) — under a chosen
  ``RLIMIT_NOFILE`` (``--nofile``). Prints ``{"port": P}``, serves until its stdin closes, then prints its memory
  (VmRSS/VmHWM) and counters. Logs go to stderr at ``--log-level``, so a caller can count them.
* ``attack``: keeps up to ``--conns`` connections open from ``--sources`` loopback addresses (127.0.1.1, ...):
  silent (classic slowloris) or sending one byte every ``--trickle`` seconds; a connection the server closes or
  refuses is reopened, at most ``--rate`` new connections per second in total and ``--max-attempts`` overall,
  for ``--seconds``. Prints ``{"ready": ...}`` once the first wave is out, and a summary at the end.
* ``legit``: ``--requests`` one-request connections from 127.0.2.x, one every ``--interval`` seconds (concurrent),
  each ``connect, "GET\\n", read "ok GET\\n"`` within ``--timeout``: prints success count, failures by kind and
  latency percentiles.

All addresses are in 127.0.0.0/8: nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tcpwise.sockets.options import set_abortive

__all__ = ["FloodPlan", "flood", "legit_clients", "guard_config", "percentile", "run_role"]

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # ip(7), Linux >= 4.2


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``xs``; ``nan`` when empty."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def _set_nofile(n: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def _mem_kib() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


async def _connect_from(src: str, host: str, port: int, timeout: float) -> tuple[Any, Any]:
    """A stream connection from ``src`` without reserving a port at bind() (IP_BIND_ADDRESS_NO_PORT), so thousands
    of connections from one source address do not exhaust bind()'s port search."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((src, 0))
        s.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(s, (host, port)), timeout)
        return await asyncio.open_connection(sock=s)
    except BaseException:
        s.close()
        raise


# -- the server role -----------------------------------------------------------------------------------------


def guard_config(fast: bool = False) -> Any:
    """The guard settings ``tcpwise guard serve`` uses (``fast``: shorter timeouts for tests)."""
    from tcpwise.guard import GuardConfig, Limits, Timeouts

    scale = 0.2 if fast else 1.0
    return GuardConfig(
        limits=Limits(),
        timeouts=Timeouts(
            first_byte=5.0 * scale,
            idle=30.0 * scale,
            request=10.0 * scale,
            min_rate=100.0,
            min_rate_grace=2.0 * scale,
        ),
        close_mode="abortive",
        handler_start="first_byte",
    )


async def _line_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(b"ok " + line)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def _serve(kind: str, fast: bool) -> None:
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {}
    if kind == "guard":
        from tcpwise.guard import Guard

        guard = Guard(_line_echo, guard_config(fast))
        server: Any = await guard.start_server("127.0.0.1", 0, backlog=4096)
    else:
        server = await asyncio.start_server(_line_echo, "127.0.0.1", 0, backlog=4096)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    if kind == "guard":
        stats = guard.stats()
    server.close()
    print(json.dumps({"mem_kib": _mem_kib(), "stats": stats}), flush=True)


# -- the attack role -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloodPlan:
    """A bounded flood (see the module docstring)."""

    conns: int = 3000
    sources: int = 1
    seconds: float = 8.0
    rate: float = 3000.0
    max_attempts: int = 60_000
    trickle: float | None = None
    source_prefix: str = "127.0.1."


class _Bucket:
    """Global new-connection pacing for the attacker (token bucket)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = min(rate, 500.0)
        self.stamp = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


async def flood(host: str, port: int, plan: FloodPlan, ready: asyncio.Event | None = None) -> dict[str, Any]:
    """Run the flood until ``plan.seconds`` pass or ``plan.max_attempts`` connections were tried."""
    loop = asyncio.get_running_loop()
    end = loop.time() + plan.seconds
    bucket = _Bucket(plan.rate)
    out: Counter[str] = Counter()
    state = {"open": 0, "peak": 0}

    async def hold(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if plan.trickle is not None:
            w.write(b"G")  # a trickler speaks at once (then a byte per interval): past any first-byte timeout
        while loop.time() < end:
            wait = plan.trickle if plan.trickle is not None else end - loop.time()
            try:
                if await asyncio.wait_for(r.read(1024), max(0.01, min(wait, end - loop.time()))) == b"":
                    out["closed_by_server"] += 1
                    return
            except TimeoutError:
                if plan.trickle is not None:
                    w.write(b"G")
            except ConnectionError:
                out["reset_by_server"] += 1
                return

    async def slot(i: int) -> None:
        src = f"{plan.source_prefix}{1 + i % plan.sources}"
        while loop.time() < end and out["attempts"] < plan.max_attempts:
            await bucket.take()
            out["attempts"] += 1
            try:
                r, w = await _connect_from(src, host, port, timeout=max(0.1, min(3.0, end - loop.time())))
            except (OSError, TimeoutError) as exc:
                out[type(exc).__name__] += 1
                continue
            state["open"] += 1
            state["peak"] = max(state["peak"], state["open"])
            try:
                await hold(r, w)
            finally:
                state["open"] -= 1
                # RST, not FIN: thousands of attacker sockets must not fill the machine's TIME_WAIT table
                # (net.ipv4.tcp_max_tw_buckets), which other tests on the host rely on.
                sock = w.get_extra_info("socket")
                if sock is not None:
                    set_abortive(sock)
                w.close()

    tasks = [loop.create_task(slot(i)) for i in range(plan.conns)]
    if ready is not None:
        loop.call_later(min(plan.seconds, plan.conns / plan.rate + 0.5), ready.set)
    await asyncio.gather(*tasks, return_exceptions=True)
    return {**out, "peak_open": state["peak"]}


# -- the legitimate clients ------------------------------------------------------------------------------------


async def legit_clients(
    host: str,
    port: int,
    requests: int,
    interval: float,
    timeout: float,
    source_prefix: str = "127.0.2.",
    expect: bytes = b"ok GET\n",
) -> dict[str, Any]:
    """``requests`` one-request connections (``GET\n``, answered by ``expect``), one started every ``interval``
    s; success, failures, latencies."""
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    starts: list[float] = []
    fail: Counter[str] = Counter()
    t_begin = time.perf_counter()

    async def one(i: int) -> None:
        t0 = time.perf_counter()  # not loop.time(): uvloop's clock has millisecond resolution
        w = None
        try:
            r, w = await _connect_from(f"{source_prefix}{1 + i % 250}", host, port, timeout)
            w.write(b"GET\n")
            line = await asyncio.wait_for(r.readline(), max(0.001, timeout - (time.perf_counter() - t0)))
            if line != expect:
                fail["bad_reply" if line else "closed"] += 1
                return
            lat.append(time.perf_counter() - t0)
            starts.append(t0 - t_begin)
        except (OSError, TimeoutError) as exc:
            fail[type(exc).__name__] += 1
        finally:
            if w is not None:
                w.close()

    tasks = []
    for i in range(requests):
        tasks.append(loop.create_task(one(i)))
        await asyncio.sleep(interval)
    await asyncio.gather(*tasks)
    return {
        "requests": requests,
        "ok": len(lat),
        "failures": dict(fail),
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": max(lat, default=float("nan")) * 1000,
        "slowest": sorted(((round(x * 1000, 1), round(s, 2)) for x, s in zip(lat, starts, strict=True)))[-5:],
    }


# -- process entry points ----------------------------------------------------------------------------------------


def _run(coro: Any, loop: str) -> Any:
    from tcpwise.sockets.testing import run

    return run(coro, loop)


def run_role(argv: list[str] | None = None) -> int:
    """``python -m tcpwise.guard.hostile ROLE ...`` (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m tcpwise.guard.hostile", description=__doc__)
    ap.add_argument("role", choices=("server", "attack", "legit"))
    ap.add_argument("--kind", choices=("guard", "plain"), default="guard")
    ap.add_argument("--nofile", type=int, default=0, help="RLIMIT_NOFILE soft limit for this process")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--fast", action="store_true", help="server: short timeouts (tests)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--conns", type=int, default=3000)
    ap.add_argument("--sources", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=3000.0)
    ap.add_argument("--max-attempts", type=int, default=60_000)
    ap.add_argument("--trickle", type=float, default=None)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=2.0)
    a = ap.parse_args(argv)
    if a.nofile:
        _set_nofile(a.nofile)
    if a.role == "server":
        logging.basicConfig(level=a.log_level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
        _run(_serve(a.kind, a.fast), a.loop)
        return 0
    if a.role == "attack":
        plan = FloodPlan(a.conns, a.sources, a.seconds, a.rate, a.max_attempts, a.trickle)
        print(json.dumps(_run(_attack_main(a.port, plan), a.loop)), flush=True)
        return 0
    print(json.dumps(_run(legit_clients("127.0.0.1", a.port, a.requests, a.interval, a.timeout), a.loop)))
    return 0


async def _attack_main(port: int, plan: FloodPlan) -> dict[str, Any]:
    ready = asyncio.Event()
    task = asyncio.get_running_loop().create_task(flood("127.0.0.1", port, plan, ready))
    await ready.wait()
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    return await task


if __name__ == "__main__":
    sys.exit(run_role())

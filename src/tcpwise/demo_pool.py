"""``tcpwise demo pool``: the "connection count keeps growing" problem and its fix, live on loopback.

A guarded server closes keep-alive connections idle for 0.3 s (FIN), as real servers do. A client sends bursts
of concurrent requests with pauses longer than that. Two client pools serve the same workload:

* a **naive pool** — hands out whatever it has, never checks; a request on a connection the server already
  closed fails ("Connection reset by peer" / EOF mid-response); the code drops that connection from the idle
  list without closing it and retries on a new one. Sockets pile up: in CLOSE_WAIT while they wait in the pool,
  then as dead descriptors the process still holds.
* **tcpwise.pool** — validates on borrow (MSG_PEEK), evicts connections idle longer than 0.2 s (below the
  server's 0.3 s), retries a reset request with backoff, and always closes what it drops.

Every number printed is counted in this run: errors the application saw, connections opened, sockets the
process still holds, and the kernel's view of the client sockets (/proc/net/tcp).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["run_pool_demo"]

SERVER_IDLE = 0.3
POOL_IDLE = 0.2
ROUNDS = 6
BURST = 8
PAUSE = 0.45


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class NaivePool:
    """The naive pool: no validation, no eviction, dead connections dropped but never closed."""

    host: str
    port: int
    idle: list[_Conn] = field(default_factory=list)
    everything: list[_Conn] = field(default_factory=list)  # "for cleanup at shutdown" - the only close path
    opened: int = 0

    async def get(self) -> _Conn:
        if self.idle:
            return self.idle.pop()
        r, w = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        c = _Conn(r, w)
        self.everything.append(c)
        return c

    def put(self, c: _Conn) -> None:
        self.idle.append(c)

    def held(self) -> int:
        return sum(1 for c in self.everything if not c.writer.transport.is_closing())

    async def shutdown(self) -> None:
        for c in self.everything:
            c.writer.close()
        await asyncio.sleep(0.05)


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
    writer.write(b"GET %d\n" % n)
    await writer.drain()
    reply = await reader.readuntil(b"\n")
    if reply != b"GET %d\n" % n:
        raise ValueError(f"wrong reply {reply!r}")


Kernel = Callable[[], tuple[int, int, int]]
Row = tuple[int, int, int, int, tuple[int, int, int]]


def _table(p: Callable[[str], None], rows: list[Row]) -> None:
    p("round  errors  opened  sockets held  client ESTAB/CLOSE_WAIT/TIME_WAIT")
    for rnd, errs, opened, held, (e, cw, tw) in rows:
        p(f"{rnd:>5}  {errs:>6}  {opened:>6}  {held:>12}  {e:>5}/{cw}/{tw}")


async def _naive_part(port: int, p: Callable[[str], None], kernel: Kernel) -> dict[str, int]:
    from tcpwise.pool import RETRYABLE

    naive = NaivePool("127.0.0.1", port)
    count = {"errors": 0, "failed": 0}
    kinds: dict[str, int] = {}
    rows: list[Row] = []
    naive_errors: tuple[type[BaseException], ...] = (*RETRYABLE, ValueError)

    async def naive_one(n: int) -> None:
        for _attempt in range(2):  # the usual "retry once" - on whatever the naive pool hands out
            c = await naive.get()
            try:
                await _request(c.reader, c.writer, n)
            except naive_errors as exc:
                count["errors"] += 1
                if isinstance(exc, ConnectionResetError):
                    name = "reset by peer"
                elif isinstance(exc, asyncio.IncompleteReadError):
                    name = "EOF before the answer"
                else:
                    name = type(exc).__name__
                kinds[name] = kinds.get(name, 0) + 1
                continue  # dropped from the pool, never closed
            naive.put(c)
            return
        count["failed"] += 1

    for rnd in range(1, ROUNDS + 1):
        before = count["errors"]
        base = (rnd - 1) * BURST
        await asyncio.gather(*(naive_one(base + i) for i in range(BURST)), return_exceptions=True)
        await asyncio.sleep(PAUSE)
        rows.append(
            (rnd, count["errors"] - before, naive.opened, naive.held(), await asyncio.to_thread(kernel))
        )
    close_wait, held, opened = kernel()[1], naive.held(), naive.opened
    await naive.shutdown()
    n = ROUNDS * BURST
    p("naive pool (no validation, no eviction, drops dead connections unclosed)")
    _table(p, rows)
    p(f"  -> {count['errors']} errors seen by the application")
    p(f"     ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))});")
    p(f"     {count['failed']} of {n} requests failed even after one retry;")
    p(f"     {opened} connections opened for {n} requests;")
    p(f"     {held} sockets still held by the process, {close_wait} of them in")
    if close_wait < held:
        p("     CLOSE_WAIT (the rest got RST: CLOSED in the kernel, but their")
        p("     descriptors leak until the process exits)")
    else:
        p("     CLOSE_WAIT: the server closed them, the application never will")
    p("")
    return {"errors": count["errors"], "held": held}


async def _fixed_part(port: int, p: Callable[[str], None], kernel: Kernel) -> dict[str, int]:
    from tcpwise.pool import Pool, PoolConfig

    cfg = PoolConfig(
        max_size=BURST, max_idle_time=POOL_IDLE, server_idle_timeout=SERVER_IDLE, health_check_interval=0.1
    )
    errors = 0
    rows: list[Row] = []
    async with Pool("127.0.0.1", port, cfg) as pool:

        async def fixed_one(k: int) -> None:
            nonlocal errors
            try:
                await pool.run(lambda c: _request(c.reader, c.writer, k))
            except Exception:  # noqa: BLE001 - counted and reported
                errors += 1

        for rnd in range(1, ROUNDS + 1):
            before = errors
            base = (ROUNDS + rnd - 1) * BURST
            await asyncio.gather(*(fixed_one(base + i) for i in range(BURST)))
            await asyncio.sleep(PAUSE)
            opened = pool.stats()["opened_total"]
            rows.append((rnd, errors - before, opened, pool.size, await asyncio.to_thread(kernel)))
        st = pool.stats()
        close_wait = kernel()[1]
        held = pool.size
    p(f"tcpwise.pool (validate on borrow, max_idle_time {POOL_IDLE} s < server idle")
    p(f"{SERVER_IDLE} s, retry)")
    _table(p, rows)
    closed = ", ".join(f"{v} {k}" for k, v in sorted(st["closed_total"].items()))
    p(f"  -> {errors} errors seen by the application, {errors} of {ROUNDS * BURST} requests failed;")
    p(f"     {st['opened_total']} connections opened, {sum(st['closed_total'].values())} closed by the pool")
    p(f"     ({closed}), {st['retries_total']} retries, {held} sockets held at the end,")
    p(f"     {close_wait} in CLOSE_WAIT")
    p("")
    return {"errors": errors, "held": held, "close_wait": close_wait}


async def _demo(out: TextIO) -> int:
    from tcpwise.guard import Guard, GuardConfig, Timeouts
    from tcpwise.sockets.procnet import count_states

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()

    guard = Guard(echo, GuardConfig(timeouts=Timeouts(idle=SERVER_IDLE)))
    server = await guard.start_server("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def p(s: str) -> None:
        print(s, file=out)

    def kernel() -> tuple[int, int, int]:
        st = count_states(remote_port=port)  # client-side sockets: their remote port is the server's
        return st["ESTABLISHED"], st["CLOSE_WAIT"], st["TIME_WAIT"]

    p('tcpwise demo pool - "the connection count keeps growing", on loopback')
    p(f"server: guarded echo on 127.0.0.1:{port}, closes connections idle {SERVER_IDLE} s")
    p(f"client: {ROUNDS} rounds of {BURST} concurrent requests, {PAUSE} s pauses (> server idle)")
    p("")
    naive = await _naive_part(port, p, kernel)
    await asyncio.sleep(0.1)
    fixed = await _fixed_part(port, p, kernel)
    for line in (
        "Why: the server's FIN only moves an idle client socket to CLOSE_WAIT;",
        "nothing tells the application until it writes and gets RST. Retire",
        "connections before the server does (pool idle < server idle), check them",
        "on borrow, retry idempotent requests, and always close what you drop.",
        "(TIME_WAIT on the client is the price of closing first: harmless at this",
        "rate, see `tcpwise sim timewait-pileup`.)",
    ):
        p(line)
    server.close()
    ok = (
        naive["errors"] > 0
        and fixed["errors"] == 0
        and fixed["close_wait"] == 0
        and naive["held"] > fixed["held"]
    )
    return 0 if ok else 1


def run_pool_demo(out: TextIO = sys.stdout) -> int:
    """Print the naive-vs-fixed pool comparison; 0 when it showed what it claims (naive fails, fixed does not)."""
    return asyncio.run(_demo(out))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_pool_demo())

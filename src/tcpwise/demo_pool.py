"""``tcpwise demo pool``: the notes' "connection count keeps growing" problem and its fix, live on loopback.

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
    """The pool the notes warn about: no validation, no eviction, dead connections dropped but never closed."""

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


async def _demo(out: TextIO) -> int:
    from tcpwise.guard import Guard, GuardConfig, Timeouts
    from tcpwise.pool import RETRYABLE, Pool, PoolConfig
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

    p('tcpwise demo pool - the notes\' "connection count keeps growing" problem, on loopback')
    p(f"server: guarded echo on 127.0.0.1:{port}, closes connections idle for {SERVER_IDLE} s (FIN)")
    p(
        f"client: {ROUNDS} rounds of {BURST} concurrent requests, {PAUSE} s pause between rounds (> server idle)"
    )
    p("")

    def kernel() -> tuple[int, int, int]:
        st = count_states(remote_port=port)  # client-side sockets: their remote port is the server's
        return st["ESTABLISHED"], st["CLOSE_WAIT"], st["TIME_WAIT"]

    # -- naive ------------------------------------------------------------------------------------------------
    naive = NaivePool("127.0.0.1", port)
    n_errors = 0
    kinds: dict[str, int] = {}
    rows: list[tuple[int, int, int, int, tuple[int, int, int]]] = []

    n_failed = 0
    naive_errors: tuple[type[BaseException], ...] = (*RETRYABLE, ValueError)

    async def naive_one(n: int) -> None:
        nonlocal n_errors, n_failed
        for _attempt in range(2):  # the usual "retry once" - on whatever the naive pool hands out
            c = await naive.get()
            try:
                await _request(c.reader, c.writer, n)
            except naive_errors as exc:
                n_errors += 1
                if isinstance(exc, ConnectionResetError):
                    name = "Connection reset by peer"
                elif isinstance(exc, asyncio.IncompleteReadError):
                    name = "server closed before answering (EOF)"
                else:
                    name = type(exc).__name__
                kinds[name] = kinds.get(name, 0) + 1
                continue  # dropped from the pool, never closed
            naive.put(c)
            return
        n_failed += 1

    n = 0
    for rnd in range(1, ROUNDS + 1):
        before = n_errors
        await asyncio.gather(*(naive_one(n + i) for i in range(BURST)), return_exceptions=True)
        n += BURST
        await asyncio.sleep(PAUSE)
        rows.append((rnd, n_errors - before, naive.opened, naive.held(), await asyncio.to_thread(kernel)))
    naive_close_wait = kernel()[1]
    naive_held = naive.held()
    naive_opened = naive.opened
    await naive.shutdown()

    p("naive pool (no validation, no eviction, drops dead connections without closing them)")
    p("round  errors  opened  sockets held  client ESTAB/CLOSE_WAIT/TIME_WAIT (after the pause)")
    for rnd, errs, opened, held, (e, cw, tw) in rows:
        p(f"{rnd:>5}  {errs:>6}  {opened:>6}  {held:>12}  {e:>5}/{cw}/{tw}")
    p(
        f"  -> {n_errors} errors seen by the application ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}),"
    )
    p(
        f"     {n_failed} of {n} requests failed even after one retry; {naive_opened} connections opened for {n} requests;"
    )
    p(
        f"     {naive_held} sockets still held by the process, {naive_close_wait} of them in CLOSE_WAIT (the rest got RST:"
    )
    p("     CLOSED in the kernel, but their descriptors leak until the process exits)")
    p("")
    await asyncio.sleep(0.1)

    # -- tcpwise.pool -------------------------------------------------------------------------------------------
    cfg = PoolConfig(
        max_size=BURST, max_idle_time=POOL_IDLE, server_idle_timeout=SERVER_IDLE, health_check_interval=0.1
    )
    f_errors = 0
    rows = []
    async with Pool("127.0.0.1", port, cfg) as pool:

        async def fixed_one(k: int) -> None:
            nonlocal f_errors
            try:
                await pool.run(lambda c: _request(c.reader, c.writer, k))
            except Exception:  # noqa: BLE001 - counted and reported
                f_errors += 1

        for rnd in range(1, ROUNDS + 1):
            before = f_errors
            await asyncio.gather(*(fixed_one(n + i) for i in range(BURST)))
            n += BURST
            await asyncio.sleep(PAUSE)
            st = pool.stats()
            rows.append(
                (rnd, f_errors - before, st["opened_total"], pool.size, await asyncio.to_thread(kernel))
            )
        st = pool.stats()
        fixed_close_wait = kernel()[1]
        fixed_held = pool.size
    p(f"tcpwise.pool (validate on borrow, max_idle_time {POOL_IDLE} s < server idle {SERVER_IDLE} s, retry)")
    p("round  errors  opened  sockets held  client ESTAB/CLOSE_WAIT/TIME_WAIT (after the pause)")
    for rnd, errs, opened, held, (e, cw, tw) in rows:
        p(f"{rnd:>5}  {errs:>6}  {opened:>6}  {held:>12}  {e:>5}/{cw}/{tw}")
    evicted = sum(st["closed_total"].values())
    p(
        f"  -> {f_errors} errors seen by the application, {f_errors} of {ROUNDS * BURST} requests failed; {st['opened_total']} connections opened, "
        f"{evicted} closed by the pool ({', '.join(f'{v} {k}' for k, v in sorted(st['closed_total'].items()))}),"
    )
    p(
        f"     {st['retries_total']} retries, {fixed_held} sockets held at the end, {fixed_close_wait} in CLOSE_WAIT"
    )
    p("")
    p(
        "Why: the server's FIN only moves an idle client socket to CLOSE_WAIT; nothing tells the application until"
    )
    p(
        "it writes and gets RST. Retire connections before the server does (pool idle < server idle), check them"
    )
    p("on borrow, retry idempotent requests, and always close what you drop. (TIME_WAIT on the client is the")
    p("price of closing first: harmless at this rate, see `tcpwise sim timewait-pileup`.)")
    server.close()
    ok = n_errors > 0 and f_errors == 0 and fixed_close_wait == 0 and naive_held > fixed_held
    return 0 if ok else 1


def run_pool_demo(out: TextIO = sys.stdout) -> int:
    """Print the naive-vs-fixed pool comparison; 0 when it showed what it claims (naive fails, fixed does not)."""
    return asyncio.run(_demo(out))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_pool_demo())

"""The user-space stack as a listening surface under attack: damaged and hostile packets, and a SYN flood.

A tcpwise host listens for real clients (probe targets, the interop tests): whatever arrives on its link must
neither raise out of the receive path, nor grow its tables without bound, nor stop it serving an honest client
afterwards. Two hosts are joined in memory; the attacker writes raw packets straight onto the wire.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from stacknet import same_bytes

from tcpwise.endpoint import LINUX
from tcpwise.stack import Host, memory_pair, open_connection, start_server
from tcpwise.vocab import ACK, FIN, PSH, RST, SYN, URG
from tcpwise.wire import IPv4Header, WireError, emit_ip
from tcpwise.wire.ip import build_packet
from tcpwise.wire.segment import (
    MssOption,
    NopOption,
    SackOption,
    SackPermittedOption,
    TcpSegment,
    TimestampsOption,
    UnknownOption,
    WindowScaleOption,
)
from tcpwise.wire.tcp import emit_options

A4, B4, A6, B6 = "198.18.64.1", "198.18.64.254", "fd00:64::1", "fd00:64::fe"
CFG = LINUX.with_(wscale=7)
PACKETS = 20_000  # hostile packets per run: bounded, about 2 s of the stack's Python
BACKLOG = 64


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def _options(rng: random.Random) -> tuple[Any, ...]:
    pool: list[Any] = [
        MssOption(rng.choice([0, 1, 88, 536, 1460, 65535])),
        WindowScaleOption(rng.choice([0, 7, 14, 15, 255])),
        SackPermittedOption(),
        TimestampsOption(rng.getrandbits(32), rng.getrandbits(32)),
        SackOption(tuple((rng.getrandbits(32), rng.getrandbits(32)) for _ in range(rng.randint(1, 3)))),
        UnknownOption(rng.choice([6, 19, 30, 34, 253]), bytes(rng.randint(0, 6))),
        NopOption(),
    ]
    opts = tuple(rng.sample(pool, rng.randint(0, 4)))
    # More than 40 bytes of options cannot be encoded (the codec says so): drop from the end until they fit.
    while True:
        try:
            emit_options(opts)
            return opts
        except WireError:
            opts = opts[:-1]


def _hostile(rng: random.Random, known: list[tuple[int, int]]) -> bytes:
    """One packet for B: garbage, a valid segment with hostile fields, or a valid one with a byte flipped."""
    kind = rng.random()
    if kind < 0.15:
        return rng.randbytes(rng.randint(0, 80))
    v6 = rng.random() < 0.3
    src = (
        f"fd00:64::{rng.randint(2, 0xFFF):x}" if v6 else f"198.18.{rng.randint(0, 255)}.{rng.randint(1, 253)}"
    )
    dst = B6 if v6 else B4
    if known and rng.random() < 0.3:  # aim at the honest connection's 4-tuple: blind in-window attacks
        sport, seq = known[0]
        src = A6 if v6 else A4
        seq = (seq + rng.randint(-70000, 70000)) % (1 << 32)
    else:
        sport, seq = rng.randint(1, 65535), rng.getrandbits(32)
    flags = rng.choice([SYN, SYN | ACK, ACK, RST, RST | ACK, FIN | ACK, PSH | ACK, URG | ACK, 0, 0xFF])
    seg = TcpSegment(
        sport,
        rng.choice([7, 7, 7, 9, rng.randint(1, 65535)]),
        seq,
        rng.getrandbits(32),
        flags,
        rng.choice([0, 1, 65535, rng.randint(0, 65535)]),
        _options(rng),
        rng.randbytes(rng.choice([0, 0, 1, 100, 1460])),
        urgent=rng.choice([0, 0, 65535]),
    )
    pkt = build_packet(src, dst, seg, ttl=rng.randint(1, 255))
    if kind < 0.35:
        b = bytearray(pkt)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    return pkt


def _run(body: Any) -> list[dict[str, Any]]:
    """Run ``body(a, b, la)`` on two hosts joined in memory; returns what the loop's exception handler saw."""
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        la, lb = memory_pair()
        a = Host(la, [A4, A6], CFG, name="A")
        b = Host(lb, [B4, B6], CFG, name="B")
        a.start()
        b.start()
        try:
            await asyncio.wait_for(body(a, b, la), 60)
        finally:
            a.close()
            b.close()

    asyncio.run(main())
    return errors


def test_damaged_and_hostile_packets_break_nothing() -> None:
    """20,000 packets of garbage, hostile fields, blind in-window RST/SYN/data on a live connection's 4-tuple and
    flipped bits: nothing raises out of the receive path, the tables stay bounded, and an honest echo (the live
    connection if the blind attacks left it up — RFC 5961 makes them unlikely to succeed — and a new one) is
    byte-exact afterwards."""
    rng = random.Random(20261203)
    blob = rng.randbytes(200_000)
    seen: dict[str, int] = {}

    async def body(a: Host, b: Host, la: Any) -> None:
        await start_server(b, _echo, port=7, backlog=BACKLOG)
        r, w = await open_connection(a, B4, 7)
        sport = w.get_extra_info("sockname")[1]
        ep = next(iter(a.connections()))
        known = [(sport, ep.snd_nxt)]
        peak = 0
        for i in range(PACKETS):
            la.send(_hostile(rng, known))
            if i % 200 == 0:
                await asyncio.sleep(0)  # let B take what is queued (and answer it) as a real link would
                peak = max(peak, sum(1 for _ in b.connections()))
        await asyncio.sleep(0.05)
        seen["peak"] = peak
        seen["bad"] = b.stats.rx_bad
        # The honest client: a new connection echoes exactly.
        r2, w2 = await open_connection(a, B6, 7)
        w2.write(blob)
        w2.write_eof()
        same_bytes(await r2.read(-1), blob)
        w2.close()
        w.close()

    errors = _run(body)
    assert errors == [], errors[:3]
    # SYN-queue children of spoofed SYNs are bounded by the backlog (Linux lets backlog + 1 in; then cookies: no
    # state at all), per listener: a server on every address has one per address (IPv4 and IPv6 here).
    assert seen["peak"] <= 2 * (BACKLOG + 1) + 1, seen
    assert seen["bad"] > 1000, seen  # the flipped bits and the garbage were seen and counted as bad


def _flood() -> tuple[list[dict[str, Any]], int]:
    """30,000 spoofed SYNs to B:7 with an honest client connecting halfway; (loop errors, peak connections)."""
    rng = random.Random(7)
    seen: dict[str, int] = {}

    async def body(a: Host, b: Host, la: Any) -> None:
        await start_server(b, _echo, port=7, backlog=BACKLOG)
        peak = 0
        honest: asyncio.Task[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None
        for i in range(30_000):
            src = f"198.18.{rng.randint(100, 199)}.{rng.randint(1, 253)}"
            seg = TcpSegment(
                rng.randint(1024, 65535), 7, rng.getrandbits(32), 0, SYN, 64240, (MssOption(1460),)
            )
            la.send(build_packet(src, B4, seg))
            if i % 250 == 0:
                await asyncio.sleep(0)
                peak = max(peak, sum(1 for _ in b.connections()))
            if i == 15_000:
                honest = asyncio.create_task(open_connection(a, B4, 7))
        assert honest is not None
        r, w = await honest
        w.write(b"still here")
        w.write_eof()
        assert await r.read(-1) == b"still here"
        w.close()
        seen["peak"] = peak

    errors = _run(body)
    return errors, seen.get("peak", -1)


def test_a_syn_flood_leaves_the_listener_bounded_and_serving() -> None:
    """30,000 spoofed SYNs: the SYN queue holds at most its backlog (the rest get SYN cookies and cost nothing),
    and an honest client connecting in the middle of the flood is served."""
    errors, peak = _flood()
    assert errors == [], errors[:3]
    assert peak <= BACKLOG + 2, peak  # IPv4 only: one SYN queue (backlog + 1) and the honest connection


def test_a_planted_unbounded_syn_queue_is_caught(monkeypatch: Any) -> None:
    """A test must be able to fail: a listener whose SYN queue is never full keeps state for every spoofed SYN."""
    from tcpwise.endpoint.listener import Listener

    monkeypatch.setattr(Listener, "syn_queue_full", lambda self: False)
    errors, peak = _flood()
    assert errors == [] and peak > 10 * BACKLOG, peak


def test_a_planted_crash_in_the_receive_path_is_caught(monkeypatch: Any) -> None:
    """A test must be able to fail: a receive path that raises on a SYN with a zero window shows up as a loop
    exception."""
    from tcpwise.endpoint.stack import TcpStack

    real = TcpStack.receive

    def fragile(self: TcpStack, src: str, dst: str, seg: TcpSegment, now: float) -> None:
        if seg.flags == SYN and seg.window == 0:
            raise ValueError("zero window in a SYN")
        real(self, src, dst, seg, now)

    monkeypatch.setattr(TcpStack, "receive", fragile)
    rng = random.Random(20261203)

    async def body(a: Host, b: Host, la: Any) -> None:
        await start_server(b, _echo, port=7, backlog=BACKLOG)
        for _ in range(2000):
            la.send(_hostile(rng, []))
        la.send(build_packet(A4, B4, TcpSegment(1, 7, 0, 0, SYN, 0)))
        await asyncio.sleep(0.05)

    assert _run(body), "the planted exception reached the loop's handler"


def test_ipv4_options_and_odd_headers_are_not_taken_for_tcp() -> None:
    """IPv4 headers with options (IHL > 5) carrying TCP, and protocols other than TCP, take the other paths
    (ICMP unreachable with rate limit, or bad), never an exception."""
    rng = random.Random(3)

    async def body(a: Host, b: Host, la: Any) -> None:
        for _ in range(500):
            proto = rng.choice([6, 17, 1, 41, 58, 132, 255])
            hdr = IPv4Header(
                src=A4, dst=B4, proto=proto, ttl=64, options=rng.randbytes(4 * rng.randint(0, 10))
            )
            la.send(emit_ip(hdr, rng.randbytes(rng.randint(0, 60))))
        await asyncio.sleep(0.05)

    assert _run(body) == []

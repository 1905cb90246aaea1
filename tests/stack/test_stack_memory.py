"""The stack without a kernel: two tcpwise hosts joined in memory, driven by a real asyncio loop.

What is checked here is the glue — asyncio streams semantics over the endpoint, ICMP answers, the event log —
not TCP itself (tests/endpoint) and not interoperability (tests/stack/test_stack_kernel.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import pytest
from stacknet import same_bytes

from tcpwise.endpoint import LINUX
from tcpwise.render import render
from tcpwise.stack import Host, memory_pair, open_connection, start_server
from tcpwise.stack.streams import StackTransport
from tcpwise.wire import IPv4Header, emit_ip, parse_ip
from tcpwise.wire.icmp import ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, IcmpMessage, icmp_packet, parse_icmp

A4, B4, A6, B6 = "198.18.64.1", "198.18.64.254", "fd00:64::1", "fd00:64::fe"
CFG = LINUX.with_(wscale=7, rcv_buf=1 << 20)


def run(coro_fn: Callable[[Host, Host], Awaitable[None]], record: bool = False) -> tuple[Host, Host]:
    async def main() -> tuple[Host, Host]:
        la, lb = memory_pair()
        a = Host(la, [A4, A6], CFG, name="A", record=record, peer_names={B4: "B", B6: "B"})
        b = Host(lb, [B4, B6], CFG, name="B")
        a.start()
        b.start()
        try:
            await asyncio.wait_for(coro_fn(a, b), 30)
        finally:
            a.close()
            b.close()
        return a, b

    return asyncio.run(main())


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.mark.parametrize("addr", [B4, B6])
def test_echo_bulk_both_families(addr: str) -> None:
    blob = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB

    async def body(a: Host, b: Host) -> None:
        await start_server(b, echo, port=7)
        r, w = await open_connection(a, addr, 7)
        assert w.get_extra_info("peername")[:2] == (addr, 7)

        async def send() -> None:
            w.write(blob)
            await w.drain()
            w.write_eof()

        task = asyncio.create_task(send())
        got = await r.read(-1)
        await task
        same_bytes(got, blob)
        w.close()
        await w.wait_closed()

    run(body)


def test_refused_and_reset_become_socket_errors() -> None:
    async def body(a: Host, b: Host) -> None:
        with pytest.raises(ConnectionRefusedError):
            await open_connection(a, B4, 9)

        async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(1)
            writer.transport.abort()  # SO_LINGER {1, 0}: RST

        await start_server(b, rude, port=8)
        r, w = await open_connection(a, B4, 8)
        w.write(b"x")
        with pytest.raises(ConnectionResetError):
            await r.read(10)

    run(body)


def test_close_with_unread_data_sends_rst_like_linux() -> None:
    async def body(a: Host, b: Host) -> None:
        async def closer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # As with a kernel socket under asyncio: data already pulled into the StreamReader is "read";
            # with reading paused the client's bytes stay in the endpoint (the socket buffer) unread.
            writer.transport.pause_reading()  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
            writer.close()

        await start_server(b, closer, port=9)
        r, w = await open_connection(a, B4, 9)
        w.write(b"unread")
        await w.drain()
        with pytest.raises(ConnectionResetError):
            await r.read(10)

    run(body)


def test_half_close_keeps_the_other_direction_open() -> None:
    async def body(a: Host, b: Host) -> None:
        async def later(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read(-1)  # until the client's FIN
            writer.write(data.upper())
            await writer.drain()
            writer.close()

        await start_server(b, later, port=10)
        r, w = await open_connection(a, B4, 10)
        w.write(b"after eof")
        w.write_eof()
        assert await r.read(-1) == b"AFTER EOF"

    run(body)


def test_a_paused_reader_closes_the_window_and_stalls_the_writer() -> None:
    async def body(a: Host, b: Host) -> None:
        held: list[StackTransport] = []

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            t = writer.transport
            assert isinstance(t, StackTransport)
            t.pause_reading()
            held.append(t)
            await asyncio.sleep(10)

        await start_server(b, sink, port=11, cfg=LINUX.with_(rcv_buf=20_000))
        r, w = await open_connection(a, B4, 11)
        w.write(b"z" * 2_000_000)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(w.drain(), 0.5)
        ep = held[0].ep
        # The buffer, then the window is zero. When the new window would shrink the offered one, Linux offers the
        # old one rounded up to its scale unit (tcp_select_window: ALIGN(cur_win, 1 << rcv_wscale)) and then
        # accepts what it promised: a few units beyond the buffer arrive, never a segment more.
        assert 20_000 <= ep.readable < 20_000 + ep.cfg.mss, (ep.readable, ep.rcv_wscale)
        assert ep.rcv_adv == 0
        held[0].resume_reading()
        w.transport.abort()

    run(body)


def _echo_request(src: str, dst: str) -> bytes:
    return icmp_packet(src, dst, IcmpMessage(8, 0, 0x42_0001, b"ping"))


def test_icmp_echo_and_port_unreachable() -> None:
    async def body(a: Host, b: Host) -> None:
        got: list[bytes] = []
        a.link._deliver = got.extend  # type: ignore[attr-defined]  # look at what b answers
        b.link.peer._deliver = got.extend  # type: ignore[attr-defined]
        a.link.send(_echo_request(A4, B4))
        udp = emit_ip(IPv4Header(A4, B4, proto=17), b"\x30\x39\x00\x35\x00\x0c\x00\x00abcd")
        a.link.send(udp)
        await asyncio.sleep(0.05)
        msgs = []
        for pkt in got:
            hdr, payload = parse_ip(pkt, verify=True)
            msgs.append(parse_icmp(payload, False))
        assert [(m.type, m.code) for m in msgs] == [(ICMP_ECHO_REPLY, 0), (ICMP_DEST_UNREACH, 3)]
        assert msgs[0].body == b"ping" and msgs[0].rest == 0x42_0001

    run(body)


def test_icmp_unreachable_fails_a_connect() -> None:
    async def body(a: Host, b: Host) -> None:
        def unreachable_router(pkt: bytes) -> bool:
            hdr, _ = parse_ip(pkt)
            if hdr.proto == 6:  # answer the SYN with "host unreachable" instead of delivering it
                from tcpwise.wire.icmp import unreachable

                a.link._deliver([icmp_packet(B4, A4, unreachable(pkt, 1, False))])  # type: ignore[attr-defined]
                return True
            return False

        a.link.drop = unreachable_router  # type: ignore[attr-defined]
        with pytest.raises(OSError) as err:
            await open_connection(a, B4, 80)
        assert err.value.errno == 113  # EHOSTUNREACH

    run(body)


def test_event_log_draws_with_the_shared_renderers() -> None:
    async def body(a: Host, b: Host) -> None:
        await start_server(b, echo, port=7)
        r, w = await open_connection(a, B4, 7)
        w.write(b"hi")
        assert await r.readexactly(2) == b"hi"
        w.close()
        await asyncio.sleep(0.05)

    a, _ = run(body, record=True)
    from tcpwise.events import Host as RunHost
    from tcpwise.events import Run

    kinds = [e.kind for e in a.log]
    assert kinds.count("send") >= 4 and kinds.count("recv") >= 4
    states = [(e.from_state, e.to_state) for e in a.log if e.kind == "state"]
    assert states[:2] == [("CLOSED", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED")]
    assert ("ESTABLISHED", "FIN_WAIT_1") in states
    r = Run("echo", hosts=[RunHost("A", A4), RunHost("B", B4)], events=a.log, world="stack")
    svg = render(r, "svg")
    assert isinstance(svg, str) and "<svg" in svg and "SYN_SENT" in svg


def test_planted_bug_in_the_read_path_turns_the_echo_check_red(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test must be able to fail: a transport that loses every other chunk breaks the byte-exact echo."""
    real = StackTransport._pull
    calls = [0]

    def lossy(self: StackTransport) -> None:
        calls[0] += 1
        if calls[0] % 2 == 0 and self.ep.readable:
            self.ep.recv()  # read and drop
        real(self)

    monkeypatch.setattr(StackTransport, "_pull", lossy)
    with pytest.raises(AssertionError):
        test_echo_bulk_both_families(B4)

"""Kernel interop helpers and the namespaces fixture: namespaces R (holding the TUN device, forwarding) and B (an ordinary Linux host).

    tcpwise host 198.18.2.1 / fd00:2::1 ==TUN== R ==veth== B 198.18.1.1 / fd00:1::1

R forwards between the TUN device and the veth, so nftables rules in R's forward hook (the lab's Faults) see
every segment between the tcpwise host and B, once, in its direction.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

from tcpwise.endpoint import LINUX, EndpointConfig

HOST4, HOST6 = "198.18.2.1", "fd00:2::1"
B4, B6 = "198.18.1.1", "fd00:1::1"
KPEER = os.path.join(os.path.dirname(__file__), "kpeer.py")
CFG = LINUX.with_(wscale=7, rcv_buf=4 << 20, snd_buf=4 << 20)


def same_bytes(got: bytes, want: bytes) -> None:
    """Fail with one short line where two byte strings part.

    A plain ``assert got == want`` on megabytes makes pytest build a difflib report of the two reprs, which can
    take longer than the test's timeout; the first differing offset and the lengths say all that matters.
    """
    if got == want:
        return
    at = next(
        (i for i, (x, y) in enumerate(zip(got, want, strict=False)) if x != y), min(len(got), len(want))
    )
    raise AssertionError(f"bytes differ from offset {at}: got {len(got)} bytes, expected {len(want)}")


@dataclass
class Net:
    world: object
    r: str
    b: str

    def host(self, cfg: EndpointConfig = CFG, record: bool = False):  # type: ignore[no-untyped-def]
        from tcpwise.probe.world import tun_into, tun_name
        from tcpwise.stack import Host, TunLink

        dev = tun_into(self.r, tun_name(), ["198.18.2.254/24", "fd00:2::fe/64"], txqueuelen=5000)
        return Host(
            TunLink(dev), [HOST4, HOST6], cfg, name="tcpwise", record=record, peer_names={B4: "B", B6: "B"}
        )

    async def kernel(self, *argv: str) -> asyncio.subprocess.Process:
        """Start a command in B with piped stdout (the test reads it)."""
        return await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            self.b,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def kpeer(self, *args: str) -> asyncio.subprocess.Process:
        return await self.kernel(sys.executable, KPEER, *args)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    from tcpwise.probe.world import World

    with World() as w:
        r = w.add_ns("r", {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"})
        b = w.add_ns("b")
        w.veth(r, "rb", b, "eth0")
        w.addr(r, "rb", "198.18.1.254/24")
        w.addr(r, "rb", "fd00:1::fe/64")
        w.addr(b, "eth0", f"{B4}/24")
        w.addr(b, "eth0", f"{B6}/64")
        w.route(b, "default", "via", "198.18.1.254")
        w.route(b, "default", "via", "fd00:1::fe")
        yield Net(w, r, b)


def drive(net: Net, body: Callable[..., Awaitable[None]], timeout: float = 60, **host_kw: object) -> object:
    """Run ``body(host)`` on a fresh tcpwise host in R; the host and its TUN device are gone afterwards."""

    async def main() -> object:
        host = net.host(**host_kw)  # type: ignore[arg-type]
        host.start()
        try:
            return await asyncio.wait_for(body(host), timeout)
        finally:
            host.abort_all()
            host.close()

    return asyncio.run(main())

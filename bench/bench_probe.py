"""Benchmark: the tcpwise TUN host against the kernel, side by side with kernel-to-kernel on the same path.

Topology (namespaces named after this process, removed on exit)::

    A 198.18.3.1 (kernel) --veth--+
                                  R (forwards) --veth-- B 198.18.1.1 (kernel)
    tcpwise host 198.18.2.1 ==TUN=+

1. Bulk throughput, MB/s, one connection, ``--mbytes`` MB:
   kernel A -> kernel B (the limit: the same R -> B veth path), tcpwise host -> kernel B, kernel B -> tcpwise.
2. Connections per second: ``--conns`` handshakes (connect, then RST) to a listener in B, 64 in flight —
   opened by the tcpwise host the way a probe opens them, and by a kernel client in A (non-blocking sockets,
   same concurrency) as the reference.

Ratios are printed against the kernel reference measured in the same run. Root needed (namespaces, TUN).
Usage: python bench/bench_probe.py [--mbytes 100] [--conns 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

PEER = r"""
import socket, sys, time, selectors
cmd = sys.argv[1]
if cmd == "sink":             # accept connections forever; drain each to EOF (bulk) or drop it (conns)
    s = socket.socket(socket.AF_INET); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(4096); print("ready", flush=True)
    sel = selectors.DefaultSelector(); s.setblocking(False); sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is s:
                try:
                    c, _ = s.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False); sel.register(c, selectors.EVENT_READ)
            else:
                try:
                    d = key.fileobj.recv(1 << 20)
                except (BlockingIOError, ConnectionError):
                    d = None
                if d == b"" or d is None:
                    sel.unregister(key.fileobj); key.fileobj.close()
elif cmd == "source":         # accept once, send N bytes, close
    s = socket.socket(socket.AF_INET); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
    c, _ = s.accept(); blob = b"x" * (1 << 20)
    for _ in range(int(sys.argv[3])): c.sendall(blob)
    c.close()
elif cmd == "send":           # connect, send N MiB, wait for the close; print seconds
    c = socket.create_connection((sys.argv[2], int(sys.argv[3]))); blob = b"y" * (1 << 20)
    t = time.perf_counter()
    for _ in range(int(sys.argv[4])): c.sendall(blob)
    c.shutdown(socket.SHUT_WR); c.recv(1); print(time.perf_counter() - t, flush=True)
elif cmd == "conns":          # N handshakes, K in flight, each closed with RST; print seconds
    import struct
    addr, port, n, k = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    sel = selectors.DefaultSelector(); started = done = 0; t = time.perf_counter()
    linger = struct.pack("ii", 1, 0)
    def start():
        global started
        c = socket.socket(); c.setblocking(False); c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        c.connect_ex((addr, port)); sel.register(c, selectors.EVENT_WRITE); started += 1
    while started < min(k, n): start()
    while done < n:
        for key, _ in sel.select(5):
            sel.unregister(key.fileobj); key.fileobj.close(); done += 1
            if started < n: start()
    print(time.perf_counter() - t, flush=True)
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


async def kernel(ns: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-c", PEER, *args, stdout=asyncio.subprocess.PIPE
    )


async def ready(p: asyncio.subprocess.Process) -> None:
    assert p.stdout is not None
    line = await asyncio.wait_for(p.stdout.readline(), 10)
    assert line.strip() == b"ready", line


async def bench(a: str, b: str, dev: object, mbytes: int, conns: int) -> dict[str, float]:
    from tcpwise.endpoint import LINUX
    from tcpwise.stack import Host, TunLink, open_connection

    cfg = LINUX.with_(wscale=7, rcv_buf=4 << 20, snd_buf=4 << 20)
    host = Host(TunLink(dev), ["198.18.2.1"], cfg, name="bench")  # type: ignore[arg-type]
    host.start()
    res: dict[str, float] = {}
    sink = await kernel(b, "sink", "5001")
    await ready(sink)
    try:
        # 1. bulk, kernel -> kernel over R (the limit)
        p = await kernel(a, "send", "198.18.1.1", "5001", str(mbytes))
        out, _ = await p.communicate()
        res["kernel->kernel MB/s"] = mbytes * 1.048576 / float(out)
        # tcpwise -> kernel
        r, w = await open_connection(host, "198.18.1.1", 5001)
        blob = b"y" * (1 << 20)
        t = time.perf_counter()
        for _ in range(mbytes):
            w.write(blob)
            await w.drain()
        w.write_eof()
        await r.read(-1)
        res["tcpwise->kernel MB/s"] = mbytes * 1.048576 / (time.perf_counter() - t)
        # kernel -> tcpwise
        src = await kernel(b, "source", "5002", str(mbytes))
        await ready(src)
        r, w = await open_connection(host, "198.18.1.1", 5002)
        t = time.perf_counter()
        n = 0
        while data := await r.read(1 << 20):
            n += len(data)
        res["kernel->tcpwise MB/s"] = n / 1e6 / (time.perf_counter() - t)
        w.close()
        await src.wait()
        # 2. connections per second
        p = await kernel(a, "conns", "198.18.1.1", "5001", str(conns), "64")
        out, _ = await p.communicate()
        res["kernel conns/s"] = conns / float(out)
        t = time.perf_counter()
        sem = asyncio.Semaphore(64)

        async def one() -> None:
            async with sem:
                r, w = await open_connection(host, "198.18.1.1", 5001)
                w.transport.abort()

        await asyncio.gather(*(one() for _ in range(conns)))
        res["tcpwise conns/s"] = conns / (time.perf_counter() - t)
    finally:
        sink.kill()
        await sink.wait()
        host.close()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mbytes", type=int, default=100, help="MiB per bulk transfer (default 100)")
    ap.add_argument("--conns", type=int, default=2000, help="handshakes per connection test (default 2000)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_probe: needs root (namespaces, TUN device)", file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from tcpwise.probe.world import World, tun_into, tun_name

    print(f"bench_probe: {args.mbytes} MiB bulk per direction, {args.conns} handshakes (64 in flight)")
    with World() as world:
        r = world.add_ns("r", {"net.ipv4.ip_forward": "1"})
        a, b = world.add_ns("a"), world.add_ns("b")
        world.veth(r, "rb", b, "eth0")
        world.veth(r, "ra", a, "eth0")
        world.addr(r, "rb", "198.18.1.254/24")
        world.addr(b, "eth0", "198.18.1.1/24")
        world.addr(r, "ra", "198.18.3.254/24")
        world.addr(a, "eth0", "198.18.3.1/24")
        world.route(a, "default", "via", "198.18.3.254")
        world.route(b, "default", "via", "198.18.1.254")
        dev = tun_into(r, tun_name(), ["198.18.2.254/24"], txqueuelen=5000)
        try:
            res = asyncio.run(bench(a, b, dev, args.mbytes, args.conns))
        finally:
            dev.close()
    kk = res["kernel->kernel MB/s"]
    print(f"{'path':<28}{'result':>12}  ratio to kernel")
    print(f"{'kernel A -> kernel B':<28}{kk:>8.1f} MB/s  1.00 (the limit of the R -> B path)")
    for key in ("tcpwise->kernel MB/s", "kernel->tcpwise MB/s"):
        name = "tcpwise host -> kernel B" if key.startswith("tcpwise") else "kernel B -> tcpwise host"
        print(f"{name:<28}{res[key]:>8.1f} MB/s  {res[key] / kk:.3f}")
    kc, tc = res["kernel conns/s"], res["tcpwise conns/s"]
    print(f"{'kernel A handshakes':<28}{kc:>8.0f} /s    1.00")
    print(f"{'tcpwise probe handshakes':<28}{tc:>8.0f} /s    {tc / kc:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

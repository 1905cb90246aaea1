"""The tcpwise host against the real kernel: curl, nc, Python sockets and nginx talk to it and it to them,
over IPv4 and IPv6, through a Linux router that can lose 5% of the segments (nftables).

The kernel is the judge: its tools must get byte-exact data, `ss` must show the options Linux negotiated with
us, its ICMP must reach us and ours must satisfy it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile

import pytest
from stacknet import B4, B6, HOST4, HOST6, Net, drive, same_bytes

from tcpwise.endpoint import RttEstimator
from tcpwise.stack import Host, open_connection, start_server
from tcpwise.wire.segment import TcpSegment

pytestmark = [pytest.mark.kernel]

FAMILIES = [pytest.param((HOST4, B4), id="ipv4"), pytest.param((HOST6, B6), id="ipv6")]


def pattern(n: int) -> bytes:
    block = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(2048))
    return (block * (n // len(block) + 1))[:n]


def url(addr: str, port: int, path: str = "/") -> str:
    return f"http://[{addr}]:{port}{path}" if ":" in addr else f"http://{addr}:{port}{path}"


async def ready(p: asyncio.subprocess.Process) -> None:
    assert p.stdout is not None
    line = await asyncio.wait_for(p.stdout.readline(), 10)
    assert line.strip() == b"ready", line


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    return await reader.read(-1)


# ----------------------------------------------------------------------------------------------------------
# kernel clients -> tcpwise server
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fam", FAMILIES)
def test_curl_and_nc_and_python_reach_a_tcpwise_server(net: Net, fam: tuple[str, str]) -> None:
    ours, _ = fam
    page = pattern(300_000)
    upload = pattern(200_000)
    received: list[bytes] = []

    async def body(host: Host) -> None:
        async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(page)
            writer.write(head + page)
            await writer.drain()
            writer.close()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await reader.read(-1))
            writer.close()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        await start_server(host, http, port=8080)
        await start_server(host, sink, port=9000)
        await start_server(host, echo, port=9007)
        curl = await net.kernel("curl", "-sS", "-m", "20", "-o", "-", url(ours, 8080))
        got, _ = await curl.communicate()
        assert curl.returncode == 0 and got == page

        with tempfile.NamedTemporaryFile() as f:
            f.write(upload)
            f.flush()
            nc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", net.b, "nc", "-N", "-w", "10", ours, "9000", stdin=open(f.name, "rb")
            )
            assert await nc.wait() == 0
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
        assert received == [upload]

        py = await net.kpeer("echo-client", ours, "9007", "1000000")
        out, _ = await py.communicate()
        assert out.split() == [hashlib.sha256(pattern(1_000_000)).hexdigest().encode(), b"1000000"]

    drive(net, body)


# ----------------------------------------------------------------------------------------------------------
# tcpwise client -> kernel servers
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nginx_root() -> object:
    if shutil.which("nginx") is None:
        pytest.skip("needs nginx (apt-get install nginx)")
    d = tempfile.mkdtemp(prefix="tcpwise-stack-nginx-")
    os.makedirs(f"{d}/html")
    with open(f"{d}/html/blob", "wb") as f:
        f.write(pattern(2_000_000))
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(
            f"worker_processes 1; error_log stderr; pid {d}/nginx.pid; events {{ worker_connections 64; }}\n"
            f"http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;\n"
            f" fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n"
            f" server {{ listen 8081; listen [::]:8081; root {d}/html; }} }}\n"
        )
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("fam", FAMILIES)
def test_tcpwise_client_talks_to_nginx_nc_and_python(net: Net, fam: tuple[str, str], nginx_root: str) -> None:
    _, theirs = fam
    blob = pattern(2_000_000)

    async def body(host: Host) -> None:
        ngx = await net.kernel(
            "nginx", "-p", nginx_root, "-c", f"{nginx_root}/nginx.conf", "-g", "daemon off;"
        )
        try:
            for _ in range(100):
                try:
                    r, w = await open_connection(host, theirs, 8081)
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("nginx never listened")
            host_hdr = f"[{theirs}]" if ":" in theirs else theirs
            w.write(f"GET /blob HTTP/1.1\r\nHost: {host_hdr}\r\nConnection: close\r\n\r\n".encode())
            resp = await read_to_eof(r)
            head, _, content = resp.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            same_bytes(content, blob)
        finally:
            ngx.terminate()
            await ngx.wait()

        nc = await net.kernel("nc", "-6" if ":" in theirs else "-4", "-l", "-N", "9002")
        for _ in range(100):  # nc prints nothing when it listens: try until it does
            try:
                r, w = await open_connection(host, theirs, 9002)
                break
            except ConnectionRefusedError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("nc -l never listened")
        w.write(blob[:500_000])
        w.write_eof()
        got, _ = await nc.communicate()
        same_bytes(got, blob[:500_000])

        py = await net.kpeer("send", "9003", "3000000")
        await ready(py)
        r, w = await open_connection(host, theirs, 9003)
        same_bytes(await read_to_eof(r), pattern(3_000_000))
        w.close()
        await py.wait()

    drive(net, body)


# ----------------------------------------------------------------------------------------------------------
# what Linux negotiated with us, ICMP both ways
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fam", FAMILIES)
def test_linux_negotiates_timestamps_window_scale_and_mss(net: Net, fam: tuple[str, str]) -> None:
    _, theirs = fam

    async def body(host: Host) -> None:
        k = await net.kpeer("hold", "9100")
        await ready(k)
        r, w = await open_connection(host, theirs, 9100)
        assert k.stdout is not None
        await k.stdout.readline()
        ss = await net.kernel("ss", "-tinH", "state", "established", "( sport = :9100 )")
        out, _ = await ss.communicate()
        text = out.decode()
        ep = w.get_extra_info("endpoint")
        m = re.search(r"wscale:(\d+),(\d+)", text)
        assert m, text
        assert int(m.group(1)) == 7  # Linux's send shift = the shift we offered
        assert int(m.group(2)) == ep.snd_wscale  # Linux's receive shift = what we apply to its windows
        mss = 1460 if ":" not in theirs else 1440
        # Timestamps: Linux takes 12 bytes off its MSS for them (advmss/mss) and stamps every segment it sends.
        assert f"advmss:{mss - 12}" in text and f" mss:{mss - 12}" in text, text
        from_linux = [
            e.segment for e in host.log if e.kind == "recv" and e.segment and e.segment.sport == 9100
        ]
        assert from_linux and all((s.opts or {}).get("ts") for s in from_linux)
        assert ep.ts_ok and ep.eff_mss == mss - 12
        k.stdin.close()  # type: ignore[union-attr]
        await k.wait()

    drive(net, body, record=True)


@pytest.mark.parametrize("fam", FAMILIES)
def test_icmp_echo_and_port_unreachable_satisfy_the_kernel(net: Net, fam: tuple[str, str]) -> None:
    ours, _ = fam

    async def body(host: Host) -> None:
        p = await net.kpeer("ping", ours)
        out, _ = await p.communicate()
        assert out.strip() == b"reply"
        u = await net.kpeer("udp", ours)
        out, _ = await u.communicate()
        assert out.strip() == b"refused"  # our ICMP port unreachable became ECONNREFUSED in the kernel

    drive(net, body)


# ----------------------------------------------------------------------------------------------------------
# RTO and backoff: ours and Linux's on the same path
# ----------------------------------------------------------------------------------------------------------
def _intervals(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_retransmission_timeouts_follow_the_linux_profile_like_linux(net: Net) -> None:
    """Both sides stop hearing ACKs; each sends a tail loss probe, then retransmits at RTO and 2 RTO.
    Ours must follow the model's Linux estimator (RFC 6298 with Linux's 200 ms floor) on the real clock, and the
    kernel's first RTO on the same path must be the same within scheduling noise."""
    ours: list[float] = []
    theirs: list[float] = []
    model: list[float] = []

    async def body(host: Host) -> None:
        k = await net.kpeer("send", "9300", "100000")
        await ready(k)
        first: list[int] = []

        def deaf(direction: str, src: str, dst: str, seg: TcpSegment) -> bool:
            if direction == "in" and seg.sport == 9300 and seg.payload:
                if not first:
                    first.append(seg.seq)
                if seg.seq == first[0]:
                    theirs.append(host.now())
                return False  # never ACKed: the kernel must retransmit
            return True

        host.hooks.append(deaf)
        r, w = await open_connection(host, B4, 9300)
        await asyncio.sleep(3.2)
        host.hooks.remove(deaf)
        w.transport.abort()
        k.kill()
        await k.wait()

        k2 = await net.kpeer("hold", "9301")
        await ready(k2)
        r, w = await open_connection(host, B4, 9301)
        ep = w.get_extra_info("endpoint")
        w.write(b"ping")
        await w.drain()
        for _ in range(100):
            if ep.snd_una == ep.snd_max:
                break
            await asyncio.sleep(0.01)
        est = RttEstimator(1.0, 0.2, 120.0, linux=True)
        est.srtt, est.rttvar, est.rto = ep.rtt.srtt, ep.rtt.rttvar, ep.rtt.rto
        # One segment in flight, SACK negotiated: first the tail loss probe (RFC 8985; Linux
        # tcp_schedule_loss_probe: 2 SRTT + TCP_RTO_MIN, never later than the RTO), then RTO and 2 RTO.
        pto = min(2 * (est.srtt or 0.0) + 0.2, est.rto)
        model.extend([pto, est.rto, 2 * est.rto])
        seq0 = ep.snd_max

        def no_acks(direction: str, src: str, dst: str, seg: TcpSegment) -> bool:
            if direction == "out" and seg.dport == 9301 and seg.seq == seq0 and seg.payload:
                ours.append(host.now())
            return not (direction == "in" and seg.sport == 9301)

        host.hooks.append(no_acks)
        w.write(b"x" * 100)
        await asyncio.sleep(1.9)
        w.transport.abort()
        k2.kill()
        await k2.wait()

    drive(net, body)
    mine, linux = _intervals(ours)[:3], _intervals(theirs)[:3]
    assert len(mine) == 3 and len(linux) == 3, (ours, theirs)
    for got, want in zip(mine, model, strict=True):
        assert want - 0.01 <= got <= want + 0.15, (mine, model)  # the loop may fire late, never early
    assert 0.2 <= linux[0] <= 0.45, linux  # Linux: srtt + max(4 rttvar, 200 ms) on a sub-ms path
    # The kernel sends 100 kB, so its loss probe goes out with the tail, not the first segment, whose resends are
    # RTO-driven: its first timeout equals ours (both the RTO on a sub-ms path), then it backs off.
    assert abs(mine[0] - linux[0]) <= 0.15, (mine, linux)
    for a, b in zip(linux, linux[1:], strict=False):
        assert 1.6 <= b / a <= 2.4, linux  # exponential backoff (RFC 6298 §5.5)


# ----------------------------------------------------------------------------------------------------------
# bulk both ways through 5% loss
# ----------------------------------------------------------------------------------------------------------
def _both_ways_with_loss(net: Net, fam: tuple[str, str], nbytes: int, loss: float) -> dict[str, object]:
    from tcpwise.lab.nft import Faults

    ours, theirs = fam
    faults = Faults(net.r, f"s{os.getpid()}")
    faults.create()
    faults.loss("down", theirs, ours, loss)
    faults.loss("up", ours, theirs, loss)
    want = hashlib.sha256(pattern(nbytes)).hexdigest()
    result: dict[str, object] = {}

    async def body(host: Host) -> None:
        ks = await net.kpeer("send", "9400", str(nbytes))
        kr = await net.kpeer("recv", "9401")
        await ready(ks)
        await ready(kr)

        async def download() -> None:
            r, w = await open_connection(host, theirs, 9400)
            h, n = hashlib.sha256(), 0
            while data := await r.read(1 << 20):
                h.update(data)
                n += len(data)
            result["down"] = (h.hexdigest(), n)
            w.close()

        async def upload() -> None:
            r, w = await open_connection(host, theirs, 9401)
            data = pattern(nbytes)
            for i in range(0, nbytes, 1 << 20):
                w.write(data[i : i + (1 << 20)])
                await w.drain()
            w.write_eof()
            await r.read(-1)
            w.close()

        await asyncio.gather(download(), upload())
        out, _ = await kr.communicate()
        result["up"] = tuple(out.split())
        await ks.wait()

    try:
        drive(net, body, timeout=600)
        result["dropped"] = faults.counters()
    finally:
        faults.destroy()
    assert result["down"] == (want, nbytes)
    assert result["up"] == (want.encode(), str(nbytes).encode())
    return result


def test_ipv6_both_ways_through_5pct_loss(net: Net) -> None:
    res = _both_ways_with_loss(net, (HOST6, B6), 4_000_000, 0.05)
    dropped = res["dropped"]
    assert isinstance(dropped, dict) and dropped["down"] > 20 and dropped["up"] > 10


@pytest.mark.slow
def test_100mb_each_way_through_5pct_loss_arrives_intact(net: Net) -> None:
    res = _both_ways_with_loss(net, (HOST4, B4), 100_000_000, 0.05)
    dropped = res["dropped"]
    assert isinstance(dropped, dict) and dropped["down"] > 1000 and dropped["up"] > 1000


def test_planted_corruption_is_caught_by_the_kernel_side_hash(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test must be able to fail: a host that flips one byte of every data segment (checksums still right, so
    Linux accepts them) must not pass the byte-exact comparison the interop tests rely on."""
    import tcpwise.stack.host as host_mod

    real = host_mod.build_packet

    def corrupt(src: str, dst: str, seg: TcpSegment, *a: object, **kw: object) -> bytes:
        if seg.payload:
            seg = seg.with_(payload=bytes([seg.payload[0] ^ 0xFF]) + seg.payload[1:])
        return real(src, dst, seg, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(host_mod, "build_packet", corrupt)
    data = pattern(100_000)
    got: list[list[bytes]] = []

    async def body(host: Host) -> None:
        k = await net.kpeer("recv", "9500")
        await ready(k)
        r, w = await open_connection(host, B4, 9500)
        w.write(data)
        w.write_eof()
        await w.drain()
        out, _ = await k.communicate()
        got.append(out.split())

    drive(net, body)
    assert got[0][1] == b"100000"  # every byte arrived ...
    with pytest.raises(AssertionError):  # ... and the check the interop tests make sees the corruption
        assert got[0][0] == hashlib.sha256(data).hexdigest().encode()

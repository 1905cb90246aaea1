"""The keep-alive race on real software: nginx (or HAProxy) in front of a Python upstream, in lab namespaces.

Theory of operation
-------------------
::

    client --loopback--> proxy (host A, 198.18.0.1) --R: 50 ms each way--> upstream (host B, 198.18.1.1:8000)

The lab topology (:class:`tcpwise.lab.netns.Topology`) gives two hosts and a router whose user-space delay line
(:class:`tcpwise.lab.forward.Forwarder`) adds the one-way delay ``d``; the router's capture socket
(:class:`tcpwise.lab.capture.Capture`) sees every proxy<->upstream packet. The proxy is the real nginx (or
HAProxy) from the distribution, its upstream :mod:`tcpwise.ladder.upstream` with keep-alive timeout ``T``. The
client sends a request, reads the answer, waits ``spacing`` seconds and sends the next.

With the inverted ladder (the proxy keeps idle upstream connections longer than ``T``) the race is this: the
upstream starts its keep-alive clock when it writes a response at ``t0``; the proxy has the response at
``t0 + d`` and puts the connection in its pool; the next request leaves the proxy at ``t0 + d + spacing`` and
reaches the upstream at ``t0 + 2d + spacing``; the upstream closes at ``t0 + T`` and its FIN reaches the proxy at
``t0 + T + d``. So with ``T - 2d < spacing < T`` the proxy writes the request on a connection the upstream has
already closed and only then reads its FIN (EOF) and RST: nginx logs "upstream prematurely closed connection"
and answers **502** — unless it may retry (nginx retries an idempotent request that failed on a cached
connection; a POST it does not). ``spacing`` defaults to ``T - d``, the middle of the window. With the ladder's fix
(the proxy's pool idle below ``T`` with margin) the proxy closes the idle connection first and opens a new one.

Everything runs inside namespaces named ``tcpwise-lab<pid as 6 hex digits>-*`` (one run at a time per process);
they, the proxy and the upstream processes are removed on every exit path (``finally``); after a SIGKILL,
``tcpwise lab clean --run lab<pid hex>`` removes them. Traffic stays on loopback and 198.18.0.0/15.
"""

from __future__ import annotations

import dataclasses
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO

from tcpwise.errors import MissingCapability, UsageError
from tcpwise.events import Run

__all__ = ["RaceResult", "run_race", "nginx_conf", "haproxy_cfg", "PROXIES", "lab_run_id"]

PROXIES = ("nginx", "haproxy")
UPSTREAM_PORT = 8000
PROXY_PORT = 8080
_ONE_AT_A_TIME = threading.Lock()


def lab_run_id() -> str:
    """This process's lab run id: ``lab`` + the pid in 6 hex digits (Linux pids are < 2**22)."""
    return f"lab{os.getpid() & 0xFFFFFF:06x}"


@dataclass
class RaceResult:
    proxy: str
    proxy_idle: float
    upstream_idle: float
    spacing: float
    delay: float
    method: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)  # HTTP status the client got
    log_statuses: Counter[int] = field(default_factory=Counter)  # status in the proxy's own access log
    log_502: int = 0  # 502s counted from the proxy's own log
    error_lines: list[str] = field(default_factory=list)  # the proxy's error log lines about the upstream
    upstream_events: Counter[str] = field(default_factory=Counter)  # accept/request/close-idle/eof
    pcap: bytes = b""
    failed: Run | None = None  # the packets of one failed request, as the trace saw them
    config: str = ""  # the proxy configuration that ran
    haproxy_retry: bool = False  # HAProxy's fix: replay a request that met a closed idle connection

    def to_dict(self) -> dict[str, object]:
        return {
            "proxy": self.proxy,
            "proxy_idle": self.proxy_idle,
            "upstream_idle": self.upstream_idle,
            "spacing": self.spacing,
            "delay": self.delay,
            "method": self.method,
            "haproxy_retry": self.haproxy_retry,
            "requests": self.requests,
            "client_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "log_statuses": {str(k): v for k, v in sorted(self.log_statuses.items())},
            "log_502": self.log_502,
            "error_lines": self.error_lines[:20],
            "upstream_events": dict(self.upstream_events),
        }


def _seconds_directive(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def nginx_conf(tmp: str, upstream: str, proxy_idle: float) -> str:
    """A complete nginx.conf: one process, logs in ``tmp``, upstream keep-alive cache with ``proxy_idle``."""
    return f"""# written by tcpwise ladder reproduce (nginx keep-alive race)
daemon off;
master_process off;
error_log {tmp}/error.log info;
pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    log_format ladder '$msec $request_method $status "$upstream_status" "$upstream_addr"';
    access_log {tmp}/access.log ladder;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream app {{
        server {upstream};
        keepalive 4;
        keepalive_timeout {_seconds_directive(proxy_idle)};
    }}
    server {{
        listen 127.0.0.1:{PROXY_PORT};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def haproxy_cfg(tmp: str, upstream: str, fixed: bool = False) -> str:
    """HAProxy reusing idle server connections for every request (``http-reuse always``).

    HAProxy has no idle timeout for server connections: it keeps as many idle ones as it recently needed
    (``pool-purge-delay`` only trims the surplus), so the only fixes are not to reuse, or to replay a request that
    met a closed connection: ``fixed`` adds ``retry-on conn-failure empty-response`` with ``retries 1``."""
    retry = "retries 1\n    retry-on conn-failure empty-response" if fixed else "retries 0"
    return f"""# written by tcpwise ladder reproduce (HAProxy keep-alive race)
global
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    http-reuse always
    {retry}
frontend fe
    bind 127.0.0.1:{PROXY_PORT}
    default_backend app
backend app
    server up {upstream}
"""


class _Pump(threading.Thread):
    """The router's user-space half: delay line + capture, until stopped (bounded by ``limit`` seconds)."""

    def __init__(self, fwd: object, cap: object, limit: float) -> None:
        super().__init__(name="ladder-router", daemon=True)
        self.fwd = fwd
        self.cap = cap
        self.limit = limit
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        fwd, cap = self.fwd, self.cap
        sel = selectors.DefaultSelector()
        sel.register(cap.fileno(), selectors.EVENT_READ, "cap")  # type: ignore[attr-defined]
        sel.register(fwd.fileno(), selectors.EVENT_READ, "tun")  # type: ignore[attr-defined]
        end = time.monotonic() + self.limit
        try:
            while not self.stop.is_set() and time.monotonic() < end:
                now = time.monotonic()
                fwd.release(now)  # type: ignore[attr-defined]
                due = fwd.next_due()  # type: ignore[attr-defined]
                timeout = 0.05 if due is None else max(0.0, min(0.05, due - now))
                for key, _ in sel.select(timeout):
                    if key.data == "cap":
                        cap.read()  # type: ignore[attr-defined]
                    else:
                        fwd.read(time.monotonic())  # type: ignore[attr-defined]
            cap.read()  # type: ignore[attr-defined]
        except BaseException as exc:  # surfaced by the caller
            self.error = exc
        finally:
            sel.close()


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}") else None)
    if path is None:
        raise MissingCapability(f"the {tool} reproducer needs {tool}: apt-get install {package}")
    return path


def _wait_port(
    ns: str, port: int, deadline: float, proc: subprocess.Popen[bytes], what: str = "proxy"
) -> None:
    from tcpwise.lab.netns import in_netns

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        with in_netns(ns):
            s = socket.socket()
        try:
            s.settimeout(0.2)
            s.connect(("127.0.0.1", port))
            return
        except OSError:
            time.sleep(0.02)
        finally:
            s.close()
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} in {ns}")


def _request(ns: str, method: str, timeout: float) -> int:
    """One request to the proxy on a fresh client connection; the HTTP status, or 0 when it failed."""
    from tcpwise.lab.netns import in_netns

    with in_netns(ns):
        s = socket.socket()
    try:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", PROXY_PORT))
        body = b"x=1" if method == "POST" else b""
        s.sendall(
            f"{method} / HTTP/1.1\r\nHost: app\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        while s.recv(4096):  # read to the end so the next request starts from a quiet proxy
            pass
        return int(m.group(1)) if m else 0
    except OSError:
        return 0
    finally:
        s.close()


def _count_log(proxy: str, text: str, res: RaceResult) -> None:
    for line in text.splitlines():
        if proxy == "nginx":
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                res.log_statuses[int(parts[2])] += 1
        else:
            # HAProxy's httplog: ... <status> <bytes> ... "METHOD / HTTP/1.1"
            m = re.search(r" (\d{3}) \d+ - - ", line)
            if m and ('"GET ' in line or '"POST ' in line):
                res.log_statuses[int(m.group(1))] += 1
    res.log_502 = res.log_statuses.get(502, 0)


def _failed_connection(pcap: bytes, upstream_addr: str) -> Run | None:
    """The first proxy->upstream connection whose last request got no response: FIN or RST instead."""
    from tcpwise.trace.conn_view import connection_run

    with tempfile.NamedTemporaryFile(suffix=".pcap", delete=False) as f:
        f.write(pcap)
        path = f.name
    try:
        for n in range(1, 200):
            try:
                run, _ = connection_run(path, n)
            except UsageError:
                return None
            segs = [(e.host, e.segment) for e in run.events if e.kind == "send" and e.segment is not None]
            if not segs or segs[0][1].dst != upstream_addr:
                continue
            last_req = max((i for i, (h, sg) in enumerate(segs) if h == "A" and sg.len > 0), default=None)
            if last_req is None:
                continue
            after = segs[last_req + 1 :]
            answered = any(h == "B" and sg.len > 0 for h, sg in after)
            closed = any(h == "B" and ("F" in sg.flags or "R" in sg.flags) for h, sg in after)
            if not answered and closed:
                run.title = "keep-alive race: the proxy's request meets the upstream's close"
                run.params = {"capture": "router R, proxy <-> upstream", "conn": n}
                run.hosts = [
                    dataclasses.replace(run.hosts[0], role="proxy"),
                    dataclasses.replace(run.hosts[1], role="upstream"),
                    *run.hosts[2:],
                ]
                return run
        return None
    finally:
        os.unlink(path)


def _start_proxy(
    proxy: str, tmp: str, ns: str, upstream: str, proxy_idle: float, res: RaceResult
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    log = open(os.path.join(tmp, "proxy.out"), "wb")  # noqa: SIM115 - closed by the caller
    if proxy == "nginx":
        exe = _need("nginx", "nginx")
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        res.config = nginx_conf(tmp, upstream, proxy_idle)
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(res.config)
        argv = [exe, "-p", tmp, "-c", conf, "-e", os.path.join(tmp, "error.log")]
    else:
        exe = _need("haproxy", "haproxy")
        res.config = haproxy_cfg(tmp, upstream, fixed=res.haproxy_retry)
        conf = os.path.join(tmp, "haproxy.cfg")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(res.config)
        argv = [exe, "-db", "-f", conf]
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=log, stderr=subprocess.STDOUT)
    return proc, log


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=3)


def run_race(
    proxy: str = "nginx",
    *,
    upstream_idle: float = 1.0,
    proxy_idle: float = 3.0,
    requests: int = 6,
    spacing: float | None = None,
    delay: float = 0.05,
    method: str = "POST",
    haproxy_retry: bool = False,
    draw: bool = True,
) -> RaceResult:
    """Run the race once; needs root, network namespaces and the proxy binary. Bounded: ``requests`` requests of
    at most ``spacing + 3`` seconds each."""
    gap = _validate(proxy, requests, upstream_idle, proxy_idle, delay, method, spacing)
    from tcpwise.lab.capture import Capture, write_pcap
    from tcpwise.lab.forward import Forwarder, Route
    from tcpwise.lab.netns import TUN_DEV, Topology, check_capabilities, clean, in_netns

    check_capabilities()
    _need(proxy, proxy)
    res = RaceResult(proxy, proxy_idle, upstream_idle, gap, delay, method, haproxy_retry=haproxy_retry)
    if not _ONE_AT_A_TIME.acquire(timeout=600):
        raise RuntimeError("another reproducer run of this process did not finish")
    run_id = lab_run_id()
    clean(run_id)  # a namespace of a dead process that had our pid: ours to remove
    topo = Topology(run_id=run_id)
    tmp = tempfile.mkdtemp(prefix=f"tcpwise-ladder-{os.getpid()}-")
    upstream_proc: subprocess.Popen[bytes] | None = None
    proxy_proc: subprocess.Popen[bytes] | None = None
    pump: _Pump | None = None
    fwd = cap = None
    outs: list[IO[bytes]] = []
    try:
        topo.create()
        a, b = topo.hosts["A"], topo.hosts["B"]
        routes = {h.addr4: Route(h.router_if, h.mac) for h in topo.hosts.values()}
        with in_netns(topo.router_ns):
            cap = Capture((a.router_if, b.router_if))
            fwd = Forwarder(TUN_DEV, routes, delay)
        budget = 20.0 + requests * (gap + 3.0)
        pump = _Pump(fwd, cap, budget)
        pump.start()
        up_out = open(os.path.join(tmp, "upstream.out"), "wb")  # noqa: SIM115 - closed in finally
        outs.append(up_out)
        upstream_proc = subprocess.Popen(
            ["ip", "netns", "exec", b.ns, sys.executable, "-m", "tcpwise.ladder.upstream",
             "--port", str(UPSTREAM_PORT), "--keepalive", str(upstream_idle), "--duration", str(budget)],
            stdout=up_out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        # The upstream must listen before the first request: on a busy machine its interpreter takes a while to
        # start, and the proxy would answer the first request with a 502 that has nothing to do with idle
        # timeouts ("connect() failed (111)"). The probe connection is closed at once; the upstream sees EOF.
        _wait_port(b.ns, UPSTREAM_PORT, time.monotonic() + 15, upstream_proc, "upstream")
        proxy_proc, plog = _start_proxy(proxy, tmp, a.ns, f"{b.addr4}:{UPSTREAM_PORT}", proxy_idle, res)
        outs.append(plog)
        _wait_port(a.ns, PROXY_PORT, time.monotonic() + 10, proxy_proc)
        for i in range(requests):
            if i:
                time.sleep(gap)
            res.statuses[_request(a.ns, method, timeout=gap + 3.0)] += 1
            res.requests += 1
        time.sleep(2 * delay + 0.1)  # the last FIN/RST crosses the router
    finally:
        _stop(proxy_proc)
        _stop(upstream_proc)
        if pump is not None:
            pump.stop.set()
            pump.join(timeout=5)
        for f in outs:
            f.close()
        if cap is not None:
            import io

            buf = io.BytesIO()
            write_pcap(cap.frames, buf)
            res.pcap = buf.getvalue()
            cap.close()
        if fwd is not None:
            fwd.close()
        topo.destroy()
        _ONE_AT_A_TIME.release()
    _collect(proxy, tmp, res)
    if draw and res.log_502 and res.pcap:
        res.failed = _failed_connection(res.pcap, "198.18.1.1")
    return res


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _validate(
    proxy: str,
    requests: int,
    upstream_idle: float,
    proxy_idle: float,
    delay: float,
    method: str,
    spacing: float | None,
) -> float:
    """Bounds on every knob (the run is bounded by them); the spacing to use."""
    if proxy not in PROXIES:
        raise UsageError(f"--proxy must be one of {', '.join(PROXIES)}")
    if not (1 <= requests <= 500):
        raise UsageError("--requests must be 1..500")
    # The proxy's keepalive_timeout is written in whole milliseconds: below 1 ms it would be "0ms" or a number
    # in exponent notation that neither proxy reads, found only after the lab is built.
    if not (0.2 <= upstream_idle <= 30 and 0.001 <= proxy_idle <= 120 and 0.001 <= delay <= 0.5):
        raise UsageError(
            "need 0.2 <= upstream idle <= 30 s, 1 ms <= proxy idle <= 120 s, 1 ms <= delay <= 500 ms"
        )
    if method not in ("GET", "POST"):
        raise UsageError("--method must be GET or POST")
    gap = upstream_idle - delay if spacing is None else spacing
    if not (0 <= gap <= 60):
        raise UsageError("--spacing must be 0..60 s")
    return gap


def _collect(proxy: str, tmp: str, res: RaceResult) -> None:
    """The proxy's own logs and the upstream's event lines into ``res``; then the work directory goes."""
    try:
        if proxy == "nginx":
            _count_log(proxy, _read(os.path.join(tmp, "access.log")), res)
            res.error_lines = [
                ln for ln in _read(os.path.join(tmp, "error.log")).splitlines() if "upstream" in ln
            ]
        else:
            text = _read(os.path.join(tmp, "proxy.out"))
            _count_log(proxy, text, res)
            res.error_lines = [ln for ln in text.splitlines() if " 502 " in ln]
        for line in _read(os.path.join(tmp, "upstream.out")).splitlines():
            parts = line.split()
            if len(parts) >= 2:
                res.upstream_events[parts[1]] += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

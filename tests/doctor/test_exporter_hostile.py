"""The exporter under hostile load and hostile input (loopback, bounded counts): it keeps serving scrapes, cuts
idle and trickling clients, answers bad requests with one status line, logs a bounded number of lines, keeps its
series bounded and its fds under the limit. Budgets are stated per test as timeouts (no timing assertions)."""

from __future__ import annotations

import io
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tcpwise.doctor import collect, exporter
from tcpwise.doctor.httpserve import BoundedHTTPServer, RateLimitedLog, ServerConfig
from tcpwise.linux.netlink import PORT_SWAP, Sock

SCRAPE_BUDGET_S = 5.0  # every scrape in these tests must complete within this


def start(render=lambda: b"ok 1\n", **kw) -> tuple[BoundedHTTPServer, io.StringIO]:  # type: ignore[no-untyped-def]
    log = io.StringIO()
    cfg = ServerConfig(host="127.0.0.1", port=0, **kw)
    srv = BoundedHTTPServer(render, cfg, RateLimitedLog(log, burst=3, window=60))
    srv.start_in_thread()
    return srv, log


def scrape(srv: BoundedHTTPServer, path: str = "/metrics") -> tuple[int, bytes]:
    assert srv.address is not None
    host, port = srv.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=SCRAPE_BUDGET_S) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def raw(srv: BoundedHTTPServer, data: bytes, timeout: float = SCRAPE_BUDGET_S) -> bytes:
    assert srv.address is not None
    with socket.create_connection(srv.address, timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
        return out


def test_idle_connections_are_evicted_and_scrapes_still_served() -> None:
    srv, log = start(max_conns=50, header_timeout=30)
    idle = []
    try:
        for _ in range(300):  # far more idle clients than the cap
            idle.append(socket.create_connection(srv.address, timeout=5))  # type: ignore[arg-type]
        for _ in range(20):
            assert scrape(srv) == (200, b"ok 1\n")
        assert len(srv.conns) <= 50
        assert srv.stats.evicted >= 250
    finally:
        for s in idle:
            s.close()
        srv.stop()
    assert "Traceback" not in log.getvalue()


def test_a_trickling_client_is_cut_by_the_header_deadline() -> None:
    srv, _ = start(header_timeout=0.5)
    try:
        with socket.create_connection(srv.address, timeout=SCRAPE_BUDGET_S) as s:  # type: ignore[arg-type]
            s.sendall(b"GET /metrics HTTP/1.1\r\n")
            t0 = time.monotonic()
            closed = False
            for _ in range(20):  # one header byte every 0.2 s, never the blank line
                try:
                    s.sendall(b"X")
                    s.settimeout(0.2)
                    if s.recv(1) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                    break
            assert closed and time.monotonic() - t0 < SCRAPE_BUDGET_S
        assert srv.stats.header_timeouts >= 1
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"413"),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", b"405"),
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /secret HTTP/1.1\r\nConnection: close\r\n\r\n", b"404"),
    ],
)
def test_bad_requests_get_one_status_and_a_close(request_bytes: bytes, status: bytes) -> None:
    srv, log = start()
    try:
        out = raw(srv, request_bytes)
        assert out.split(b"\r\n", 1)[0].split(b" ")[1] == status
        assert scrape(srv)[0] == 200  # and the server is still fine
    finally:
        srv.stop()
    assert "Traceback" not in log.getvalue()


def test_concurrent_scrapes_share_one_render() -> None:
    calls = []

    def slow() -> bytes:
        calls.append(1)
        time.sleep(0.3)
        return b"x 1\n"

    srv, _ = start(render=slow, min_interval=0.0)
    try:
        with ThreadPoolExecutor(100) as pool:
            got = list(pool.map(lambda _: scrape(srv), range(200)))
        assert all(g == (200, b"x 1\n") for g in got)
        assert len(calls) < 40  # ~one render per 0.3 s of scraping, not one per request
    finally:
        srv.stop()


def test_render_failures_are_503_and_logged_a_bounded_number_of_times() -> None:
    def boom() -> bytes:
        raise RuntimeError("sock_diag went away")

    srv, log = start(render=boom, min_interval=0.0)
    try:
        assert all(scrape(srv)[0] == 503 for _ in range(50))
    finally:
        srv.stop()
    lines = log.getvalue().splitlines()
    assert 1 <= len(lines) <= 4 and "sock_diag went away" in lines[0]


def test_rate_limited_log_summarises_what_it_drops() -> None:
    out = io.StringIO()
    log = RateLimitedLog(out, burst=2, window=0.2)
    for _ in range(1000):
        log.log("accept", "accept() failed: EMFILE")
    time.sleep(0.25)
    log.log("accept", "accept() failed: EMFILE")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "998 similar messages suppressed" in lines[2]


def test_a_log_without_limit_is_caught() -> None:
    """The bound can fail: a log with an unlimited burst writes every line."""
    out = io.StringIO()
    log = RateLimitedLog(out, burst=10**9, window=60)
    for _ in range(1000):
        log.log("accept", "x")
    assert len(out.getvalue().splitlines()) > 4


def _listener(port: int, rq: int = 0, wq: int = 128) -> Sock:
    return Sock(
        2,
        10,
        0,
        0,
        PORT_SWAP[port],
        0,
        b"\x7f\0\0\x01".ljust(16, b"\0"),
        b"\0" * 16,
        0,
        rq,
        wq,
        0,
        0,
        None,
        None,
    )


def test_listener_labels_are_bounded_top_k_plus_other() -> None:
    lst = [_listener(10000 + i) for i in range(500)] + [
        _listener(80, rq=120, wq=128),
        _listener(81, rq=5, wq=5),
    ]
    rows = exporter.top_listeners(lst, 20)
    assert len(rows) == 21 and rows[-1][0] == "other"
    assert rows[0][0] == "127.0.0.1:81" and rows[1][0] == "127.0.0.1:80"  # fullest first
    assert rows[-1][2] == 128 * (500 - 18)  # the rest's backlogs, summed


def test_refresh_failures_are_a_metric_and_a_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.core import CollectorRegistry

    out = io.StringIO()
    col = exporter.TcpCollector(proc_interval=0.05, log=RateLimitedLog(out, burst=2, window=60))
    col.start_background()
    real = collect.take

    def failing(*a, **kw):  # type: ignore[no-untyped-def]
        raise PermissionError("no /proc for you")

    monkeypatch.setattr(collect, "take", failing)
    deadline = time.monotonic() + 10
    while col.refresh_failures < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    col.stop()
    monkeypatch.setattr(collect, "take", real)
    assert col.refresh_failures >= 3
    assert "background refresh failed (PermissionError: no /proc for you)" in out.getvalue()
    assert len(out.getvalue().splitlines()) <= 3
    reg = CollectorRegistry()
    reg.register(col)
    text = generate_latest(reg).decode()
    assert "tcpwise_refresh_failures_total" in text and "tcpwise_refresh_failures_total 0.0" not in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.kernel
def test_real_exporter_survives_more_idle_clients_than_its_fd_limit() -> None:
    """The issue's attack: more idle connections than the soft fd limit. Scrapes keep working, stderr stays
    short, no traceback, RSS bounded, SIGTERM exits 0."""
    port = _free_port()

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    p = subprocess.Popen(
        [sys.executable, "-m", "tcpwise.cli", "exporter", "--listen", f"127.0.0.1:{port}", "--no-watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=low_limit,
    )
    idle: list[socket.socket] = []
    try:
        assert p.stdout is not None and "serving" in p.stdout.readline()
        for _ in range(400):
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        ok = 0
        for _ in range(10):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_BUDGET_S) as r:
                ok += r.status == 200 and b"tcpwise_exporter_evicted_total" in r.read()
        assert ok == 10
        with open(f"/proc/{p.pid}/status") as f:
            rss_kb = int(next(x for x in f if x.startswith("VmRSS:")).split()[1])
        assert rss_kb < 300_000
        fds = len(os.listdir(f"/proc/{p.pid}/fd"))
        assert fds < 256
    finally:
        for s in idle:
            s.close()
        p.terminate()
        _, err = p.communicate(timeout=20)
    assert p.returncode == 0
    assert "Traceback" not in err and len(err.splitlines()) <= 10, err[-2000:]


def test_threads_are_not_per_connection() -> None:
    srv, _ = start(max_conns=100)
    before = threading.active_count()
    socks = [socket.create_connection(srv.address) for _ in range(50)]  # type: ignore[arg-type]
    try:
        time.sleep(0.2)
        assert threading.active_count() - before <= 2
    finally:
        for s in socks:
            s.close()
        srv.stop()

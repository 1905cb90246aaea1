"""The real CLI: JSON shape, exit codes, bad input, the light import chain, top, and a live exporter scrape."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tcpwise.doctor.fixtures import CLIENTS, SERVER_NO_CLOSE, Child, env_pythonpath

pytestmark = [pytest.mark.kernel]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcpwise.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env_pythonpath(),
    )


def test_json_shape_is_exactly_the_contract():
    with (
        Child(SERVER_NO_CLOSE, "127.0.0.61") as srv,
        Child(CLIENTS, "127.0.0.61", srv.info["port"], 12, "close"),
    ):
        time.sleep(0.2)
        r = run("doctor", "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert set(doc) == {
            "schema",
            "host",
            "timestamp",
            "kernel",
            "netns",
            "states",
            "processes",
            "findings",
            "elapsed_s",
        }
        assert doc["schema"] == 2 and doc["kernel"] == os.uname().release and doc["timestamp"].endswith("Z")
        assert list(doc["states"])[:11] == [
            "CLOSED",
            "LISTEN",
            "SYN_SENT",
            "SYN_RCVD",
            "ESTABLISHED",
            "FIN_WAIT_1",
            "FIN_WAIT_2",
            "CLOSE_WAIT",
            "CLOSING",
            "LAST_ACK",
            "TIME_WAIT",
        ]
        for p in doc["processes"]:
            assert set(p) == {"pid", "comm", "cmdline", "states", "fds", "fd_limit"}
            assert sum(p["states"].values()) > 0, "a process without sockets is left out of the table"
        mine = [p for p in doc["processes"] if p["pid"] == srv.pid]
        assert mine and mine[0]["cmdline"][0].endswith("python") or "python" in " ".join(mine[0]["cmdline"])
        for f in doc["findings"]:
            assert set(f) == {"id", "severity", "pid", "message", "evidence", "advice"}
            assert f["severity"] in ("info", "warn", "crit")
        assert 0 < doc["elapsed_s"] < 60
        # --fail-on: the leak is a warn -> exit 1 for warn; exit code 0/1 for crit depending on other findings
        assert run("doctor", "--json", "--pid", str(srv.pid), "--fail-on", "warn").returncode == 1
        assert run("doctor", "--json", "--pid", str(srv.pid), "--fail-on", "crit").returncode == 0
        # Text output (rich) and Chinese.
        t = run("doctor", "--pid", str(srv.pid), "--lang", "zh")
        assert t.returncode == 0 and "close-wait-leak" in t.stdout and "建议" in t.stdout


def test_bad_input_is_one_line_exit_2():
    for args, needle in (
        (("doctor", "--netns", "tcpwise-no-such-ns"), "no network namespace"),
        (("doctor", "--netns", "../etc"), "bad namespace name"),
        (("doctor", "--pid", "999999999"), "no process"),
        (("exporter", "--listen", "nonsense"), "HOST:PORT"),
    ):
        r = run(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("tcpwise: error:") and needle in r.stderr
        assert "Traceback" not in r.stderr


BAD_NUMBERS = ["nan", "inf", "-inf", "1e309", "9223372036854775808", "-1", "1e-12"]


@pytest.mark.parametrize(
    "option",
    [
        ("doctor", "--interval"),
        ("doctor", "--watch"),
        ("doctor", "--idle"),
        ("top", "--interval"),
        ("top", "--idle"),
        ("exporter", "--proc-interval"),
        ("exporter", "--header-timeout"),
        ("exporter", "--idle-timeout"),
        ("exporter", "--idle"),
    ],
    ids=" ".join,
)
def test_a_number_that_cannot_be_slept_or_compared_is_refused_before_any_work(
    option: tuple[str, str],
) -> None:
    """Non-finite, out-of-range or absurdly small seconds: one line, exit 2, before a thread or a sleep starts.
    They used to hang (doctor --watch nan), busy-loop (top --interval 1e-12, exporter --proc-interval nan), kill
    the exporter's refresh thread (--proc-interval inf: OverflowError) or exit 70 (doctor --interval inf)."""
    from tcpwise.cli import main

    cmd, opt = option
    for bad in BAD_NUMBERS:
        with pytest.raises(SystemExit) as exc:
            main([cmd, opt, bad, "--listen", "127.0.0.1:1"] if cmd == "exporter" else [cmd, opt, bad])
        assert exc.value.code == 2, (option, bad)


@pytest.mark.parametrize("cmd", ["doctor", "top", "exporter"])
def test_an_empty_netns_is_named_as_such(cmd: str) -> None:
    """``--netns ''`` said "(needs root)" to root: the setns(2) was on the /run/netns directory itself."""
    r = run(cmd, "--netns", "")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "needs root" not in r.stderr
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .endswith("the network namespace name is empty: give a name from `ip netns list`")
    )


def test_exporter_says_the_address_it_really_bound() -> None:
    """``--listen :PORT`` printed ``http://:PORT/metrics``: the address bound is 0.0.0.0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(
        [sys.executable, "-m", "tcpwise.cli", "exporter", "--no-watch", "--listen", f":{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_pythonpath(),
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
    finally:
        p.terminate()
        p.communicate(timeout=30)
    assert line.startswith(f"tcpwise exporter: serving http://0.0.0.0:{port}/metrics"), line
    assert p.returncode == 0


def test_proc_interval_zero_still_means_every_scrape() -> None:
    from tcpwise.cli import build_parser

    args = build_parser().parse_args(["exporter", "--proc-interval", "0"])
    assert args.proc_interval == 0
    args = build_parser().parse_args(["exporter", "--proc-interval", "0.5"])
    assert args.proc_interval == 0.5


def test_doctor_json_path_imports_neither_rich_nor_prometheus():
    code = (
        "import sys, io, contextlib; from tcpwise import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()): cli.main(['doctor', '--json'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'prometheus_client')))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env_pythonpath()
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_top_runs_a_fixed_number_of_refreshes():
    with (
        Child(SERVER_NO_CLOSE, "127.0.0.62") as srv,
        Child(CLIENTS, "127.0.0.62", srv.info["port"], 3, "hold"),
    ):
        r = run("top", "--count", "2", "--interval", "0.2")
        assert r.returncode == 0, r.stderr
        assert "ESTABLISHED" in r.stdout and "processes" in r.stdout and str(srv.pid) in r.stdout


def test_exporter_serves_metrics():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        Child(SERVER_NO_CLOSE, "127.0.0.63") as srv,
        Child(CLIENTS, "127.0.0.63", srv.info["port"], 12, "close"),
    ):
        time.sleep(0.2)
        p = subprocess.Popen(
            [sys.executable, "-m", "tcpwise.cli", "exporter", "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_pythonpath(),
        )
        try:
            body = ""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    body = (
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
                    )
                    break
                except OSError:
                    assert p.poll() is None, p.stderr.read() if p.stderr else ""
                    time.sleep(0.2)
            assert 'tcpwise_sockets{state="CLOSE_WAIT"}' in body
            assert (
                f'tcpwise_process_sockets{{comm="python",pid="{srv.pid}",state="CLOSE_WAIT"}} 12.0' in body
                or f'pid="{srv.pid}"' in body
            )
            assert 'tcpwise_findings{id="close-wait-leak",severity="warn"} ' in body
            line = next(
                x
                for x in body.splitlines()
                if x.startswith('tcpwise_findings{id="close-wait-leak",severity="warn"}')
            )
            assert float(line.split()[-1]) >= 1
            assert f'tcpwise_listener_backlog{{listen="127.0.0.63:{srv.info["port"]}"}} 1024.0' in body
            assert "tcpwise_kernel_listen_overflows_total" in body
            # Every metric the Grafana dashboard queries is one the exporter serves.
            dash = open(os.path.join(ROOT, "docs", "grafana-tcpwise.json")).read()
            served = set(re.findall(r"^(tcpwise_\w+)", body, re.M))
            served |= set(re.findall(r"^# TYPE (tcpwise_\w+) ", body, re.M))  # families with no sample now
            for name in set(re.findall(r"tcpwise_[a-z_]+", dash)):
                assert name in served, name
        finally:
            p.terminate()
            p.wait(timeout=10)

"""Each config reader on real-shaped files (tests/ladder/configs), units, includes, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpwise.errors import UsageError
from tcpwise.ladder.parsers.apps import (
    go_duration,
    read_go,
    read_gunicorn,
    read_hypercorn,
    read_node,
    read_uvicorn,
)
from tcpwise.ladder.parsers.envoy import read_envoy
from tcpwise.ladder.parsers.haproxy import read_haproxy
from tcpwise.ladder.parsers.nginx import read_nginx
from tcpwise.ladder.parsers.sysctl import read_sysctl
from tcpwise.ladder.units import format_duration, parse_duration

CFG = Path(__file__).parent / "configs"


@pytest.mark.parametrize(
    "text,unit,want",
    [("75s", "s", 75), ("1m", "s", 60), ("1h30m", "s", 5400), ("1h 30m", "s", 5400), ("500ms", "s", 0.5),
     ("75", "s", 75), ("3000", "ms", 3), ("0.5s", "s", 0.5), ("2d", "s", 172800), ("1m30s", "s", 90)],
)  # fmt: skip
def test_units(text: str, unit: str, want: float) -> None:
    assert parse_duration(text, unit) == pytest.approx(want)


@pytest.mark.parametrize("bad", ["", "abc", "30m1h", "1h30", "-5s", "5x", "1.2.3s"])
def test_bad_units_are_one_line_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(bad)


@given(st.integers(min_value=1, max_value=10**7))
def test_format_then_parse_round_trips(ms: int) -> None:
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


def test_nginx_includes_units_and_upstream() -> None:
    h = read_nginx(str(CFG / "nginx.conf"))
    assert h.seconds("idle") == 65  # the smaller of http (65, bare number) and server (75s)
    assert h.values["idle"].source.line == 7
    assert h.seconds("pool_idle") == 60  # upstream app: keepalive_timeout 1m (from the included file)
    assert h.values["pool_idle"].source.file.endswith("conf.d/app.conf")
    assert h.context["upstream"] == "app"
    assert h.seconds("hard_limit") == 5400  # keepalive_time 1h30m
    assert h.seconds("read_timeout") == 300
    assert h.seconds("keepalive") == 30  # listen ... so_keepalive=30s::
    static = read_nginx(str(CFG / "nginx.conf"), upstream="static")
    assert static.seconds("pool_idle") == 0 and any("new connection per request" in n for n in static.notes)


@pytest.mark.parametrize(
    "text,msg",
    [("http { keepalive_timeout 5s }", "missing ';'"), ("http { server {", "not closed"),
     ("http { keepalive_timeout 5q; }", "keepalive_timeout"), ('http { a "b; }', "unterminated"),
     ("include nothere.conf;", "no such file"), ("}", "unexpected")],
)  # fmt: skip
def test_nginx_errors_name_file_and_line(tmp_path: Path, text: str, msg: str) -> None:
    f = tmp_path / "bad.conf"
    f.write_text(text)
    with pytest.raises(UsageError, match=msg) as ei:
        read_nginx(str(f))
    assert str(f) in str(ei.value)


def test_nginx_include_loop_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include a.conf;")
    with pytest.raises(UsageError, match="nested"):
        read_nginx(str(tmp_path / "a.conf"))


def test_haproxy_defaults_inheritance_and_ms() -> None:
    h = read_haproxy(str(CFG / "haproxy.cfg"))
    assert h.seconds("idle") == 10  # timeout http-keep-alive 10s wins over timeout client
    assert h.seconds("pool_idle") == float("inf")  # idle server connections: no idle timeout of HAProxy's own
    assert h.seconds("read_timeout") == 30 and h.seconds("keepalive") == 60
    old = read_haproxy(str(CFG / "haproxy.cfg"), backend="old")
    assert old.seconds("pool_idle") == 0  # option http-server-close: no reuse


def test_haproxy_errors(tmp_path: Path) -> None:
    f = tmp_path / "h.cfg"
    f.write_text("timeout client 5s\n")
    with pytest.raises(UsageError, match=r"h\.cfg:1"):
        read_haproxy(str(f))
    f.write_text("defaults\n  timeout client 5q\nfrontend a\n")
    with pytest.raises(UsageError, match=r"h\.cfg:2"):
        read_haproxy(str(f))


def test_envoy_yaml_with_lines_and_json(tmp_path: Path) -> None:
    h = read_envoy(str(CFG / "envoy.yaml"))
    assert h.seconds("idle") == 300 and h.values["idle"].source.line == 12
    assert h.seconds("pool_idle") == 90 and h.seconds("read_timeout") == 30 and h.seconds("keepalive") == 300
    j = tmp_path / "e.json"
    j.write_text(
        '{"static_resources": {"clusters": [{"name": "c", "common_http_protocol_options": {"idle_timeout": "0s"}}]}}'
    )
    assert read_envoy(str(j)).seconds("pool_idle") == float("inf")  # 0s disables it
    j.write_text("static_resources: [")
    with pytest.raises(UsageError, match="YAML"):
        read_envoy(str(j))


def test_app_servers() -> None:
    assert read_gunicorn(str(CFG / "gunicorn.conf.py")).seconds("idle") == 75  # the commented 2 is skipped
    assert read_uvicorn(str(CFG / "Procfile")).seconds("idle") == 5
    assert read_hypercorn(str(CFG / "hypercorn.toml")).seconds("idle") == 30
    node = read_node(str(CFG / "server.js"))
    assert node.seconds("idle") == 61 and node.values["idle"].source.line == 4
    go = read_go(str(CFG / "main.go"))
    assert go.role == "proxy" and go.seconds("idle") == 120 and go.seconds("pool_idle") == 90


def test_gunicorn_sync_worker_keeps_nothing(tmp_path: Path) -> None:
    f = tmp_path / "g.py"
    f.write_text("keepalive = 30\n")
    h = read_gunicorn(str(f))
    assert h.seconds("idle") == 0 and "sync worker" in h.notes[0]


@pytest.mark.parametrize(
    "expr,want", [("90 * time.Second", 90), ("time.Minute", 60), ("2*time.Minute", 120), ("time.Second * 30", 30),
                  ("time.Duration(500) * time.Millisecond", 0.5), ("0", 0)],
)  # fmt: skip
def test_go_durations(expr: str, want: float) -> None:
    assert go_duration(expr) == pytest.approx(want)


def test_sysctl() -> None:
    s = read_sysctl(str(CFG / "sysctl.conf"))
    assert s["net.ipv4.tcp_keepalive_time"].seconds == 600
    assert s["net.netfilter.nf_conntrack_tcp_timeout_established"].source.line == 4


def test_unreadable_files_are_usage_errors(tmp_path: Path) -> None:
    for reader in (read_nginx, read_haproxy, read_envoy, read_uvicorn, read_go):
        with pytest.raises(UsageError, match="no such file"):
            reader(str(tmp_path / "missing"))

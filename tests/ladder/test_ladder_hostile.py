"""Hostile and damaged configs: each is refused with one line and exit code 2, quickly and in little memory.

None of these tests measures time: each input would run for minutes or exhaust memory without its limit, so a test
that simply gets its one-line error back is the proof that the limit holds.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tcpwise.cli import main
from tcpwise.errors import UsageError
from tcpwise.ladder.parsers import MAX_FILE_BYTES
from tcpwise.ladder.parsers.apps import read_gunicorn, read_node, read_uvicorn
from tcpwise.ladder.parsers.nginx import read_nginx
from tcpwise.ladder.parsers.sysctl import read_sysctl
from tcpwise.ladder.path import MAX_HOPS, hop_from_spec
from tcpwise.ladder.presets import Preset


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``tcpwise ladder ARGV``; it must exit 2 with exactly one ``tcpwise: error:`` line."""
    assert main(["ladder", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tcpwise: error:"), err
    return err[0]


def test_a_file_over_the_size_limit_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    big = tmp_path / "nginx.conf"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    assert "larger than 4 MiB" in _one_line_error(capsys, "--nginx", str(big), "--hop", "uvicorn")
    big.write_bytes(b"#" * MAX_FILE_BYTES)  # exactly at the limit: read (and found empty of settings)
    assert main(["ladder", "--nginx", str(big), "--hop", "uvicorn"]) == 0


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_that_never_ends_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "not a regular file" in _one_line_error(capsys, "--nginx", "/dev/zero", "--hop", "uvicorn")


def test_a_pipe_is_read_up_to_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    # A pipe (bash's <(...)) is a legitimate config source, but it may never end: it is read up to the cap only.
    # The writer sends twice the cap and then holds the pipe open without EOF, as an endless source would: a reader
    # without the cap blocks here (and pytest-timeout fails the test) instead of eating memory.
    r, w = os.pipe()
    done = threading.Event()

    def writer() -> None:
        try:
            for _ in range(2 * MAX_FILE_BYTES // 65536):
                os.write(w, b"#" * 65536)
            done.wait()
        except OSError:  # EPIPE: the reader has stopped and closed its end
            pass
        finally:
            os.close(w)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        assert "larger than" in _one_line_error(capsys, "--nginx", f"/dev/fd/{r}", "--hop", "uvicorn")
    finally:
        done.set()
        os.close(r)
        t.join()


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``levels`` lines, each a list of ``width`` aliases to the line before: width**levels nodes in ~400 bytes."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # 9**9 = 387 million nodes once expanded: without the node budget this runs for minutes into gigabytes.
    path = tmp_path / "path.yaml"
    path.write_text(_alias_bomb())
    assert "aliases expand to more than 1,000,000 nodes" in _one_line_error(capsys, str(path))
    envoy = tmp_path / "envoy.yaml"
    envoy.write_text(_alias_bomb() + "static_resources: {}\n")
    err = _one_line_error(capsys, "--envoy", str(envoy), "--hop", "nginx")
    assert str(envoy) in err and "aliases expand" in err


def test_aliases_within_reason_still_work(tmp_path: Path) -> None:
    # The budget counts nodes, not aliases: a config that reuses an anchor a few times is read as before.
    from tcpwise.ladder.parsers.envoy import load_yaml_with_lines

    f = tmp_path / "a.yaml"
    f.write_text(_alias_bomb(levels=3, width=9))  # 9 + 81 + 729 leaves
    doc = load_yaml_with_lines(str(f))
    assert len(doc["l2"]) == 9 and doc["l2"][8][8] == ["lol"] * 9


def test_a_yaml_alias_to_itself_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "path.yaml"
    f.write_text("hops: &h [{kind: nginx}, *h]\n")
    assert "refers to the collection that contains it" in _one_line_error(capsys, str(f))


@pytest.mark.parametrize(
    "name,text",
    [("deep.yaml", "[" * 20000), ("deep_map.yaml", "a: {" * 5000), ("deep.json", '{"a": ' * 200 + "1" + "}" * 200),
     ("deep.toml", "a = " + "[" * 20000), ("inline.toml", "a = " + "{b = " * 3000)],
)  # fmt: skip
def test_deep_nesting_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, text: str
) -> None:
    # The YAML and TOML loaders recurse per level: without a bound this is RecursionError, "internal error", exit 70.
    f = tmp_path / name
    f.write_text(text)
    assert "nested" in _one_line_error(capsys, str(f))
    if name.endswith("yaml"):
        assert "nested" in _one_line_error(capsys, "--envoy", str(f), "--hop", "nginx")


def test_nginx_include_fan_out_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # 13 levels of 4 files, each including the 4 of the next level: 52 files on disk, 4**13 = 67 million parses.
    # The depth limit (16) never fires; the bound on the number of included files does.
    levels = 13
    for i in range(levels):
        (tmp_path / f"l{i}").mkdir()
        body = f"include {tmp_path}/l{i + 1}/*.conf;\n" if i + 1 < levels else "keepalive_timeout 5s;\n"
        for j in range(4):
            (tmp_path / f"l{i}" / f"f{j}.conf").write_text(body)
    root = tmp_path / "nginx.conf"
    root.write_text(f"http {{ include {tmp_path}/l0/*.conf; }}\n")
    assert "includes reach more than 1000 files" in _one_line_error(
        capsys, "--nginx", str(root), "--hop", "uvicorn"
    )


def test_nginx_includes_are_bounded_in_bytes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Each file is under the per-file limit; together they are over the limit for the whole config.
    for j in range(3):
        (tmp_path / f"big{j}.conf").write_bytes(b"#" * (3 * 1024 * 1024) + b"\n")
    root = tmp_path / "nginx.conf"
    root.write_text("http { include big*.conf; }\n")
    assert "exceed 8 MiB" in _one_line_error(capsys, "--nginx", str(root), "--hop", "uvicorn")


def test_nginx_deep_blocks_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # The block parser recurses per level: without a bound this was RecursionError, "internal error", exit 70.
    f = tmp_path / "nginx.conf"
    f.write_text("http { " + "a { " * 5000 + "}" * 5001)
    assert "blocks nested more than 50 deep" in _one_line_error(capsys, "--nginx", str(f), "--hop", "uvicorn")
    # ... and the depth counts across an include, which continues the including block.
    (tmp_path / "inner.conf").write_text("a { " * 30 + "}" * 30)
    f.write_text("http { " + "a { " * 30 + "include inner.conf; " + "}" * 31)
    assert "blocks nested" in _one_line_error(capsys, "--nginx", str(f), "--hop", "uvicorn")


def _hops_toml(n: int) -> str:
    return '[[hop]]\nkind = "nginx"\nname = "h"\n' * n


def test_too_many_hops_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "path.toml"
    f.write_text(_hops_toml(MAX_HOPS + 1))
    assert f"more than the {MAX_HOPS} a path may have" in _one_line_error(capsys, str(f))
    # The cap counts the path file and the command line together.
    f.write_text(_hops_toml(MAX_HOPS))
    assert "more than the" in _one_line_error(capsys, str(f), "--hop", "uvicorn")
    assert main(["ladder", str(f)]) == 0
    capsys.readouterr()


def test_the_read_timeout_rule_looks_at_each_hop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # It compared every hop with every hop in front of it, looking up the preset each time: 3000 hops took 1.5 M
    # look-ups. Now each hop's preset is looked up a bounded number of times, whatever the path's length.
    from tcpwise.ladder import rules

    hops = [hop_from_spec("nginx") for _ in range(MAX_HOPS)] + [hop_from_spec("aws-alb")]
    calls = 0
    real = rules.get_preset

    def counting(kind: str) -> Preset:
        nonlocal calls
        calls += 1
        return real(kind)

    monkeypatch.setattr(rules, "get_preset", counting)
    rules._read_rules(hops)
    assert calls <= 2 * len(hops)


def test_the_read_timeout_rule_still_finds_every_pair() -> None:
    from tcpwise.ladder import rules

    hops = [
        hop_from_spec(s) for s in ("aws-nat", "nginx:read_timeout=1h", "aws-alb", "envoy:read_timeout=1h")
    ]
    pairs = [f.hops for f in rules._read_rules(hops)]
    assert pairs == [("aws-nat", "nginx"), ("aws-nat", "envoy"), ("aws-alb", "envoy")]


@pytest.mark.parametrize(
    "value,seconds",
    [("65_000", 65), ("65e3", 65), ("0x10000", 65.536), ("65 * 1000", 65), (".5e3", 0.5), ("0b1111101000", 1)],
)  # fmt: skip
def test_node_reads_javascript_numbers(tmp_path: Path, value: str, seconds: float) -> None:
    # Reading only the leading digits made 65_000 and 65e3 65 ms and 0x10000 0 ms ("never").
    f = tmp_path / "server.js"
    f.write_text(f"server.keepAliveTimeout = {value};\n")
    assert read_node(str(f)).seconds("idle") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value,msg",
    [("1e400", "not a timeout"), ("3e9", "Node's timers cannot hold it"), ("010", "JavaScript number"),
     ("65000n", "JavaScript number"), ("65_", "JavaScript number"), ("65000 + 1000", "JavaScript number")],
)  # fmt: skip
def test_node_numbers_node_would_not_honour_are_refused(tmp_path: Path, value: str, msg: str) -> None:
    f = tmp_path / "server.js"
    f.write_text(f"const server = http.createServer(app);\nserver.keepAliveTimeout = {value};\n")
    with pytest.raises(UsageError, match=msg) as ei:
        read_node(str(f))
    assert f"{f}:2" in str(ei.value)


@pytest.mark.parametrize(
    "line,want",
    [("uvicorn app:app --timeout-keep-alive=1e3", "not a whole number"), ("--timeout-keep-alive 1e400", "not a whole"),
     ("UVICORN_TIMEOUT_KEEP_ALIVE=7.5", "not a whole number"), ("uvicorn.run(app, timeout_keep_alive=1e400)", "not a"),
     ("--timeout-keep-alive 75", 75.0), ("uvicorn.run(app, timeout_keep_alive=1e3)", 1000.0),
     ("Config(app, timeout_keep_alive=1_000)", 1000.0), ("uvicorn.run(app, timeout_keep_alive=5 * 60)", 300.0)],
)  # fmt: skip
def test_uvicorn_reads_numbers_as_uvicorn_does(tmp_path: Path, line: str, want: str | float) -> None:
    # The command line and the environment go through click's int type, which refuses 1e3; Python code is Python.
    f = tmp_path / "Procfile"
    f.write_text(line + "\n")
    if isinstance(want, float):
        assert read_uvicorn(str(f)).seconds("idle") == want
    else:
        with pytest.raises(UsageError, match=want):
            read_uvicorn(str(f))


def test_gunicorn_keepalive_is_a_whole_number(tmp_path: Path) -> None:
    f = tmp_path / "gunicorn.conf.py"
    f.write_text('worker_class = "gthread"\nkeepalive = 7_5\n')
    assert read_gunicorn(str(f)).seconds("idle") == 75
    f.write_text('worker_class = "gthread"\nkeepalive = 1e3\n')
    with pytest.raises(UsageError, match="whole number"):
        read_gunicorn(str(f))


@pytest.mark.parametrize(
    "value,want",
    [("75s", 75.0), ('"1h 30m"', 5400.0), ("500ms", 0.5), ("1M", 30 * 86400.0), ("106751991167d", 9223372036828800.0),
     ("99999999999999999999999999999999999999d", "too large"), ("106751991168d", "too large"),
     ("0.5s", "whole numbers"), ("nan", "whole numbers"), ("30m1h", "largest to the smallest"), ('""', "empty")],
)  # fmt: skip
def test_nginx_time_values_nginx_refuses_are_refused(tmp_path: Path, value: str, want: str | float) -> None:
    # nginx keeps a timeout in a signed 64-bit count of milliseconds and refuses what overflows it (the last good
    # value is 106751991167 days); it takes no fractions. Before, both were read as if nginx had taken them.
    f = tmp_path / "nginx.conf"
    f.write_text(f"http {{ keepalive_timeout {value}; }}\n")
    if isinstance(want, float):
        assert read_nginx(str(f)).seconds("idle") == want
    else:
        with pytest.raises(UsageError, match=want):
            read_nginx(str(f))


def test_nginx_so_keepalive_idle_is_within_the_kernel_limit(tmp_path: Path) -> None:
    f = tmp_path / "nginx.conf"
    f.write_text("http { server { listen 80 so_keepalive=32767s::; } }\n")
    assert read_nginx(str(f)).seconds("keepalive") == 32767
    f.write_text("http { server { listen 80 so_keepalive=32768s::; } }\n")
    with pytest.raises(UsageError, match="kernel refuses it"):
        read_nginx(str(f))


@pytest.mark.parametrize(
    "value,want",
    [("600", 600.0), ("2147483", 2147483.0), ("2147484", "kernel refuses it"),
     ("99999999999999999999999999", "kernel refuses it"), ("1e3", "whole number"), ("7.5", "whole number"),
     ("-5", "whole number"), ("inf", "whole number")],
)  # fmt: skip
def test_sysctl_values_the_kernel_refuses_are_refused(tmp_path: Path, value: str, want: str | float) -> None:
    # float() read 1e3 as 1000 and took 1e26 s; the kernel takes whole numbers and refuses what overflows jiffies.
    f = tmp_path / "sysctl.conf"
    f.write_text(f"net.ipv4.tcp_keepalive_time = {value}\n")
    if isinstance(want, float):
        assert read_sysctl(str(f))["net.ipv4.tcp_keepalive_time"].seconds == want
    else:
        with pytest.raises(UsageError, match=want):
            read_sysctl(str(f))


def test_a_fifo_without_a_writer_says_so_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """open(2) of a FIFO blocks until a writer appears: tcpwise used to wait there silently forever. Now a notice
    says what it waits for, Ctrl-C stops it (130), and a writer that shows up later is read normally."""
    import signal
    import subprocess
    import sys
    import time

    fifo = tmp_path / "nginx.conf"
    os.mkfifo(fifo)
    cmd = [sys.executable, "-m", "tcpwise.cli", "ladder", "--nginx", str(fifo), "--hop", "uvicorn"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    line = p.stderr.readline()  # blocks until the notice (or the end: then the assertion says what came)
    assert line.startswith(f"tcpwise: waiting for {fifo}"), line
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=30)
    assert p.returncode == 130 and "Traceback" not in err, err

    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    with open(fifo, "w") as w:  # the writer arrives late
        w.write("http { keepalive_timeout 30s; }\n")
    out, err = p.communicate(timeout=60)
    assert p.returncode in (0, 1) and "nginx" in out, err

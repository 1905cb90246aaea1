"""Every command as a newcomer meets it at 80 columns: the cheap examples run, output fits 80 columns unless
--wide, colour follows --color and NO_COLOR, and bad input is one line ``tcpwise: error: ...`` with exit 2.

The kernel-bound examples (lab, watch, probe against a server, ladder-race, exporter, top) are parsed by
tests/cli/test_cli_help.py; here run the ones that need no namespace, no tracepoint and no waiting.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tcpwise import term
from tcpwise.cli import build_parser, main
from tcpwise.term import cell_width, epilog_examples

# The examples that run here, by command; each needs at most a small capture made by `tcpwise sim`.
RUNNABLE = {
    "trace": lambda ex: "parquet" not in ex,  # needs the optional pyarrow
    "ladder": lambda ex: not any(a.endswith((".conf", ".toml", "Procfile")) for a in ex),
    "guard": lambda ex: ex[1] == "heartbeat",
    "lab": lambda ex: ex == ["lab", "demo"],
    "probe": lambda ex: ex == ["probe", "--list"],
    "doctor": lambda ex: ex in (["doctor"], ["doctor", "--json"], ["doctor", "--fail-on", "warn"]),
}


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors and --help
        return int(e.code or 0)


@pytest.fixture
def captures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """capture.pcap (3 connections), its pcapng-named twin and offload.pcap, in the working directory."""
    monkeypatch.chdir(tmp_path)
    assert main(["sim", "client-leak", "-f", "pcap", "-o", "capture.pcap"]) == 0
    shutil.copy("capture.pcap", "capture.pcapng")  # trace reads the format from the magic, not the name
    assert main(["sim", "close", "-f", "pcap", "-o", "offload.pcap"]) == 0
    assert main(["sim", "close", "-f", "pcap", "-o", "day.pcap"]) == 0
    return tmp_path


def _widest(text: str) -> int:
    return max((cell_width(line) for line in text.splitlines()), default=0)


def test_the_cheap_examples_run_and_fit_80_columns(
    captures: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    ran = []
    for ex in epilog_examples(build_parser()):
        keep = RUNNABLE.get(ex[0]) if ex else None
        if keep is None or not keep(ex) or "--wide" in ex:
            continue
        capsys.readouterr()
        rc = _run(ex)
        out = capsys.readouterr()
        assert rc in (0, 1), (ex, out.err)  # 1: a finding / a mismatch, which these examples show on purpose
        assert "Traceback" not in out.err, ex
        if "--json" not in ex and "json" not in ex and "zeek" not in ex:
            assert _widest(out.out) <= 80, (ex, [ln for ln in out.out.splitlines() if cell_width(ln) > 80])
        ran.append(ex[0])
    assert {"trace", "ladder", "guard", "lab", "probe", "doctor"} <= set(ran), ran
    assert len(ran) >= 15


# argv, and whether --wide must make this output wider than 80 columns (it has long rows to show)
VIEWS = [
    (["trace", "capture.pcap"], True),
    (["trace", "capture.pcap", "--conn", "3"], False),
    (["trace", "capture.pcap", "--conn", "3", "--lang", "zh"], False),
    (["ladder", "--hop", "nginx", "--hop", "uvicorn"], False),
    (["ladder", "--defaults"], True),
    (["guard", "heartbeat", "--interval", "30", "--server-idle", "10"], False),
    (["lab", "demo"], False),
    (["probe", "--list"], False),
    (["doctor"], False),
    (["doctor", "--lang", "zh"], False),
    (["sim", "close", "--lang", "zh"], False),
    (["scenarios", "--lang", "zh"], False),
]


@pytest.mark.parametrize(("argv", "wider"), VIEWS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_output_fits_80_columns_in_english_and_chinese(
    argv: list[str], wider: bool, captures: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert _run(argv) in (0, 1)
    text = capsys.readouterr().out
    assert text.strip() and _widest(text) <= 80, [ln for ln in text.splitlines() if cell_width(ln) > 80]
    assert "\x1b[" not in text  # not a terminal: no colour
    if wider:
        assert _run([*argv, "--wide"]) in (0, 1)
        assert _widest(capsys.readouterr().out) > 80  # the check can see a long line


def test_the_width_check_turns_red_when_a_command_ignores_the_width(
    captures: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plant the bug: output_width forgets the 80-column default and takes a 200-column terminal's width (as
    --wide does) -> trace's table and the ladder's defaults go past 80 columns, which the check above reports."""
    monkeypatch.setattr(term, "output_width", lambda wide=False, stream=None: 200)
    assert main(["trace", "capture.pcap"]) == 0
    assert _widest(capsys.readouterr().out) > 80
    assert main(["ladder", "--defaults"]) == 0
    assert _widest(capsys.readouterr().out) > 80


@pytest.mark.parametrize(
    "argv",
    [
        ["ladder", "--hop", "nginx", "--hop", "uvicorn", "--color", "always"],
        ["trace", "capture.pcap", "--conn", "1", "--color", "always"],
        ["doctor", "--color", "always"],
    ],
    ids=lambda v: v[0],
)
def test_color_always_colours_and_never_does_not(
    argv: list[str], captures: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")  # --color always wins over NO_COLOR
    assert _run(argv) in (0, 1)
    assert "\x1b[" in capsys.readouterr().out
    assert _run([*argv[:-1], "never"]) in (0, 1)
    assert "\x1b[" not in capsys.readouterr().out


BAD = [
    ["trace", "nosuch.pcap"],
    ["trace", "corrupt.pcap"],
    ["trace", "capture.pcap", "--conn", "99"],
    ["trace", "capture.pcap", "--conn", "-1"],
    ["trace", "capture.pcap", "--format", "bogus"],
    ["trace", "capture.pcap", "--conn", "1", "--lang", "xx"],
    ["trace", "capture.pcap", "--inactivity-timeout", "-1"],
    ["trace", "capture.pcap", "-o", "no-such-dir/out.txt"],
    ["ladder", "--hop", "nosuch", "--hop", "nginx"],
    ["ladder", "nosuch.toml"],
    ["ladder", "corrupt.toml"],
    ["ladder", "--hop", "nginx:idle=-5s", "--hop", "uvicorn"],
    ["ladder", "--hop", "nginx", "--hop", "uvicorn", "--margin", "-3"],
    ["guard", "heartbeat", "--interval", "nan", "--server-idle", "10"],
    ["guard", "heartbeat", "--interval", "-1", "--server-idle", "10"],
    ["guard", "serve", "--port", "99999"],
    ["guard", "serve", "--port", "-1"],
    ["watch", "--port", "99999"],
    ["watch", "--pid", "-1"],
    ["watch", "--addr", "not-an-ip"],
    ["watch", "--state", "BOGUS"],
    ["watch", "--duration", "-1"],
    ["doctor", "--top", "-1"],
    ["doctor", "--idle", "-5"],
    ["doctor", "--pid", "999999999"],
    ["top", "--rows", "0"],
    ["exporter", "--listen", "127.0.0.1:99999"],
    ["exporter", "--top", "0"],
    ["lab", "run", "close", "--set", "novalue"],
    ["lab", "demo", "nosuch"],
    ["lab", "clean", "--run", "notarun"],
    ["lab", "conform", "--jobs", "0"],
    ["probe", "--port", "99999", "--serve", "true", "--all"],
    ["probe", "--port", "80", "--serve", "true", "--behaviour", "nosuch"],
    ["probe", "--port", "80", "--serve", "true", "--all", "--deadline", "-1"],
    ["sim", "nosuch"],
    ["sim", "close", "--set", "time_wait=-1"],
]


@pytest.mark.parametrize("argv", BAD, ids=lambda v: " ".join(v))
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], captures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("corrupt.pcap").write_bytes(b"this is not a capture at all\n")
    Path("corrupt.toml").write_text("[[hop]\nkind = \n")
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ": error: " in ln]
    assert len(errors) == 1 and errors[0].startswith("tcpwise"), err
    assert err.strip().splitlines()[-1] == errors[0]  # the error is the last thing said


@pytest.mark.parametrize("kind", ["file", "devnull", "fifo", "under-a-file"])
@pytest.mark.parametrize("cmd", [["demo", "--report"], ["report", "-o"]], ids=" ".join)
def test_a_report_folder_that_cannot_be_one_is_refused_before_any_work(
    kind: str, cmd: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``demo --report FILE`` ran the diagrams and the whole gallery (~10 s) and then died with exit 70
    (NotADirectoryError); it now uses report -o's up-front check: one line, exit 2, nothing printed before it."""
    import os

    target = {
        "file": tmp_path / "a-file",
        "devnull": Path(os.devnull),
        "fifo": tmp_path / "a-fifo",
        "under-a-file": tmp_path / "a-file" / "gallery",
    }[kind]
    (tmp_path / "a-file").write_text("x")
    os.mkfifo(tmp_path / "a-fifo")
    assert _run([*cmd, str(target)]) == 2
    out, err = capsys.readouterr()
    assert (
        out == "" and err.count("\n") == 1 and err.startswith("tcpwise: error: ") and "not a directory" in err
    )


def test_the_error_check_turns_red_on_a_traceback(
    captures: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plant the bug: the ladder's TOML reader lets a parser exception escape -> not exit 2 any more."""
    import tcpwise.ladder.path as path

    def broken(*_a: object, **_k: object) -> None:
        raise ValueError("planted")

    monkeypatch.setattr(path, "load_path_file", broken)
    Path("corrupt.toml").write_text("[[hop]\n")
    assert _run(["ladder", "corrupt.toml"]) != 2


@pytest.mark.kernel
@pytest.mark.parametrize(
    "argv", [["lab", "demo", "time-wait", "--quick"], ["lab", "run", "close", "--lang", "zh"]], ids=" ".join
)
def test_lab_output_fits_80_columns(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(argv) in (0, 1)
    text = capsys.readouterr().out
    assert text.strip() and _widest(text) <= 80, [ln for ln in text.splitlines() if cell_width(ln) > 80]


# -- output paths that are mistakes -------------------------------------------------------------------------------
def test_a_full_stdout_is_one_line_not_an_internal_error() -> None:
    """`> /dev/full`: ENOSPC on stdout is the environment's fault, said in one line with exit 2 (was exit 70)."""
    import subprocess
    import sys

    for argv in (["scenarios", "--json"], ["sim", "close"]):
        with open("/dev/full", "w") as full:
            r = subprocess.run([sys.executable, "-m", "tcpwise.cli", *argv], stdout=full, stderr=subprocess.PIPE,
                               text=True, timeout=60)  # fmt: skip
        assert r.returncode == 2, (argv, r.stderr)
        assert r.stderr.strip() == "tcpwise: error: cannot write: No space left on device", r.stderr


def test_empty_and_dash_output_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """-o '' (an unset shell variable) is refused, never stdout or the current directory; -o - is stdout for
    every command (trace used to create a file named '-')."""
    monkeypatch.chdir(tmp_path)
    assert _run(["sim", "close", "--format", "pcap", "-o", "c.pcap"]) == 0
    for argv in (
        ["sim", "close", "-o", ""],
        ["trace", "c.pcap", "-o", ""],
        ["trace", "c.pcap", "--conn", "1", "-o", ""],
    ):
        capsys.readouterr()
        assert _run(argv) == 2, argv
        assert "the output path is empty" in capsys.readouterr().err
    capsys.readouterr()
    assert _run(["trace", "c.pcap", "--format", "zeek", "-o", "-"]) == 0
    assert capsys.readouterr().out.startswith("#separator")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pcap"]


def test_trace_refuses_to_write_over_its_capture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run(["sim", "close", "--format", "pcap", "-o", "c.pcap"]) == 0
    before = (tmp_path / "c.pcap").read_bytes()
    (tmp_path / "link.pcap").symlink_to(tmp_path / "c.pcap")
    for argv in (["trace", "c.pcap", "-o", "c.pcap"], ["trace", "c.pcap", "-f", "json", "-o", "./link.pcap"],
                 ["trace", "link.pcap", "--conn", "1", "-o", "c.pcap"]):  # fmt: skip
        capsys.readouterr()
        assert _run(argv) == 2, argv
        assert "is the capture being read" in capsys.readouterr().err
    assert (tmp_path / "c.pcap").read_bytes() == before

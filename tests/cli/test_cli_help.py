"""Help, examples, completion, --version, colour and width: the CLI as a new user meets it.

``OWN`` lists the commands these tests hold to the rules (every option has help, shows its choices and its
default; every example in an epilog parses and, for ``sim``, runs). Another area adopts the rules by adding its
command here (and its options' help strings), e.g. ``("doctor",)`` or ``("lab", "run")``.
"""

from __future__ import annotations

import argparse
import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tcpwise.cli import build_parser, main, version_text
from tcpwise.errors import UsageError
from tcpwise.outfile import write_output
from tcpwise.term import (
    Column,
    HelpFormatter,
    epilog_examples,
    fmt_bytes,
    fmt_seconds,
    output_width,
    table,
    use_color,
)

OWN: list[tuple[str, ...]] = [
    (),
    ("scenarios",),
    ("sim",),
    ("report",),
    ("demo",),
    ("completion",),
    ("lab",),
    ("lab", "run"),
    ("lab", "conform"),
    ("lab", "demo"),
    ("lab", "clean"),
    ("doctor",),
    ("top",),
    ("exporter",),
    ("watch",),
    ("trace",),
    ("guard",),
    ("guard", "heartbeat"),
    ("guard", "serve"),
    ("ladder",),
    ("ladder-race",),
    ("probe",),
]


def _subparser(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    p = parser
    for name in path:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[name]
    return p


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)]


def _rule_violations(p: argparse.ArgumentParser) -> list[str]:
    bad = []
    if not issubclass(p.formatter_class, HelpFormatter):
        bad.append(f"{p.prog}: help not formatted by tcpwise.term.HelpFormatter (choices and defaults)")
    if not p.description and p.prog != "tcpwise":
        bad.append(f"{p.prog}: no description")
    help_text = p.format_help()
    for a in _options(p):
        name = "/".join(a.option_strings) or a.dest
        if not a.help or a.help == argparse.SUPPRESS:
            bad.append(f"{p.prog} {name}: no help")
            continue
        shown = HelpFormatter(p.prog)._get_help_string(a) or ""
        if a.choices is not None and not all(str(c) in help_text for c in a.choices):
            bad.append(f"{p.prog} {name}: choices not shown")
        if a.default not in (None, False, [], argparse.SUPPRESS) and "default" not in shown:
            bad.append(f"{p.prog} {name}: default {a.default!r} not shown")
    if p.prog != "tcpwise completion" and not epilog_examples(p):
        bad.append(f"{p.prog}: no examples")
    return bad


@pytest.mark.parametrize("path", OWN, ids=lambda p: " ".join(p) or "root")
def test_every_option_has_help_choices_and_default(path: tuple[str, ...]) -> None:
    assert _rule_violations(_subparser(build_parser(), path)) == []


def test_the_help_rule_turns_red_on_an_undocumented_option() -> None:
    p = argparse.ArgumentParser(prog="tcpwise x", description="d", epilog="examples:\n  tcpwise x --n 3\n")
    p.add_argument("--n", type=int, default=3)  # no help
    p.add_argument("--mode", choices=("a", "b"), default="a", metavar="M", help="mode")
    assert any("no help" in v for v in _rule_violations(p))
    assert any("HelpFormatter" in v for v in _rule_violations(p))  # argparse's own formatter hides defaults


def test_help_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    for path in OWN:
        text = _subparser(build_parser(), path).format_help()
        wide = [line for line in text.splitlines() if len(line) > 80]
        assert not wide, (path, wide)


def test_every_example_parses_and_the_sim_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = build_parser()
    examples = [ex for path in OWN for ex in epilog_examples(_subparser(parser, path))]
    own = {p[0] for p in OWN if p}
    mine = [ex for ex in examples if ex and ex[0] in own]
    assert len(mine) >= 60
    for ex in mine:
        parser.parse_args(ex)  # SystemExit (exit 2) on a bad example
    monkeypatch.chdir(tmp_path)
    for ex in mine:
        if ex[0] == "sim":
            assert main(ex) in (0, 1), ex


def test_version_says_what_a_bug_report_needs() -> None:
    text = version_text()
    assert text.startswith("tcpwise ") and os.uname().release in text
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in text and "Debian" in text
    r = subprocess.run(
        [sys.executable, "-m", "tcpwise.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout.strip() == text


def test_completion_script_and_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert main(["completion", shell]) == 0
        assert "tcpwise" in capsys.readouterr().out
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert main(["completion", "bash", "--install"]) == 0
    assert (tmp_path / ".local/share/bash-completion/completions/tcpwise").read_text().count("tcpwise") > 2
    assert main(["completion", "fish", "--install"]) == 0
    assert (tmp_path / ".config/fish/completions/tcpwise.fish").exists()


def _complete(line: str, tmp_path: Path) -> list[str]:
    """What the shell gets when the user presses TAB after ``line`` (argcomplete's protocol, as the installed
    script drives it)."""
    out = tmp_path / "completions"
    env = dict(os.environ, _ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n", COMP_LINE=line, COMP_POINT=str(len(line)),
               _ARGCOMPLETE_STDOUT_FILENAME=str(out), _ARGCOMPLETE_SHELL="bash")  # fmt: skip
    subprocess.run([sys.executable, "-m", "tcpwise.cli"], env=env, capture_output=True, timeout=60)
    return [w.strip() for w in out.read_text().split("\n")] if out.exists() else []


def test_tab_completes_commands_options_and_scenario_ids(tmp_path: Path) -> None:
    assert "scenarios" in _complete("tcpwise sc", tmp_path)
    assert {"close", "close-three-segments", "close-wait-leak"} <= set(_complete("tcpwise sim clo", tmp_path))
    assert "--every-segment" in _complete("tcpwise sim close --ev", tmp_path)
    assert {"auto", "always", "never"} <= set(_complete("tcpwise sim close --color ", tmp_path))


def test_color_follows_no_color_and_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color("auto", Tty()) and not use_color("auto", io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color("auto", Tty()) and use_color("always", Tty()) and not use_color("never", Tty())
    monkeypatch.setenv("NO_COLOR", "")  # an empty NO_COLOR does not count (no-color.org)
    assert use_color("auto", Tty())


@pytest.mark.parametrize(("env", "args", "colored"), [({}, [], True), ({"NO_COLOR": "1"}, [], False),
                                                      ({"NO_COLOR": "1"}, ["--color", "always"], True),
                                                      ({}, ["--color", "never"], False)])  # fmt: skip
def test_sim_on_a_terminal(env: dict[str, str], args: list[str], colored: bool) -> None:
    main_fd, sub_fd = pty.openpty()
    full = dict(os.environ, TERM="xterm", COLUMNS="80", **env)
    if "NO_COLOR" not in env:
        full.pop("NO_COLOR", None)
    p = subprocess.Popen([sys.executable, "-m", "tcpwise.cli", "sim", "close", *args], stdout=sub_fd,
                         stderr=subprocess.DEVNULL, env=full)  # fmt: skip
    os.close(sub_fd)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=60)
    os.close(main_fd)
    out = b"".join(chunks).decode()
    assert ("\x1b[" in out) is colored
    assert "TIME_WAIT" in out


def test_piped_output_fits_80_columns_unless_wide(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_width(False, io.StringIO()) == 80 and output_width(True, io.StringIO()) is None
    main(["sim", "client-leak"])
    narrow = capsys.readouterr().out
    main(["sim", "client-leak", "--wide"])
    wide = capsys.readouterr().out
    assert max(len(line) for line in narrow.splitlines()) <= 80 < max(len(line) for line in wide.splitlines())
    main(["scenarios"])
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 80


def test_tables_and_numbers_for_people() -> None:
    rows = [("close-wait-leak", 1149, "a long explanation that does not fit the narrow table at all")]
    lines = table([Column("id"), Column("peak", "right"), Column("why", flex=True)], rows, width=40)
    assert max(len(line) for line in lines) <= 40 and "1149" in lines[1] and len(lines) > 2
    assert [fmt_seconds(x) for x in (61.1459, 0.25, 1.05, 925.623, 0.0004)] == [
        "61.1 s", "250 ms", "1.05 s", "926 s", "400 µs"]  # fmt: skip
    assert fmt_bytes(65535) == "65.5 kB" and fmt_bytes(812) == "812 B"


def test_output_files_are_written_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "out.svg"
    write_output("<svg/>", str(target))
    assert target.read_text() == "<svg/>" and [p.name for p in tmp_path.iterdir()] == ["out.svg"]
    with pytest.raises(UsageError, match="cannot write"):
        write_output("x", str(tmp_path / "missing-dir" / "out.svg"))
    assert [p.name for p in tmp_path.iterdir()] == ["out.svg"]


def test_sim_formats_are_the_renderers() -> None:
    from tcpwise.render import FORMATS
    from tcpwise.scenarios.cli import FORMATS as CLI_FORMATS

    assert CLI_FORMATS == FORMATS

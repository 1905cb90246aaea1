"""tcpwise.outfile: every -o of the CLI is written whole or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from tcpwise import outfile
from tcpwise.errors import UsageError
from tcpwise.outfile import atomic_output, write_atomic, write_output


def _leftovers(d) -> list[str]:
    return sorted(p for p in os.listdir(d) if ".tcpwise-" in p)


def test_new_file_is_written_and_no_temp_is_left(tmp_path) -> None:
    p = tmp_path / "out.json"
    write_atomic(str(p), '{"ok": true}\n')
    assert p.read_text() == '{"ok": true}\n'
    assert _leftovers(tmp_path) == []


def test_failure_half_way_keeps_the_previous_file(tmp_path) -> None:
    p = tmp_path / "out.json"
    p.write_text("previous good output\n")
    with pytest.raises(RuntimeError), atomic_output(str(p)) as f:
        f.write('{"connections": [')
        raise RuntimeError("input turned out to be corrupt")
    assert p.read_text() == "previous good output\n"
    assert _leftovers(tmp_path) == []


def test_ctrl_c_half_way_keeps_the_previous_file(tmp_path) -> None:
    p = tmp_path / "out.log"
    p.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), atomic_output(str(p)) as f:
        f.write("half")
        raise KeyboardInterrupt
    assert p.read_text() == "old\n" and _leftovers(tmp_path) == []


def test_nothing_visible_until_done(tmp_path) -> None:
    p = tmp_path / "out.txt"
    with atomic_output(str(p)) as f:
        f.write("part one\n")
        f.flush()
        assert not p.exists()
    assert p.read_text() == "part one\n"


def test_replaced_file_keeps_its_mode_and_symlink_is_followed(tmp_path) -> None:
    target = tmp_path / "real.txt"
    target.write_text("x")
    os.chmod(target, 0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_atomic(str(link), "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_binary_and_devnull(tmp_path) -> None:
    write_atomic(str(tmp_path / "b.pcap"), b"\xd4\xc3\xb2\xa1")
    assert (tmp_path / "b.pcap").read_bytes() == b"\xd4\xc3\xb2\xa1"
    write_atomic(os.devnull, "discarded")  # not a regular file: written through, never renamed over
    assert os.path.exists(os.devnull) and stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("where", ["missing-dir", "directory"])
def test_errors_are_one_line_usage_errors(tmp_path, where: str) -> None:
    p = tmp_path / "nope" / "x.json" if where == "missing-dir" else tmp_path
    with pytest.raises(UsageError) as ei:
        write_atomic(str(p), "data")
    assert "\n" not in str(ei.value) and str(p) in str(ei.value)


def test_write_output_stdout_and_binary_guard(capsys, monkeypatch) -> None:
    write_output("line", None)
    assert capsys.readouterr().out == "line\n"
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    with pytest.raises(UsageError, match="binary output"):
        write_output(b"\x00", None)


def test_check_can_fail_when_the_writer_is_not_atomic(tmp_path, monkeypatch) -> None:
    """Plant the bug these tests exist for (write straight into the target): the keep-previous check turns red."""

    from contextlib import contextmanager

    @contextmanager
    def direct(path: str, mode: str = "w"):  # the old behaviour: truncate first, write as you go
        with open(path, mode) as f:
            yield f

    monkeypatch.setattr(outfile, "atomic_output", direct)
    p = tmp_path / "out.json"
    p.write_text("previous good output\n")
    with pytest.raises(RuntimeError), outfile.atomic_output(str(p)) as f:
        f.write("{")
        raise RuntimeError("boom")
    assert p.read_text() != "previous good output\n"  # the planted bug destroys the old file


def test_every_cli_uses_the_one_writer() -> None:
    """One -o writer: no module but tcpwise.outfile defines write_output, and the CLIs import it from there."""
    import pathlib

    from tcpwise import outfile
    from tcpwise.scenarios import cli as scli

    assert scli.write_output is outfile.write_output
    src = pathlib.Path(outfile.__file__).parent
    owners = [p for p in src.rglob("*.py") if "def write_output(" in p.read_text(encoding="utf-8")]
    assert owners == [pathlib.Path(outfile.__file__)]
    lab_src = (src / "lab" / "cli.py").read_text(encoding="utf-8")
    assert "from tcpwise.outfile import write_output" in lab_src

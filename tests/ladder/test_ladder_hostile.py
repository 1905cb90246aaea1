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
from tcpwise.ladder.parsers import MAX_FILE_BYTES


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

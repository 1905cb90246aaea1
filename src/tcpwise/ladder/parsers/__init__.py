"""Readers of real configuration files: each turns one file into a :class:`tcpwise.ladder.model.Hop` whose values
carry the file and line they came from. A file that cannot be read or parsed is a UsageError naming file and line."""

from __future__ import annotations

import os
import select
import stat
import sys
from typing import BinaryIO

from tcpwise.errors import UsageError

__all__ = ["read_text", "ParseError", "MAX_FILE_BYTES"]

# The largest config file the ladder reads. Real nginx/HAProxy/Envoy configs are kilobytes; anything near this is
# not a config, and reading it whole (or a device that never ends, like /dev/zero) would only exhaust memory.
MAX_FILE_BYTES = 4 * 1024 * 1024


class ParseError(UsageError):
    """A configuration file the ladder cannot read: ``file:line: what``."""

    def __init__(self, path: str, line: int | None, what: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {what}")


def read_text(path: str) -> str:
    """The file as text, at most :data:`MAX_FILE_BYTES`; devices are refused, pipes read up to the cap."""
    try:
        with _open_config(path) as f:
            _refuse_devices(path, os.fstat(f.fileno()).st_mode)
            data = f.read(MAX_FILE_BYTES + 1)  # one byte more than allowed tells "too big" from "just fits"
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not a config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a UTF-8 text file") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # newlines as text mode would give them


def _open_config(path: str) -> BinaryIO:
    """``open(path, "rb")``, except that a FIFO whose writer has not appeared yet does not block in open(2)
    silently: after a second a notice says what tcpwise waits for (Ctrl-C stops it, as for `trace FIFO`)."""
    try:
        fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        fifo = False  # open() below says why
    if not fifo:
        return open(path, "rb")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once this way, writer or not
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(1000):  # POLLIN or POLLHUP once a writer has written or come and gone
            print(
                f"tcpwise: waiting for {path} (a FIFO without a writer yet; Ctrl-C to stop)", file=sys.stderr
            )
            poller.poll()
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _refuse_devices(path: str, mode: int) -> None:
    """Regular files and pipes (``<(...)``) are configs; a device or socket is not, and may never end."""
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise UsageError(f"{path}: not a regular file")

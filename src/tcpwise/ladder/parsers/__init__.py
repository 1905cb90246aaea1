"""Readers of real configuration files: each turns one file into a :class:`tcpwise.ladder.model.Hop` whose values
carry the file and line they came from. A file that cannot be read or parsed is a UsageError naming file and line."""

from __future__ import annotations

import os
import stat

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
        with open(path, "rb") as f:
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


def _refuse_devices(path: str, mode: int) -> None:
    """Regular files and pipes (``<(...)``) are configs; a device or socket is not, and may never end."""
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise UsageError(f"{path}: not a regular file")

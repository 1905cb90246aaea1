"""Readers of real configuration files: each turns one file into a :class:`tcpwise.ladder.model.Hop` whose values
carry the file and line they came from. A file that cannot be read or parsed is a UsageError naming file and line."""

from __future__ import annotations

from tcpwise.errors import UsageError

__all__ = ["read_text", "ParseError"]


class ParseError(UsageError):
    """A configuration file the ladder cannot read: ``file:line: what``."""

    def __init__(self, path: str, line: int | None, what: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {what}")


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None

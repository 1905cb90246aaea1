"""The one writer behind every ``-o`` of the CLI: a file appears whole or not at all.

Theory of operation
-------------------
Writing straight into the target path has two failure modes users meet: ``open(path, "w")`` truncates the
previous good file *before* the new content exists, so a run that fails half way (bad input, Ctrl-C, a full disk)
destroys it; and a reader (a dashboard, ``tail``, another script) can see half a JSON document. So output goes to
a temporary file in the *same directory* (``rename(2)`` is atomic only within one file system) and is renamed
over the target only after everything was written and closed. On any exception — including ``KeyboardInterrupt``
— the temporary file is removed and the target is left untouched. There is no ``fsync``: the guarantee is against
a failing, interrupted or killed tcpwise (what users meet), not against a power cut, and syncing a 500 MB trace
would make every run wait for the disk; ext4 and XFS also flush a file replaced by ``rename`` before the rename
itself is durable. After a SIGKILL a
``.NAME.tcpwise-PID-K.tmp`` file may remain next to the target: its name says where it came from.

Targets that are not regular files (``/dev/null``, ``/dev/stdout``, a FIFO, a terminal) cannot be replaced by a
rename and are not meant to be: they are written directly. A symbolic link is followed (the file it points to is
replaced, the link stays), as ``open()`` would. A new file gets the permissions ``open()`` would give it
(0666 minus the umask); a replaced file keeps its permissions.

Every ``OSError`` becomes one :class:`tcpwise.errors.UsageError` line naming the path.

This module sits at the bottom of the layers (next to :mod:`tcpwise.errors`): it imports only the standard
library and ``errors``, so every area can use it.
"""

from __future__ import annotations

import itertools
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tcpwise.errors import UsageError

__all__ = ["atomic_output", "write_atomic", "write_output", "check_target"]

_SERIAL = itertools.count(1)  # two outputs of one process never share a temporary name


def _fail(path: str, exc: OSError) -> UsageError:
    return UsageError(f"cannot write {path}: {exc.strerror or exc}")


def _target(path: str) -> tuple[str, os.stat_result | None]:
    """:func:`_resolve`, with an empty name, its failure and a directory as one-line errors."""
    if not path:  # ``-o ''`` (an unset shell variable) must not quietly mean stdout or the current directory
        raise UsageError("the output path is empty (use - for standard output)")
    try:
        real, st = _resolve(path)
    except OSError as exc:
        raise _fail(path, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"cannot write {path}: it is a directory")
    return real, st


def _resolve(path: str) -> tuple[str, os.stat_result | None]:
    """The path to replace (symlinks followed) and its current status (None if it does not exist yet)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real, None
    return real, st


@contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """``with atomic_output(path) as f:`` — write ``f`` incrementally; ``path`` is replaced only on success.

    ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. Raises :class:`UsageError` (one line) when the directory is
    not writable, the path is a directory, or writing fails; the target is never left half written.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_output mode must be 'w' or 'wb', not {mode!r}")
    if path == "-":  # standard output, as every -o of the CLI reads it; not closed here
        if "b" in mode and sys.stdout.isatty():
            raise UsageError("binary output: use -o FILE or redirect stdout")
        yield sys.stdout.buffer if "b" in mode else sys.stdout
        return
    real, st = _target(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        # /dev/null, /dev/stdout, a FIFO, a terminal: nothing to replace atomically; write through.
        try:
            f = open(real, mode, encoding=_enc(mode))  # noqa: SIM115
        except OSError as exc:
            raise _fail(path, exc) from None
        with f:
            yield f
        return
    directory, name = os.path.split(real)
    tmp = os.path.join(directory, f".{name}.tcpwise-{os.getpid()}-{next(_SERIAL)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise _fail(path, exc) from None
    try:
        if st is not None:
            os.fchmod(fd, stat.S_IMODE(st.st_mode))  # a replaced file keeps its permissions
        f = os.fdopen(fd, mode, encoding=_enc(mode))
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    try:
        with f:
            yield f
        os.replace(tmp, real)
    except OSError as exc:
        _unlink(tmp)
        raise _fail(path, exc) from None
    except BaseException:
        _unlink(tmp)
        raise


def check_target(path: str | None) -> None:
    """Refuse an ``-o`` that cannot be written, *before* a command does minutes of work (a lab run, a race, a
    probe): an empty name, a directory, a missing or unwritable parent directory. The write itself still goes
    through :func:`atomic_output`, which reports what only writing can find (a full disk)."""
    if path is None or path == "-":
        return
    real, st = _target(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        return  # /dev/null, a FIFO, a terminal: written through
    directory = os.path.dirname(real) or "."
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write {path}: no such directory {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: permission denied in {directory}")


def _enc(mode: str) -> str | None:
    return None if "b" in mode else "utf-8"


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def write_atomic(path: str, data: str | bytes) -> None:
    """Write all of ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def write_output(data: str | bytes, path: str | None) -> None:
    """The CLI's ``-o`` / stdout writer: ``path`` atomically, or stdout for None or ``-`` (text gets a final newline).

    Binary data (a pcap) is refused on a terminal: it would only garble it.
    """
    if path is not None and path != "-":
        write_atomic(path, data)  # an empty path is refused there
        return
    if isinstance(data, bytes):
        if sys.stdout.isatty():
            raise UsageError("binary output (pcap): use -o FILE or redirect stdout")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        sys.stdout.write(data if data.endswith("\n") else data + "\n")

"""Who owns a lab run, and a teardown that further signals cannot interrupt.

Theory of operation
-------------------
**Owner records.** Several lab runs may share a machine (other terminals, other test suites). Before a run
creates its first namespace it writes ``/run/tcpwise-lab/<run id>.json`` with its process id and that process's
start time (field 22 of ``/proc/<pid>/stat``, in clock ticks since boot): a pid alone could belong to another
process after a reboot-free pid wrap, the pair cannot. ``tcpwise lab clean`` without ``--run`` removes a run only
when its owner is gone — no such process, or a process with another start time — and never a run in progress or
one without a record (a run made by an older tcpwise, or by hand: ``--run ID`` names it explicitly). ``/run`` is a
tmpfs, like the ``/run/netns`` mounts the namespaces live on, so both vanish together at reboot.

**Shielded teardown.** The first Ctrl-C (or SIGTERM, or SIGHUP) of a run starts its cleanup; if a second one
interrupted that cleanup, namespaces would be left half-deleted. While :func:`shielded` is active SIGINT, SIGTERM
and SIGHUP are caught: the second signal only prints ``cleaning up, please wait``; a third one forces the way out, and then the
run prints exactly what is left and the command that removes it. (The ``ip`` commands the cleanup runs are in
sessions of their own, so a terminal's Ctrl-C never reaches them.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tcpwise.errors import STOP_SIGNALS

__all__ = [
    "OWNER_DIR",
    "Owner",
    "write_owner",
    "read_owner",
    "remove_owner",
    "owner_alive",
    "process_start",
    "shielded",
    "guarded_run",
    "ForcedExit",
]

OWNER_DIR = "/run/tcpwise-lab"


@dataclass(frozen=True, slots=True)
class Owner:
    pid: int
    start: int  # /proc/<pid>/stat field 22 (starttime, clock ticks after boot)


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks after boot, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = data.rsplit(")", 1)[-1].split()
    try:
        return int(rest[19])  # field 22 overall = index 19 after pid and comm
    except (IndexError, ValueError):
        return None


def _path(run_id: str, base: str | None = None) -> str:
    return os.path.join(base or OWNER_DIR, f"{run_id}.json")


def write_owner(run_id: str, pid: int | None = None, base: str | None = None) -> Owner:
    """Record the calling process (or ``pid``) as the owner of ``run_id``; atomic (temp file + rename)."""
    pid = os.getpid() if pid is None else pid
    start = process_start(pid)
    owner = Owner(pid, start if start is not None else -1)
    d = base or OWNER_DIR
    os.makedirs(d, mode=0o755, exist_ok=True)
    tmp = _path(run_id, d) + f".{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"pid": owner.pid, "start": owner.start}, f)
    os.replace(tmp, _path(run_id, d))
    return owner


def read_owner(run_id: str, base: str | None = None) -> Owner | None:
    try:
        with open(_path(run_id, base), encoding="utf-8") as f:
            d: dict[str, Any] = json.load(f)
        return Owner(int(d["pid"]), int(d["start"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_owner(run_id: str, base: str | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(run_id, base))


def owner_alive(owner: Owner) -> bool:
    """Is the recorded process still the one running? (Same pid *and* same start time.)"""
    start = process_start(owner.pid)
    return start is not None and start == owner.start


class ForcedExit(KeyboardInterrupt):
    """A third signal during a shielded teardown: the user insists on leaving now."""


class _Signals:
    """The process's SIGINT/SIGTERM/SIGHUP policy while a lab run is alive (main thread only). SIGHUP (the
    terminal closed, the ssh session dropped) is treated as SIGTERM: its default action would leave the
    namespaces behind.

    phase "run": the first signal raises KeyboardInterrupt — the run stops and its cleanup starts. From then on,
    and whenever a teardown is shielded, a signal only says "please wait" the first time and forces out the next.
    Because the flag flips *before* KeyboardInterrupt is raised, a second signal that lands between the raise and
    the ``finally:`` that cleans up cannot interrupt anything."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.cleaning = False
        self.warned = False
        self.depth = 0
        self.old: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any) -> None:
        if not self.cleaning:
            self.cleaning = True
            raise KeyboardInterrupt
        if not self.warned:
            self.warned = True
            print("tcpwise: cleaning up, please wait (signal again to force)", file=self.stream, flush=True)
            return
        raise ForcedExit

    def install(self) -> None:
        self.old = {s: signal.signal(s, self.handler) for s in STOP_SIGNALS}

    def restore(self) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)


_current: list[_Signals] = []


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def guarded_run(out: Any = None) -> Iterator[None]:
    """Install the run's signal policy (see :class:`_Signals`) for the body; nested uses share one."""
    if not _main_thread():
        yield
        return
    if _current:
        _current[-1].depth += 1
        try:
            yield
        finally:
            _current[-1].depth -= 1
        return
    sig = _Signals(out or sys.stderr)
    sig.install()
    _current.append(sig)
    try:
        yield
    finally:
        _current.pop()
        sig.restore()


@contextlib.contextmanager
def shielded(run_id: str, leftovers: Callable[[], list[str]], out: Any = None) -> Iterator[None]:
    """Run the body (a teardown) so that signals cannot interrupt it: the next signal says "please wait", the one
    after forces out — after printing what is left (``leftovers()``) and the ``lab clean`` command."""
    if not _main_thread():
        yield
        return
    with guarded_run(out):
        sig = _current[-1]
        was = sig.cleaning
        sig.cleaning = True
        try:
            yield
        except ForcedExit as exc:
            # Nested shields (the executor's around the topology's) report once, after the innermost stopped.
            if not getattr(exc, "reported", False):
                exc.reported = True  # type: ignore[attr-defined]
                _report_leftovers(run_id, leftovers, sig.stream)
            raise
        finally:
            if not was:  # a teardown at the normal end of a run: the next signal stops the next thing again
                sig.cleaning = False
                sig.warned = False


def _report_leftovers(run_id: str, leftovers: Callable[[], list[str]], stream: Any) -> None:
    left: list[str] = []
    with contextlib.suppress(Exception):
        left = leftovers()
    if left:
        print("tcpwise: cleanup interrupted; left behind:", file=stream)
        for item in left:
            print(f"  {item}", file=stream)
        print(f"tcpwise: remove them with: sudo tcpwise lab clean --run {run_id}", file=stream, flush=True)
    else:
        print("tcpwise: cleanup interrupted, but nothing was left behind", file=stream, flush=True)

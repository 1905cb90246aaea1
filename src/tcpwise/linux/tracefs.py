"""A private tracefs instance: find or mount tracefs, create an instance we own, enable events, read pages.

Theory of operation
-------------------
tracefs (Documentation/trace/ftrace.rst) exposes the kernel's tracepoints. Writing to the global buffer would
disturb every other user of ftrace on the host, so we never do: ``mkdir instances/NAME`` creates a private set
of per-CPU ring buffers with its own event switches, clock and size, and ``rmdir`` removes it. Our instances are
named ``tcpwise-<purpose>-<pid>-<starttime>``: the owner's pid and its start time (field 22 of
/proc/PID/stat, clock ticks since boot) — so :func:`clean` can tell a live owner from a dead one even after the
pid is reused, and never touches an instance whose owner still runs (another ``watch``, another test).

Each event's layout comes from its ``format`` file (``field:TYPE NAME; offset:N; size:N; signed:N;``), parsed by
:func:`parse_format`; the page layout from ``events/header_page``. The binary pages themselves are read from
``per_cpu/cpuN/trace_pipe_raw`` (one sub-buffer per read, consumed) and decoded by :mod:`tcpwise.linux.ringbuf`.

Losses are never silent: ``per_cpu/cpuN/stats`` counts ``overrun`` (overwrite mode) and ``dropped events``
(producer/consumer mode, ours: ``options/overwrite`` = 0, so unread pages are never overwritten and a reader
that falls behind loses the newest events, counted here), and each page says whether events were lost before it.

The instance clock is ``mono`` (CLOCK_MONOTONIC): event times are comparable with ``time.monotonic_ns()``,
across CPUs, which the per-CPU merge and the lab's timings need.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import struct
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tcpwise.errors import MissingCapability

__all__ = [
    "TRACEFS_PATHS",
    "INSTANCE_PREFIX",
    "Field",
    "EventFormat",
    "PageLayout",
    "Instance",
    "find_tracefs",
    "parse_format",
    "parse_header_page",
    "instance_name",
    "list_instances",
    "clean",
    "process_start",
]

TRACEFS_PATHS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
INSTANCE_PREFIX = "tcpwise-"
_NAME_RE = re.compile(r"^tcpwise-([a-z0-9]+)-(\d+)-(\d+)$")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event record, as its ``format`` file describes it."""

    name: str
    type: str
    offset: int
    size: int
    signed: bool

    @property
    def array_len(self) -> int | None:
        """``N`` for ``__u8 saddr[N]``, else None."""
        m = re.search(r"\[(\d+)\]$", self.type)
        return int(m.group(1)) if m else None

    def struct_code(self) -> str:
        """The :mod:`struct` code that decodes this field (arrays and odd sizes as raw bytes ``Ns``)."""
        codes = {1: "b", 2: "h", 4: "i", 8: "q"}
        if self.array_len is not None or self.type.startswith("__data_loc") or self.size not in codes:
            return f"{self.size}s"
        c = codes[self.size]
        return c if self.signed else c.upper()


@dataclass(frozen=True, slots=True)
class EventFormat:
    """A tracepoint's identity and record layout (``events/SYSTEM/NAME/format``)."""

    system: str
    name: str
    id: int
    fields: dict[str, Field] = field(default_factory=dict)

    def size(self) -> int:
        return max((f.offset + f.size for f in self.fields.values()), default=0)

    def struct_for(self, names: Iterable[str]) -> struct.Struct:
        """A Struct that unpacks ``common_type, common_flags, common_preempt_count, common_pid`` and then
        ``names`` in that order, from the start of a record (padding fills the gaps; fields must not overlap and
        must be given in increasing offset order)."""
        want = ["common_type", "common_flags", "common_preempt_count", "common_pid", *names]
        parts: list[str] = ["<"]
        pos = 0
        for n in want:
            f = self.fields.get(n)
            if f is None:
                raise KeyError(f"{self.system}/{self.name} has no field {n!r}")
            if f.offset < pos:
                raise ValueError(f"{self.system}/{self.name}: field {n!r} out of order or overlapping")
            if f.offset > pos:
                parts.append(f"{f.offset - pos}x")
            parts.append(f.struct_code())
            pos = f.offset + f.size
        return struct.Struct("".join(parts))


@dataclass(frozen=True, slots=True)
class PageLayout:
    """Where the page header keeps its timestamp, commit (data length + loss flags) and data."""

    ts_offset: int = 0
    commit_offset: int = 8
    commit_size: int = 8
    data_offset: int = 16
    page_size: int = 4096


_FIELD_RE = re.compile(
    r"field:\s*(?P<type>[^;]*?)\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<arr>\[[^\]]*\])?;\s*"
    r"offset:(?P<off>\d+);\s*size:(?P<size>\d+);(?:\s*signed:(?P<signed>-?\d+);)?"
)


def parse_format(text: str, system: str = "", name: str = "") -> EventFormat:
    """Parse an event ``format`` file. Raises ValueError when it has no ``ID:`` line."""
    ev_id = None
    ev_name = name
    fields: dict[str, Field] = {}
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("ID:"):
            ev_id = int(s[3:].strip())
        elif s.startswith("name:") and not ev_name:
            ev_name = s[5:].strip()
        elif s.startswith("field:"):
            m = _FIELD_RE.search(s)
            if m is None:
                continue
            ftype = m.group("type") + (m.group("arr") or "")
            fields[m.group("name")] = Field(
                m.group("name"), ftype, int(m.group("off")), int(m.group("size")), m.group("signed") == "1"
            )
    if ev_id is None:
        raise ValueError(f"event format of {system}/{ev_name} has no ID line")
    return EventFormat(system, ev_name, ev_id, fields)


def parse_header_page(text: str, page_size: int) -> PageLayout:
    """``events/header_page``: ``field: u64 timestamp; offset:0; size:8;`` ... ``field: char data; offset:16``."""
    offs: dict[str, tuple[int, int]] = {}
    for m in re.finditer(r"field:\s*[^;]*?\s(\w+);\s*offset:(\d+);\s*size:(\d+);", text):
        offs.setdefault(m.group(1), (int(m.group(2)), int(m.group(3))))
    try:
        return PageLayout(
            ts_offset=offs["timestamp"][0],
            commit_offset=offs["commit"][0],
            commit_size=offs["commit"][1],
            data_offset=offs["data"][0],
            page_size=page_size,
        )
    except KeyError as exc:
        raise ValueError(f"events/header_page lacks the {exc.args[0]!r} field") from None


def process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (/proc/PID/stat field 22); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return int(rest[19])  # field 22 overall = index 19 after pid, comm
    except (IndexError, ValueError):
        return None


def instance_name(purpose: str, pid: int | None = None) -> str:
    """``tcpwise-<purpose>-<pid>-<starttime>`` for this process (or ``pid``)."""
    if not re.fullmatch(r"[a-z0-9]+", purpose):
        raise ValueError(f"instance purpose must be [a-z0-9]+, not {purpose!r}")
    p = os.getpid() if pid is None else pid
    return f"{INSTANCE_PREFIX}{purpose}-{p}-{process_start(p) or 0}"


def find_tracefs(mount: bool = True) -> str:
    """The tracefs mount point; mounts it at /sys/kernel/tracing when nothing is mounted and ``mount`` is true.

    Raises:
        MissingCapability: not root, no tracefs in this kernel, or the mount failed — with the reason.
    """
    for p in TRACEFS_PATHS:
        if os.path.isdir(os.path.join(p, "instances")):
            return p
    if os.geteuid() != 0:
        raise MissingCapability("tracefs is not mounted and mounting it needs root")
    if not mount:
        raise MissingCapability("tracefs is not mounted at /sys/kernel/tracing")
    try:
        with open("/proc/filesystems") as f:
            if "tracefs" not in f.read():
                raise MissingCapability("this kernel has no tracefs (CONFIG_TRACING is off)")
    except OSError:
        pass
    r = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", TRACEFS_PATHS[0]], capture_output=True, text=True, timeout=10
    )
    if r.returncode != 0 or not os.path.isdir(os.path.join(TRACEFS_PATHS[0], "instances")):
        why = (r.stderr or r.stdout).strip().splitlines()
        raise MissingCapability(f"cannot mount tracefs: {why[-1] if why else 'mount failed'}")
    return TRACEFS_PATHS[0]


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def list_instances(root: str) -> list[tuple[str, int, int, bool]]:
    """Our instances under ``root``: ``(name, owner pid, owner start, owner alive)``."""
    out = []
    try:
        names = os.listdir(os.path.join(root, "instances"))
    except OSError:
        return []
    for name in sorted(names):
        m = _NAME_RE.match(name)
        if m is None:
            continue
        pid, start = int(m.group(2)), int(m.group(3))
        out.append((name, pid, start, process_start(pid) == start))
    return out


def _remove_instance(root: str, name: str, attempts: int = 50) -> None:
    path = os.path.join(root, "instances", name)
    with contextlib.suppress(OSError):
        _write(os.path.join(path, "tracing_on"), "0")
    with contextlib.suppress(OSError):
        _write(os.path.join(path, "events", "enable"), "0")
    for i in range(attempts):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            # EBUSY while a reader still holds one of its files open (a dying owner); retry briefly.
            if exc.errno != errno.EBUSY or i == attempts - 1:
                raise
            time.sleep(0.02)


def clean(root: str | None = None, purpose: str | None = None) -> tuple[list[str], list[str]]:
    """Remove our instances whose owner process is dead (only ``purpose``'s when given, e.g. "lab");
    returns ``(removed, kept_live)``.

    An instance whose owner still runs (same pid *and* same start time) is never touched.
    """
    if root is None:
        root = find_tracefs(mount=False)
    removed, kept = [], []
    for name, _pid, _start, alive in list_instances(root):
        if purpose is not None and not name.startswith(f"{INSTANCE_PREFIX}{purpose}-"):
            continue
        if alive:
            kept.append(name)
            continue
        _remove_instance(root, name)
        removed.append(name)
    return removed, kept


class Instance:
    """One private tracefs instance: create, enable events, open the per-CPU raw pipes, remove.

    Use as a context manager; :meth:`remove` runs on every exit path the process survives (exceptions,
    KeyboardInterrupt, SIGTERM turned into an exception by the caller). After SIGKILL the instance stays until
    :func:`clean` (``tcpwise watch --clean``) sees its owner is dead.
    """

    def __init__(self, purpose: str, buffer_kb: int = 4096, root: str | None = None) -> None:
        self.root = root or find_tracefs()
        self.name = instance_name(purpose)
        self.path = os.path.join(self.root, "instances", self.name)
        self.buffer_kb = buffer_kb
        self.formats: dict[int, EventFormat] = {}
        self.missing: list[str] = []
        self.fds: dict[int, int] = {}
        self.created = False
        self.layout = PageLayout()

    # -- life cycle -------------------------------------------------------------------------------------
    def create(self) -> Instance:
        try:
            os.mkdir(self.path)
        except FileExistsError:
            # Our own name (same pid and start time): a previous Instance of this very process; reuse it.
            pass
        except PermissionError:
            raise MissingCapability("creating a tracefs instance needs root") from None
        except OSError as exc:
            raise MissingCapability(f"cannot create tracefs instance {self.name}: {exc.strerror}") from None
        self.created = True
        try:
            _write(self._p("tracing_on"), "0")
            _write(self._p("trace_clock"), "mono")
            _write(self._p("options", "overwrite"), "0")
            _write(self._p("buffer_size_kb"), str(self.buffer_kb))
            with contextlib.suppress(OSError):
                _write(self._p("buffer_percent"), "1")
            with contextlib.suppress(OSError):
                # pid -> tgid of the tasks our events name, kept (like pid -> comm) after they exit.
                _write(self._p("options", "record-tgid"), "1")
            self.layout = parse_header_page(
                _read(os.path.join(self.root, "events", "header_page")), self._subbuf_size()
            )
        except BaseException:
            self.remove()
            raise
        return self

    def _subbuf_size(self) -> int:
        try:
            return int(_read(self._p("buffer_subbuf_size_kb")).split()[0]) * 1024
        except (OSError, ValueError, IndexError):
            return os.sysconf("SC_PAGE_SIZE")

    def _p(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def enable(self, system: str, name: str) -> EventFormat | None:
        """Enable ``system/name`` in this instance; None (and noted in :attr:`missing`) if the kernel lacks it."""
        d = self._p("events", system, name)
        try:
            fmt = parse_format(_read(os.path.join(d, "format")), system, name)
        except (OSError, ValueError):
            self.missing.append(f"{system}:{name}")
            return None
        try:
            _write(os.path.join(d, "enable"), "1")
        except OSError:
            self.missing.append(f"{system}:{name}")
            return None
        self.formats[fmt.id] = fmt
        return fmt

    def start(self) -> None:
        """Open every online CPU's ``trace_pipe_raw`` (non-blocking) and switch tracing on."""
        per_cpu = self._p("per_cpu")
        for d in sorted(os.listdir(per_cpu), key=lambda s: int(s[3:]) if s[3:].isdigit() else -1):
            if not d.startswith("cpu") or not d[3:].isdigit():
                continue
            fd = os.open(
                os.path.join(per_cpu, d, "trace_pipe_raw"), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
            )
            self.fds[int(d[3:])] = fd
        _write(self._p("tracing_on"), "1")

    def stop(self) -> None:
        """Switch tracing off (the pages already written can still be read)."""
        with contextlib.suppress(OSError):
            _write(self._p("tracing_on"), "0")

    def remove(self) -> None:
        """Close the pipes and remove the instance (idempotent)."""
        for fd in self.fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()
        if self.created:
            self.created = False
            _remove_instance(self.root, self.name)

    def __enter__(self) -> Instance:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- reading ----------------------------------------------------------------------------------------
    def read_pages(self, cpu: int, max_pages: int = 1 << 30) -> Iterator[bytes]:
        """Consume the available pages of ``cpu`` (a partly written page is handed over too)."""
        fd = self.fds[cpu]
        size = self.layout.page_size
        for _ in range(max_pages):
            try:
                page = os.read(fd, size)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    return
                raise
            if not page:
                return
            yield page

    def stats(self) -> dict[int, dict[str, int]]:
        """``per_cpu/cpuN/stats`` as integers (entries, overrun, dropped events, read events, ...)."""
        out: dict[int, dict[str, int]] = {}
        for cpu in self.fds:
            d: dict[str, int] = {}
            try:
                text = _read(self._p("per_cpu", f"cpu{cpu}", "stats"))
            except OSError:
                continue
            for line in text.splitlines():
                k, _, v = line.partition(":")
                with contextlib.suppress(ValueError):
                    d[k.strip()] = int(v.strip())
            out[cpu] = d
        return out

    def lost(self) -> int:
        """Events the kernel could not hand us: overruns plus dropped events, all CPUs."""
        return sum(s.get("overrun", 0) + s.get("dropped events", 0) for s in self.stats().values())

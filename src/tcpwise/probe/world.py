"""The probe's own network namespaces, TUN device and target processes — and removing them on every exit path.

Theory of operation
-------------------
A probe run owns a few network namespaces named ``twp-<pid>-<starttime>-<role>``: the pid and the kernel start
time (``/proc/<pid>/stat`` field 22) of the process that made them. ``tcpwise probe --clean`` removes exactly
the namespaces whose owner is dead (no such pid, or a pid reused by a process with another start time); it
never touches a run in progress or anything not named by this scheme — other tools' namespaces, the lab's
``tcpwise-lab*`` ones, or another probe's live run.

Exit paths:

* normal return, exceptions, Ctrl-C: :class:`World` is a context manager whose ``destroy`` kills the processes
  in its namespaces (bounded wait) and deletes the namespaces;
* SIGTERM: the CLI turns it into ``KeyboardInterrupt`` so the same ``finally`` runs;
* SIGKILL: nothing runs. The TUN device is non-persistent, so the kernel deletes it with our file descriptor;
  target processes get SIGKILL from the kernel too (``PR_SET_PDEATHSIG``); namespaces stay until
  ``tcpwise probe --clean``.

A TUN device added to a namespace *someone else* made (``--netns``) is named ``tp<pid>`` and disappears with our
process; nothing else is created there.

Namespace plumbing reuses the lab's public helpers (``sh``, ``in_netns``, ``list_namespaces``, ``delete_ns``);
veth pairs are created directly inside their two namespaces, as the lab does, so nothing ever lives in the root
namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import re
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from tcpwise.errors import MissingCapability, UsageError
from tcpwise.lab.netns import delete_ns, in_netns, list_namespaces, sh
from tcpwise.stack.tun import TunDevice

__all__ = [
    "World",
    "Proc",
    "NS_RE",
    "owner_alive",
    "clean",
    "list_probe_namespaces",
    "start_time",
    "check_capabilities",
    "tun_name",
    "tun_into",
]

NS_RE = re.compile(r"^twp-(\d+)-(\d+)-([a-z0-9]+)$")
PR_SET_PDEATHSIG = 1
_worlds = itertools.count(1)  # several worlds in one process (tests) get distinct names


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), None when there is no such pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    rest = raw[raw.rindex(b")") + 2 :].split()
    return int(rest[19])


def owner_alive(pid: int, started: int) -> bool:
    return start_time(pid) == started


def tun_name(pid: int | None = None) -> str:
    return f"tp{os.getpid() if pid is None else pid}"


def check_capabilities() -> None:
    """Raise MissingCapability (one line) unless root, ``ip`` and /dev/net/tun are there."""
    if os.geteuid() != 0:
        raise MissingCapability(
            "the probe needs root (network namespaces and a TUN device): run it with sudo"
        )
    if not os.path.exists("/dev/net/tun"):
        raise MissingCapability("the probe needs /dev/net/tun (CONFIG_TUN)")
    try:
        sh("ip", "-V")
    except MissingCapability:
        raise MissingCapability("the probe needs `ip` (iproute2): apt-get install iproute2") from None


def list_probe_namespaces() -> list[str]:
    return list_namespaces(NS_RE)


def _delete_ns(ns: str) -> None:
    delete_ns(ns, tries=100)


def clean(run_pid: int | None = None) -> list[str]:
    """Remove the namespaces of dead probe runs (or of the run of ``run_pid``, which must be dead too).
    Returns what was removed."""
    removed = []
    for ns in list_probe_namespaces():
        m = NS_RE.match(ns)
        assert m is not None
        pid, started = int(m.group(1)), int(m.group(2))
        if run_pid is not None and pid != run_pid:
            continue
        if owner_alive(pid, started):
            continue
        _delete_ns(ns)
        removed.append(ns)
    return removed


def _pdeathsig() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class Proc:
    """A process started in a namespace; output goes to a temporary file (read back on failure)."""

    popen: subprocess.Popen[bytes]
    cmd: str
    log_path: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output_tail(self, n: int = 300) -> str:
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        text = data.decode(errors="replace").strip()
        return text[-n:]


@dataclass
class World:
    """The namespaces, veths and processes of one probe run. Use as a context manager."""

    pid: int = field(default_factory=os.getpid)
    namespaces: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    _started: int = 0
    _seq: int = 0

    def __post_init__(self) -> None:
        st = start_time(self.pid)
        if st is None:
            raise RuntimeError("cannot read our own /proc/self/stat")
        self._started = st
        self._seq = next(_worlds)

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def ns_name(self, role: str) -> str:
        return f"twp-{self.pid}-{self._started}-{role}{self._seq}"

    def add_ns(self, role: str, sysctls: dict[str, str] | None = None) -> str:
        if not re.fullmatch(r"[a-z0-9]+", role):
            raise ValueError(f"bad namespace role {role!r}")
        name = self.ns_name(role)
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        for key, value in (sysctls or {}).items():
            self.sysctl(name, key, value)
        return name

    @staticmethod
    def sysctl(ns: str, key: str, value: str) -> None:
        """Write a per-namespace sysctl (opening /proc/sys inside the namespace, as sysctl(8) there would)."""
        if not re.fullmatch(r"net\.[A-Za-z0-9_.\-]+", key):
            raise UsageError(f"--sysctl {key}: only per-namespace net.* sysctls can be set for a target")
        path = "/proc/sys/" + key.replace(".", "/")
        with in_netns(ns):
            try:
                with open(path, "w") as f:
                    f.write(value)
            except FileNotFoundError:
                raise UsageError(f"--sysctl {key}: no such sysctl in a network namespace") from None
            except OSError as exc:
                raise UsageError(f"--sysctl {key}={value} refused: {exc.strerror}") from None

    @staticmethod
    def read_sysctl(ns: str, key: str) -> str | None:
        path = "/proc/sys/" + key.replace(".", "/")
        with in_netns(ns):
            try:
                with open(path) as f:
                    return f.read().strip()
            except OSError:
                return None

    def veth(self, ns1: str, if1: str, ns2: str, if2: str) -> None:
        """A veth pair created directly inside its two namespaces (never in the root namespace)."""
        sh("ip", "link", "add", if1, "netns", ns1, "type", "veth", "peer", "name", if2, "netns", ns2)
        for ns, ifn in ((ns1, if1), (ns2, if2)):
            self.sysctl(ns, f"net.ipv6.conf.{ifn}.accept_dad", "0")
            sh("ip", "-n", ns, "link", "set", ifn, "up")

    @staticmethod
    def addr(ns: str, ifname: str, cidr: str) -> None:
        extra = ["nodad"] if ":" in cidr else []
        sh("ip", "-n", ns, "addr", "add", cidr, "dev", ifname, *extra)

    @staticmethod
    def route(ns: str, *args: str) -> None:
        fam = ["-6"] if any(":" in a for a in args) else []
        sh("ip", "-n", ns, *fam, "route", "add", *args)

    def spawn(self, ns: str, cmd: str | Sequence[str], env: dict[str, str] | None = None) -> Proc:
        """Start ``cmd`` (a shell command line, or an argv) in namespace ``ns``; it dies with us."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        fd, log_path = _tempfile()
        try:
            popen = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                preexec_fn=_pdeathsig,  # noqa: PLW1509 - prctl only, no locks taken
                env={**os.environ, **(env or {})},
            )
        finally:
            os.close(fd)
        proc = Proc(popen, cmd if isinstance(cmd, str) else " ".join(cmd), log_path)
        self.procs.append(proc)
        return proc

    def destroy(self) -> None:
        """Kill our processes, delete our namespaces (safe to call twice)."""
        for p in self.procs:
            if p.alive():
                with contextlib.suppress(ProcessLookupError):
                    p.popen.kill()
        for ns in reversed(self.namespaces):
            if os.path.exists(f"/run/netns/{ns}"):
                _delete_ns(ns)
        self.namespaces.clear()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=2)
            with contextlib.suppress(OSError):
                os.unlink(p.log_path)
        self.procs.clear()


def _tempfile() -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="tcpwise-probe-", suffix=".log")


def tun_into(ns: str, name: str, kernel_cidrs: Sequence[str], txqueuelen: int = 1000) -> TunDevice:
    """Create a TUN device in namespace ``ns`` owned by this process and give its kernel side the addresses
    ``kernel_cidrs`` (their prefixes route the user-space host's addresses into the device)."""
    with in_netns(ns):
        dev = TunDevice(name)
    try:
        for cidr in kernel_cidrs:
            if ":" in cidr:
                World.sysctl(ns, f"net.ipv6.conf.{name}.accept_dad", "0")
            World.addr(ns, name, cidr)
        sh("ip", "-n", ns, "link", "set", name, "txqueuelen", str(txqueuelen), "up")
    except BaseException:
        dev.close()
        raise
    return dev

"""The lab topology: hosts A and B and a router R, each in its own network namespace, joined by veth pairs.

Theory of operation
-------------------
::

    A (198.18.0.1, fd00:0::1) --veth-- R (198.18.0.254 | 198.18.1.254) --veth-- B (198.18.1.1, fd00:1::1)

Every namespace is named ``tcpwise-<run id>-{a,r,b}`` (plus ``-p``, their parent, see below) with a run id ``lab`` + 6 hex digits, so that
``tcpwise lab clean`` can find a SIGKILLed run's leftovers by name and never touches namespaces other tools
made. Each veth pair is created *directly inside* its two namespaces (``ip link add NAME netns A type veth peer
name P netns R``), so no interface ever lives in the root namespace: deleting the namespaces deletes the links,
and a crash at any moment leaves at most namespaces behind (which ``clean`` removes).

R forwards in the kernel (``net.ipv4.ip_forward=1``) so that nftables faults apply in its ``forward`` hook, but
its routes send every forwarded packet into a TUN device ``tw0`` (policy routing: ``ip rule iif ra/rb lookup
100``). The user-space half of the router (:mod:`tcpwise.lab.forward`) reads them, holds them for the link
delay and writes them out the other veth with an AF_PACKET socket. This is how the lab gets the model's 50 ms
one-way delay on a kernel without ``sch_netem`` or ``nft queue``.

A, R and B are created as children of the ``-p`` namespace, whose ``net.ipv4.tcp_child_ehash_entries`` gives
each of them a private TCP hash table (Linux 6.1+): sock_diag dumps then cost microseconds instead of walking
every socket of the machine (:func:`_add_child_ns`).

Configuration uses the ``ip`` tool (iproute2) through :func:`subprocess.run` rather than a netlink library:
the set-up is a few dozen commands once per run, ``ip`` is already a system dependency (and what users type to
inspect the lab by hand), and it avoids a new Python dependency (pyroute2) for no speed gain that matters here.

Sockets are created *inside* a namespace by a process that switches its network namespace with ``setns(2)``
(:func:`in_netns`): a socket stays in the namespace it was created in (network_namespaces(7)), so the executor
can own capture, TUN and sock_diag sockets of R, A and B in one process and one selector loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tcpwise.errors import MissingCapability, UsageError
from tcpwise.lab.owner import OWNER_DIR, owner_alive, read_owner, remove_owner, shielded, write_owner

__all__ = [
    "Topology",
    "HostNet",
    "check_capabilities",
    "in_netns",
    "new_run_id",
    "list_lab_namespaces",
    "list_namespaces",
    "kill_ns_processes",
    "delete_ns",
    "clean",
    "clean_runs",
    "CleanReport",
    "lab_runs",
    "ns_pids",
    "sh",
]

NS_PREFIX = "tcpwise-"
RUN_ID_RE = re.compile(r"^lab[0-9a-f]{6}$")
NS_RE = re.compile(r"^tcpwise-(lab[0-9a-f]{6})-(a|r|b|c|p)$")
CLONE_NEWNET = 0x40000000
TUN_DEV = "tw0"
ROUTE_TABLE = "100"

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _setns(fd: int) -> None:
    if _lib().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


MS_BIND = 4096
CHILD_EHASH = "1024"


def _add_child_ns(parent: str, name: str) -> None:
    """``ip netns add name``, but with the new namespace created as a child of ``parent``.

    Why: sock_diag dumps walk the TCP established hash, which by default is one global table shared by every
    namespace — on a host with 60k sockets elsewhere one dump of an empty lab namespace costs ~60 ms. A child of
    a namespace whose ``net.ipv4.tcp_child_ehash_entries`` is set gets a private hash table (Linux 6.1+,
    ip-sysctl.rst), and its dumps cost microseconds. Same steps as ip-netns(8): unshare(CLONE_NEWNET) in this
    thread (inside ``parent``), bind-mount the thread's namespace on /run/netns/<name>, switch back."""
    path = f"/run/netns/{name}"
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    try:
        with in_netns(parent):
            libc = _lib()
            if libc.unshare(CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
            src = b"/proc/thread-self/ns/net"
            if libc.mount(src, path.encode(), b"none", MS_BIND, None) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mount --bind {src.decode()} {path}: {os.strerror(err)}")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside network namespace ``name`` (setns(2)), then switch back.

    Only sockets (and TUN fds) created inside the body belong to ``name``; everything else keeps working."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise UsageError(f"network namespace {name} does not exist") from None
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def sh(*args: str, input: str | None = None, check: bool = True, timeout: float = 20.0) -> str:
    """Run a command (no shell), return stdout; a failure becomes a one-line error naming the command."""
    try:
        # A session of its own: a terminal's Ctrl-C goes to the foreground process group, and an `ip netns delete`
        # killed halfway would leave the namespace it was removing (the caller decides about signals).
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise MissingCapability(f"{args[0]} not found (install iproute2 / nftables)") from None
    try:
        out, errs = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{' '.join(args)}: no answer in {timeout:g} s") from None
    except BaseException:
        # Interrupted (a forced Ctrl-C): let the command finish, so what is reported as left is what is left.
        with contextlib.suppress(Exception):
            proc.wait(timeout=timeout)
        raise
    p = subprocess.CompletedProcess(list(args), proc.returncode, out, errs)
    if check and p.returncode != 0:
        msg = (p.stderr or p.stdout).strip().splitlines()
        raise RuntimeError(f"{' '.join(args)}: {msg[0] if msg else 'exit ' + str(p.returncode)}")
    return p.stdout


def check_capabilities() -> None:
    """Raise MissingCapability (one line) unless we are root with ``ip netns`` and ``nft``."""
    if os.geteuid() != 0:
        raise MissingCapability("the lab needs root (network namespaces, nftables): run it with sudo")
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            raise MissingCapability(f"the lab needs `{tool}` ({pkg}); install it with apt-get install {pkg}")
    if not os.path.exists("/proc/self/ns/net"):
        raise MissingCapability("this kernel has no network namespaces (CONFIG_NET_NS)")
    if not os.path.exists("/dev/net/tun"):
        raise MissingCapability("the lab router needs /dev/net/tun (CONFIG_TUN)")


def new_run_id() -> str:
    return "lab" + secrets.token_hex(3)


def list_namespaces(pattern: re.Pattern[str]) -> list[str]:
    """The network namespaces whose name matches ``pattern`` (``ip -j netns list``; plain text on old iproute2)."""
    out = sh("ip", "-j", "netns", "list", check=False).strip()
    names: list[str] = []
    if out:
        try:
            names = [d["name"] for d in json.loads(out)]
        except (ValueError, KeyError, TypeError):
            names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return sorted(n for n in names if pattern.match(n))


def list_lab_namespaces() -> list[str]:
    """Namespaces whose name matches a lab run (``tcpwise-lab??????-{a,r,b}``)."""
    return list_namespaces(NS_RE)


def ns_pids(ns: str) -> list[int]:
    out = sh("ip", "netns", "pids", ns, check=False)
    return [int(x) for x in out.split() if x.isdigit()]


def kill_ns_processes(ns: str, tries: int = 50) -> None:
    """SIGKILL everything in ``ns`` and wait (``tries`` x 20 ms at most) until it is gone: the Crash step and
    cleanup."""
    me = os.getpid()
    for _ in range(tries):
        pids = [p for p in ns_pids(ns) if p != me]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def delete_ns(ns: str, tries: int = 50) -> None:
    """Kill what runs in ``ns`` (see :func:`kill_ns_processes`), then delete it."""
    kill_ns_processes(ns, tries)
    sh("ip", "netns", "delete", ns, check=False)


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)  # namespaces deleted
    running: dict[str, int] = field(default_factory=dict)  # run id -> owner pid, still alive: kept
    unowned: list[str] = field(default_factory=list)  # run ids without an owner record: kept unless named
    instances: list[str] = field(default_factory=list)  # tracefs instances of dead lab processes, removed


def lab_runs() -> dict[str, list[str]]:
    """Run id -> its namespaces, for every lab run on the machine."""
    runs: dict[str, list[str]] = {}
    for ns in list_lab_namespaces():
        m = NS_RE.match(ns)
        if m:
            runs.setdefault(m.group(1), []).append(ns)
    return runs


def _order(namespaces: list[str]) -> list[str]:
    # Hosts and router first, the parent last (its children keep it alive otherwise).
    return sorted(namespaces, key=lambda ns: ns.endswith("-p"))


def clean_runs(run_id: str | None = None) -> CleanReport:
    """Remove lab runs: the one named, or every run whose owner process is gone (:mod:`tcpwise.lab.owner`) — never
    a run in progress, never a run without an owner record unless it is named. Kills whatever still runs in
    the namespaces and deletes them (which deletes their veths, TUN device and nftables tables)."""
    if run_id is not None and not RUN_ID_RE.match(run_id):
        raise UsageError(f"bad lab run id {run_id!r} (expected lab + 6 hex digits, e.g. lab3f09a1)")
    rep = CleanReport()
    for rid, namespaces in sorted(lab_runs().items()):
        if run_id is not None and rid != run_id:
            continue
        if run_id is None:
            own = read_owner(rid)
            if own is None:
                rep.unowned.append(rid)
                continue
            if owner_alive(own):
                rep.running[rid] = own.pid
                continue
        for ns in _order(namespaces):
            delete_ns(ns)
            rep.removed.append(ns)
        remove_owner(rid)
    if run_id is not None:
        remove_owner(run_id)
    rep.instances = _clean_instances()
    return rep


def _clean_instances() -> list[str]:
    """The tracefs instances of lab processes that died without removing them (SIGKILL): a run's tracepoint
    instance is named after its process, not its run, and only a dead owner's is removed."""
    from tcpwise.errors import MissingCapability
    from tcpwise.linux import tracefs

    try:
        return tracefs.clean(purpose="lab")[0]
    except MissingCapability:
        return []  # tracefs not mounted: no run can have made one


def clean(run_id: str | None = None) -> list[str]:
    """:func:`clean_runs`, returning the namespaces removed."""
    return clean_runs(run_id).removed


@dataclass
class HostNet:
    """One end host: its namespace, interface and addresses (IPv4 and IPv6)."""

    name: str  # "A" / "B" / "C"
    ns: str
    ifname: str  # interface inside the host namespace
    router_if: str  # the peer interface inside R
    addr4: str
    router4: str
    addr6: str
    router6: str
    mac: str = ""  # the host interface's MAC (the user-space router needs it to address frames)

    def addr(self, ipv6: bool) -> str:
        return self.addr6 if ipv6 else self.addr4


@dataclass
class Topology:
    """A, R and B (and C, the third host of three-host scripts) in namespaces. Use as a context manager: the
    namespaces are deleted on every exit path, and a teardown is not interrupted by further signals."""

    run_id: str = field(default_factory=new_run_id)
    ipv6: bool = False
    hosts: dict[str, HostNet] = field(default_factory=dict)
    sysctls: dict[str, dict[str, str]] = field(
        default_factory=dict
    )  # host -> sysctl -> value (re-applied on reboot)
    created: bool = False
    ehash_private: bool = False
    delay_line: bool = True  # False: R forwards in the kernel straight to the other veth (no TUN, no delay)
    third_host: bool = (
        False  # True: a host C (198.18.2.1) for three-host scripts (an attacker, a second client)
    )

    def __post_init__(self) -> None:
        if not RUN_ID_RE.match(self.run_id):
            raise UsageError(f"bad lab run id {self.run_id!r}")
        self.hosts = {
            "A": HostNet(
                "A", self.ns("a"), "eth0", "ra", "198.18.0.1", "198.18.0.254", "fd00::1", "fd00::fe"
            ),
            "B": HostNet(
                "B", self.ns("b"), "eth0", "rb", "198.18.1.1", "198.18.1.254", "fd00:1::1", "fd00:1::fe"
            ),
        }
        if self.third_host:
            self.hosts["C"] = HostNet(
                "C", self.ns("c"), "eth0", "rc", "198.18.2.1", "198.18.2.254", "fd00:2::1", "fd00:2::fe"
            )

    def ns(self, suffix: str) -> str:
        return f"{NS_PREFIX}{self.run_id}-{suffix}"

    @property
    def router_ns(self) -> str:
        return self.ns("r")

    def host_by_addr(self, addr: str) -> str | None:
        for h in self.hosts.values():
            if addr in (h.addr4, h.addr6):
                return h.name
        return None

    # --- life cycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> Topology:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def create(self) -> None:
        check_capabilities()
        # The owner record first: from the first namespace on, `lab clean` can tell this run is in progress.
        write_owner(self.run_id)
        self.created = True  # from here on, destroy() has something to do even if set-up fails halfway
        try:
            # The parent namespace only holds the knob that gives A, R and B private TCP hash tables.
            sh("ip", "netns", "add", self.parent_ns)
            self.ehash_private = True
            try:
                self._ns_sysctl(self.parent_ns, "net.ipv4.tcp_child_ehash_entries", CHILD_EHASH)
            except (MissingCapability, UsageError):
                self.ehash_private = False  # kernel < 6.1: shared table, slower polling on busy hosts
            r = self.router_ns
            self._add_ns(r)
            self._ns_sysctl(r, "net.ipv4.ip_forward", "1")
            self._ns_sysctl(r, "net.ipv6.conf.all.forwarding", "1")
            # No reverse-path filter at R: an attacker host's spoofed sources (a SYN flood) must get through,
            # as they would on a real path; R never routes anything out of the lab anyway.
            self._ns_sysctl(r, "net.ipv4.conf.all.rp_filter", "0")
            self._ns_sysctl(r, "net.ipv4.conf.default.rp_filter", "0")
            sh("ip", "-n", r, "link", "set", "lo", "up")
            if self.delay_line:
                # The TUN device the kernel routes forwarded packets into (the user-space half of the router).
                sh("ip", "-n", r, "tuntap", "add", "dev", TUN_DEV, "mode", "tun")
                sh("ip", "-n", r, "link", "set", TUN_DEV, "up")
                sh("ip", "-n", r, "route", "add", "default", "dev", TUN_DEV, "table", ROUTE_TABLE)
                sh("ip", "-n", r, "-6", "route", "add", "default", "dev", TUN_DEV, "table", ROUTE_TABLE)
            for h in self.hosts.values():
                self._add_ns(h.ns)
                self._wire_host(h)
                if self.delay_line:
                    sh("ip", "-n", r, "rule", "add", "iif", h.router_if, "lookup", ROUTE_TABLE)
                    sh("ip", "-n", r, "-6", "rule", "add", "iif", h.router_if, "lookup", ROUTE_TABLE)
        except BaseException:
            self.destroy()
            raise

    @property
    def parent_ns(self) -> str:
        return self.ns("p")

    def _add_ns(self, name: str) -> None:
        if self.ehash_private:
            _add_child_ns(self.parent_ns, name)
        else:
            sh("ip", "netns", "add", name)

    def _wire_host(self, h: HostNet) -> None:
        """veth pair host<->R created inside both namespaces at once, addresses, routes, static neighbours."""
        r = self.router_ns
        sh(
            "ip",
            "link",
            "add",
            h.ifname,
            "netns",
            h.ns,
            "type",
            "veth",
            "peer",
            "name",
            h.router_if,
            "netns",
            r,
        )
        # No IPv6 duplicate address detection: addresses are usable at once (DAD would hold them ~1 s).
        for ns, ifn in ((h.ns, h.ifname), (r, h.router_if)):
            self._ns_sysctl(ns, f"net.ipv6.conf.{ifn}.accept_dad", "0")
        sh("ip", "-n", h.ns, "link", "set", "lo", "up")
        sh("ip", "-n", h.ns, "addr", "add", f"{h.addr4}/24", "dev", h.ifname)
        sh("ip", "-n", h.ns, "addr", "add", f"{h.addr6}/64", "dev", h.ifname, "nodad")
        # One MSS per frame: veths offload segmentation (TSO/GSO), so a bulk sender would put 2-3 MSS in one frame
        # at R and the capture would not show the segments the model sends. gso_max_segs 1 makes the host's stack
        # cut every segment itself, as a NIC without TSO would.
        sh("ip", "-n", h.ns, "link", "set", h.ifname, "gso_max_segs", "1", "up")
        sh("ip", "-n", r, "addr", "add", f"{h.router4}/24", "dev", h.router_if)
        sh("ip", "-n", r, "addr", "add", f"{h.router6}/64", "dev", h.router_if, "nodad")
        sh("ip", "-n", r, "link", "set", h.router_if, "up")
        sh("ip", "-n", h.ns, "route", "add", "default", "via", h.router4)
        sh("ip", "-n", h.ns, "-6", "route", "add", "default", "via", h.router6)
        h.mac = json.loads(sh("ip", "-j", "-n", h.ns, "link", "show", h.ifname))[0]["address"]
        rmac = json.loads(sh("ip", "-j", "-n", r, "link", "show", h.router_if))[0]["address"]
        # Static neighbour entries both ways: no ARP/ND traffic in the capture and no first-packet ARP wait.
        sh(
            "ip",
            "-n",
            h.ns,
            "neigh",
            "replace",
            h.router4,
            "lladdr",
            rmac,
            "dev",
            h.ifname,
            "nud",
            "permanent",
        )
        sh(
            "ip",
            "-n",
            h.ns,
            "neigh",
            "replace",
            h.router6,
            "lladdr",
            rmac,
            "dev",
            h.ifname,
            "nud",
            "permanent",
        )
        sh(
            "ip",
            "-n",
            r,
            "neigh",
            "replace",
            h.addr4,
            "lladdr",
            h.mac,
            "dev",
            h.router_if,
            "nud",
            "permanent",
        )
        sh(
            "ip",
            "-n",
            r,
            "neigh",
            "replace",
            h.addr6,
            "lladdr",
            h.mac,
            "dev",
            h.router_if,
            "nud",
            "permanent",
        )
        for key, value in self.sysctls.get(h.name, {}).items():
            self._ns_sysctl(h.ns, key, value)

    def namespaces(self) -> list[str]:
        """Every namespace of the run, in deletion order (the parent last)."""
        return [h.ns for h in self.hosts.values()] + [self.router_ns, self.parent_ns]

    def leftovers(self) -> list[str]:
        """What of this run still exists (for the message of an interrupted cleanup)."""
        left = [f"namespace {ns}" for ns in self.namespaces() if os.path.exists(f"/run/netns/{ns}")]
        if read_owner(self.run_id) is not None:
            left.append(f"owner record {OWNER_DIR}/{self.run_id}.json")
        return left

    def destroy(self) -> None:
        """Delete the namespaces (killing whatever still runs in them) and the owner record; safe to call twice.
        Shielded: further Ctrl-C/SIGTERM cannot interrupt it halfway (:func:`tcpwise.lab.owner.shielded`)."""
        if not self.created:
            return
        with shielded(self.run_id, self.leftovers):
            for ns in self.namespaces():
                if os.path.exists(f"/run/netns/{ns}"):
                    delete_ns(ns)
            remove_owner(self.run_id)
            self.created = False

    # --- knobs and faults that need the topology ---------------------------------------------------------------
    @staticmethod
    def _ns_sysctl(ns: str, key: str, value: str) -> None:
        # /proc/sys/net/* resolves to the network namespace of the thread that *opens* it, so writing it inside
        # in_netns() is sysctl(8) run in that namespace, without a process per knob.
        path = "/proc/sys/" + key.replace(".", "/")
        with in_netns(ns):
            try:
                with open(path, "w") as f:
                    f.write(value)
            except FileNotFoundError:
                raise MissingCapability(f"this kernel has no sysctl {key}") from None
            except OSError as exc:
                raise UsageError(f"sysctl {key}={value} refused: {exc.strerror}") from None

    def set_sysctl(self, host: str, key: str, value: str) -> None:
        self.sysctls.setdefault(host, {})[key] = value
        self._ns_sysctl(self.hosts[host].ns, key, value)

    def kill_host_processes(self, host: str) -> None:
        kill_ns_processes(self.hosts[host].ns)

    def reboot_host(self, host: str) -> None:
        """A fresh TCP stack for ``host``: kill its processes, delete its namespace and the veth pair (so the old
        sockets, which may keep the dead namespace alive, lose their link), then build it again with the same
        addresses and sysctls. Segments of old connections now meet a stack that answers RST (RFC 9293 §3.10.7.1)."""
        h = self.hosts[host]
        kill_ns_processes(h.ns)
        sh("ip", "-n", self.router_ns, "link", "del", h.router_if, check=False)
        sh("ip", "netns", "delete", h.ns, check=False)
        self._add_ns(h.ns)
        self._wire_host(h)
        # The router's ip rule for this interface survives (it names the interface, not its index).

    def router_ifindex(self, host: str) -> int:
        return int(
            json.loads(sh("ip", "-j", "-n", self.router_ns, "link", "show", self.hosts[host].router_if))[0][
                "ifindex"
            ]
        )

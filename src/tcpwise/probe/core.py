"""What every behaviour needs: the probe's connections, the wire tracker, the target's view, the verdict record.

Theory of operation
-------------------
A behaviour is a small async script on a :class:`~tcpwise.stack.host.Host` (the tcpwise endpoint on a TUN
device facing the target). Three instruments watch it:

* :class:`Tracker` — the first hook on the host: for every probe connection it notes when the *target* sent
  its first FIN and RST, when the probe did, and how much the target sent. It sees segments even when a
  behaviour's own hook then ignores them (a vanished client still "hears" the target's FIN: that is the moment
  the target gave up on it);
* :class:`TargetView` — the target's side of each connection, sampled from its namespace through sock_diag
  every 50 ms (:class:`DiagObserver`), with the time each state was first seen. It catches closes that never
  reach the wire: a FIN queued behind data the probe's zero window holds back (FIN_WAIT_1), or a connection
  the target's kernel dropped silently after its retries (gone, no RST);
* the observer's usage figures: open file descriptors and RSS of the target's processes, taken before and
  after each behaviour, so ``left.fds`` counts what the behaviour left behind.

:meth:`Ctx.target_closed` combines the three into (when, how) — the earliest FIN or RST from the target, or
the first closing state sock_diag showed, or the moment its socket vanished without a word (how = None).
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tcpwise.doctor.findings import Finding
from tcpwise.endpoint import EndpointConfig
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.events import Event, Run
from tcpwise.lab.observe import ConnKey, state_events
from tcpwise.stack import Host, open_connection
from tcpwise.vocab import ACK, FIN, RST, SYN
from tcpwise.wire.segment import TcpSegment

__all__ = [
    "ConnKey",
    "Observer",
    "DiagObserver",
    "HostObserver",
    "Tracker",
    "ConnRec",
    "TargetView",
    "Options",
    "Ctx",
    "Conn",
    "Outcome",
    "Result",
    "CLOSING_STATES",
]

CLOSING_STATES = frozenset({"FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "LAST_ACK", "TIME_WAIT"})
_POLL = 0.05


class Observer(Protocol):
    """The target as seen from its side: its sockets toward the probe, its processes."""

    def sample(self) -> dict[ConnKey, str]:
        """Target sockets on the target port whose peer is the probe (listeners excluded)."""
        ...

    def listening(self) -> bool: ...

    def usage(self) -> tuple[int | None, int | None]:
        """(open fds, RSS in KiB) of the target's processes; None where unknown."""
        ...

    def alive(self) -> bool: ...

    def sysctl(self, key: str) -> str | None: ...


class DiagObserver:
    """A target in a network namespace: sock_diag inside it, /proc for its processes."""

    def __init__(
        self,
        ns: str,
        port: int,
        probe_addrs: list[str],
        pids: Callable[[], list[int]],
        alive: Callable[[], bool] | None = None,
    ) -> None:
        from tcpwise.lab.netns import in_netns
        from tcpwise.linux.netlink import open_diag_socket

        self.ns = ns
        self.port = port
        self.probe_addrs = set(probe_addrs)
        self._pids = pids
        self._alive = alive
        with in_netns(ns):
            self.sock = open_diag_socket()
        self._listening = False

    def sample(self) -> dict[ConnKey, str]:
        from tcpwise.linux.netlink import dump, format_addr
        from tcpwise.vocab import kernel_state_name

        out: dict[ConnKey, str] = {}
        listening = False
        for s in dump((socket.AF_INET, socket.AF_INET6), sock=self.sock, ext=0):
            if s.sport != self.port:
                continue
            state = kernel_state_name(s.state)
            if state == "LISTEN":
                listening = True
                continue
            raddr = format_addr(s.family, s.dst)
            if raddr.startswith("::ffff:"):
                raddr = raddr[7:]
            if raddr not in self.probe_addrs:
                continue
            laddr = format_addr(s.family, s.src)
            if laddr.startswith("::ffff:"):
                laddr = laddr[7:]
            out[(laddr, s.sport, raddr, s.dport)] = state
        self._listening = listening
        return out

    def listening(self) -> bool:
        self.sample()
        return self._listening

    def usage(self) -> tuple[int | None, int | None]:
        fds = rss = 0
        for pid in self._pids():  # no process left (the target died) holds nothing: 0, 0
            try:
                fds += len(_listdir(f"/proc/{pid}/fd"))
                rss += _rss_kb(pid)
            except OSError:
                continue
        return fds, rss

    def alive(self) -> bool:
        if self._alive is not None:
            return self._alive()
        return bool(self._pids())

    def sysctl(self, key: str) -> str | None:
        from tcpwise.probe.world import World

        return World.read_sysctl(self.ns, key)

    def close(self) -> None:
        self.sock.close()


def _listdir(path: str) -> list[str]:
    import os

    return os.listdir(path)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class HostObserver:
    """A target that is itself a tcpwise :class:`Host` in this process (tests, scripted peers)."""

    def __init__(self, host: Host, port: int) -> None:
        self.host = host
        self.port = port

    def sample(self) -> dict[ConnKey, str]:
        out: dict[ConnKey, str] = {}
        for ep in self.host.connections():
            if ep.lport == self.port and ep.state.value != "CLOSED":
                out[(ep.laddr, ep.lport, ep.raddr, ep.rport)] = ep.state.value
        return out

    def listening(self) -> bool:
        return any(self.port in st.listeners for st in self.host.stacks.values())

    def usage(self) -> tuple[int | None, int | None]:
        return None, None

    def alive(self) -> bool:
        return self.listening()

    def sysctl(self, key: str) -> str | None:
        return None


@dataclass
class ConnRec:
    """What crossed the wire on one probe connection (times in host seconds)."""

    target_fin: float | None = None
    target_rst: float | None = None
    probe_fin: float | None = None
    probe_rst: float | None = None
    rx_bytes: int = 0
    rx_acks: list[float] = field(
        default_factory=list
    )  # pure ACKs from the target (challenge ACKs among them)
    tx_syns: int = 0


class Tracker:
    """The first hook: notes FIN/RST/bytes per probe connection (keyed by the probe's local port)."""

    def __init__(self, host: Host, port: int) -> None:
        self.host = host
        self.port = port
        self.conns: dict[int, ConnRec] = {}

    def rec(self, lport: int) -> ConnRec:
        r = self.conns.get(lport)
        if r is None:
            r = self.conns[lport] = ConnRec()
        return r

    def __call__(self, direction: str, src: str, dst: str, seg: TcpSegment) -> bool:
        now = self.host.now()
        if direction == "in":
            if seg.sport != self.port:
                return True
            r = self.rec(seg.dport)
            if seg.flags & RST and r.target_rst is None:
                r.target_rst = now
            if seg.flags & FIN and r.target_fin is None:
                r.target_fin = now
            r.rx_bytes += len(seg.payload)
            if seg.flags & (SYN | FIN | RST) == 0 and seg.flags & ACK and not seg.payload:
                r.rx_acks.append(now)
        else:
            if seg.dport != self.port:
                return True
            r = self.rec(seg.sport)
            if seg.flags & RST and r.probe_rst is None:
                r.probe_rst = now
            if seg.flags & FIN and r.probe_fin is None:
                r.probe_fin = now
            if seg.flags & SYN:
                r.tx_syns += 1
        return True


def _born_from(key: ConnKey, state: str) -> str:
    # The target's samples hold only connections to its listening port: every one is a passive open, born from
    # the listener (RFC 9293 §3.3.2); SYN_RCVD lasts microseconds on a TUN, so the first sample may show
    # ESTABLISHED. A connection first seen closing was never seen open: it starts from CLOSED.
    return "LISTEN" if state in ("SYN_RCVD", "ESTABLISHED") else "CLOSED"


class TargetView:
    """The target's states over time, as events for its lane and first-seen times per connection."""

    def __init__(self, observer: Observer, names: dict[str, str], target_name: str = "target") -> None:
        self.observer = observer
        self.names = names
        self.target_name = target_name
        self.last: dict[ConnKey, str] = {}
        self.seen: dict[ConnKey, dict[str, float]] = {}
        self.gone: dict[ConnKey, float] = {}
        self.events: list[Event] = []

    def label(self, key: ConnKey) -> str:
        _, lport, raddr, rport = key
        peer = self.names.get(raddr, raddr)
        return f"{self.target_name}:{lport}>{peer}:{rport}"

    def poll(self, t: float) -> None:
        cur = self.observer.sample()
        for key, state in cur.items():
            if self.last.get(key) != state:
                self.seen.setdefault(key, {}).setdefault(state, t)
                self.gone.pop(key, None)
        for key in self.last:
            if key not in cur:
                self.gone[key] = t
        self.events += state_events(t, self.target_name, self.last, cur, self.label, _born_from)
        self.last = cur

    def keys_for(self, lport: int) -> list[ConnKey]:
        keys = set(self.seen) | set(self.last)
        return [k for k in keys if k[3] == lport]

    def states_for(self, lports: set[int]) -> dict[str, int]:
        return dict(Counter(s for k, s in self.last.items() if k[3] in lports))


@dataclass(frozen=True)
class Options:
    """Knobs every behaviour reads. Times in seconds."""

    port: int
    target_addr: str
    deadline: float = 10.0  # how long a behaviour waits for the target to act
    interval: float = 1.0  # slow behaviours: seconds between bytes
    flood: int = 1024  # syn-flood: SYNs sent
    request: bytes = b"GET / HTTP/1.1\r\nHost: target\r\n\r\n"
    cfg: EndpointConfig | None = None  # endpoint configuration of the probe's connections
    watch: float = 0.0  # after the verdict, keep recording (for the picture) until the target's sockets go


@dataclass
class Conn:
    """One probe connection: asyncio streams plus the endpoint underneath."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    ep: Endpoint
    opened_at: float

    @property
    def lport(self) -> int:
        return self.ep.lport


@dataclass
class Outcome:
    """What a behaviour reports back to the runner (which adds what the target left behind)."""

    passed: bool
    t0: float  # when the misbehaviour started (host time): closed_after_s counts from here
    lports: set[int]
    closed: tuple[float, str, str | None] | None = None  # (time, "target"|"probe", "FIN"|"RST"|None)
    finding: Finding | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[float, str]] = field(default_factory=list)
    cleanup: Callable[[], None] | None = None
    left_ports: set[int] = field(default_factory=set)  # more probe ports whose target sockets count as "left"


@dataclass
class Result:
    """One behaviour's verdict; :meth:`to_dict` is exactly the JSON contract of ``tcpwise probe --format json``."""

    name: str
    verdict: str  # "pass" | "fail"
    closed_after_s: float | None
    closed_by: str | None
    how: str | None
    states: dict[str, int]
    fds: int | None
    finding: Finding | None
    evidence: dict[str, Any] = field(default_factory=dict)
    run: Run | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "closed_after_s": None if self.closed_after_s is None else round(self.closed_after_s, 3),
            "closed_by": self.closed_by,
            "how": self.how,
            "left": {"states": dict(sorted(self.states.items())), "fds": self.fds},
            "finding": self.finding.to_dict() if self.finding is not None else None,
        }


class Ctx:
    """Handed to each behaviour: the host, the options, the instruments and small helpers."""

    def __init__(self, host: Host, opts: Options, tracker: Tracker, view: TargetView) -> None:
        self.host = host
        self.opts = opts
        self.tracker = tracker
        self.view = view
        self.notes: list[tuple[float, str]] = []
        self.conns: list[
            Conn
        ] = []  # kept alive until the runner resets them (a collected writer would close)

    def now(self) -> float:
        return self.host.now()

    def note(self, text: str) -> None:
        self.notes.append((self.now(), text))
        self.host.note(text)

    def cfg(self, **changes: Any) -> EndpointConfig | None:
        base = self.opts.cfg
        if not changes:
            return base
        from tcpwise.endpoint import LINUX

        return (base or LINUX).with_(**changes)

    async def connect(self, timeout: float = 5.0, **cfg_changes: Any) -> Conn:
        reader, writer = await asyncio.wait_for(
            open_connection(self.host, self.opts.target_addr, self.opts.port, cfg=self.cfg(**cfg_changes)),
            timeout,
        )
        ep: Endpoint = writer.get_extra_info("endpoint")
        self.tracker.rec(ep.lport)
        conn = Conn(reader, writer, ep, self.now())
        self.conns.append(conn)
        self.view.poll(self.now())  # the target's side of the handshake, as close to it as we can see
        return conn

    async def sleep(self, seconds: float) -> None:
        """Sleep while sampling the target (so its lane in the picture keeps time)."""
        end = self.now() + seconds
        while True:
            self.view.poll(self.now())
            left = end - self.now()
            if left <= 0:
                return
            await asyncio.sleep(min(_POLL, left))

    async def until(self, pred: Callable[[], bool], deadline: float) -> bool:
        """Poll ``pred`` (and the target) every 50 ms until it holds or host time reaches ``deadline``."""
        while True:
            self.view.poll(self.now())
            if pred():
                return True
            left = deadline - self.now()
            if left <= 0:
                return False
            await asyncio.sleep(min(_POLL, left))

    def target_closed(self, lport: int, since: float = 0.0) -> tuple[float, str | None] | None:
        """When and how the target ended this connection: (t, "FIN"|"RST"|None) or None (still open)."""
        r = self.tracker.rec(lport)
        cands: list[tuple[float, str | None]] = []
        if r.target_rst is not None and r.target_rst >= since:
            cands.append((r.target_rst, "RST"))
        if r.target_fin is not None and r.target_fin >= since:
            cands.append((r.target_fin, "FIN"))
        probe_done = r.probe_rst is not None
        for key in self.view.keys_for(lport):
            for state, t in self.view.seen.get(key, {}).items():
                if state in CLOSING_STATES and t >= since:
                    cands.append((t, "FIN"))  # a FIN queued or sent (maybe held back by our zero window)
            t_gone = self.view.gone.get(key)
            if t_gone is not None and t_gone >= since and not probe_done and r.probe_fin is None:
                cands.append((t_gone, None))  # vanished without a word: the target's kernel gave up
        return min(cands, key=lambda c: c[0]) if cands else None

    def mute(self, lport: int, inbound: bool = True, outbound: bool = True) -> Callable[[], None]:
        """Ignore everything on this connection (the probe "vanishes"); returns the undo."""
        port = self.opts.port

        def hook(direction: str, src: str, dst: str, seg: TcpSegment) -> bool:
            if direction == "in" and inbound and seg.sport == port and seg.dport == lport:
                return False
            if direction == "out" and outbound and seg.dport == port and seg.sport == lport:
                return False
            return True

        self.host.hooks.append(hook)
        return lambda: self.host.hooks.remove(hook) if hook in self.host.hooks else None

    async def read_response(self, c: Conn, timeout: float = 3.0) -> bytes:
        """Read one response: an HTTP one by its Content-Length, anything else until 200 ms of quiet."""
        buf = bytearray()
        end = self.now() + timeout
        while self.now() < end:
            want = _http_total(buf)
            if want is not None and len(buf) >= want:
                break
            quiet = 0.2 if want is None and buf else end - self.now()
            try:
                chunk = await asyncio.wait_for(c.reader.read(65536), max(0.01, min(quiet, end - self.now())))
            except TimeoutError:
                if buf and want is None:
                    break
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        return bytes(buf)

    async def exchange(self, c: Conn, request: bytes | None = None) -> bytes:
        req = self.opts.request if request is None else request
        if not req:
            return b""
        c.writer.write(req)
        await c.writer.drain()
        resp = await self.read_response(c)
        self.view.poll(self.now())
        return resp

    def abort(self, c: Conn) -> None:
        """RST the probe's connection (cleanup after a behaviour, or the behaviour itself)."""
        if not c.writer.transport.is_closing():
            c.writer.transport.abort()
        elif c.ep.state.value != "CLOSED":
            c.ep.abort(self.now())
            self.host.kick(c.ep)


def _http_total(buf: bytearray) -> int | None:
    """Total length of an HTTP response in ``buf`` (head + Content-Length), None when not HTTP or unknown."""
    if not buf.startswith(b"HTTP/"):
        return None
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    for line in bytes(buf[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return end + 4 + int(value.strip())
            except ValueError:
                return None
    return None

"""The scenario script: what happens when, written once and run in both worlds.

A :class:`Script` names two or more hosts, the link between them and a time-ordered list of steps. The
simulator (:mod:`tcpwise.sim.runner`) executes it against model endpoints; the lab (:mod:`tcpwise.lab`)
executes the same steps with real sockets in network namespaces and faults at the router. Checks then read the
recorded :class:`tcpwise.events.Run`, whichever world produced it.

Steps carry an absolute time ``t`` (seconds from the start of the run). Socket steps name the host whose
application acts and, where a host has several sockets, the socket by a short label ``sock`` (default ``"c"``
for the connecting side, ``"s"`` for the accepted side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Step",
    "Listen",
    "Connect",
    "Accept",
    "Send",
    "Shutdown",
    "Close",
    "Abort",
    "DropNext",
    "Partition",
    "Heal",
    "Crash",
    "Reboot",
    "Note",
    "LinkSpec",
    "HostSpec",
    "Script",
]


@dataclass(frozen=True, slots=True)
class Step:
    t: float


@dataclass(frozen=True, slots=True)
class Listen(Step):
    host: str
    port: int = 80
    backlog: int | None = None  # None = host config's backlog
    accept: bool = True  # the server application accept()s at once (False: a slow/never-accepting server)
    on_eof: str = ""  # "close": the accepted socket's application close()s as soon as it reads EOF


@dataclass(frozen=True, slots=True)
class Connect(Step):
    host: str
    to: str
    port: int = 80
    sport: int | None = None  # None = ephemeral
    sock: str = "c"
    on_eof: str = ""  # "close": the application close()s as soon as it reads EOF


@dataclass(frozen=True, slots=True)
class Accept(Step):
    """Explicit accept() on a listener created with ``accept=False``."""

    host: str
    port: int = 80
    sock: str = "s"


@dataclass(frozen=True, slots=True)
class Send(Step):
    host: str
    nbytes: int = 0
    data: bytes | None = None  # exact bytes (overrides nbytes)
    sock: str = "c"


@dataclass(frozen=True, slots=True)
class Shutdown(Step):
    """shutdown(SHUT_WR): half-close, send FIN, keep receiving."""

    host: str
    sock: str = "c"


@dataclass(frozen=True, slots=True)
class Close(Step):
    host: str
    sock: str = "c"


@dataclass(frozen=True, slots=True)
class Abort(Step):
    """close() with SO_LINGER {1, 0}: RST, no TIME_WAIT."""

    host: str
    sock: str = "c"


@dataclass(frozen=True, slots=True)
class DropNext(Step):
    """Drop the next ``count`` segments from ``src`` to ``dst`` whose flags equal ``flags`` exactly
    (canonical letters, e.g. ``"A"`` for a pure ACK, ``"FA"``); ``flags=None`` matches any segment."""

    src: str
    dst: str
    flags: str | None = None
    count: int = 1


@dataclass(frozen=True, slots=True)
class Partition(Step):
    """From ``t`` on, drop every segment from ``src`` to ``dst`` (one way) until a :class:`Heal`."""

    src: str
    dst: str

    def describe(self) -> tuple[str, str]:
        """The note both worlds log when the partition starts (en, zh)."""
        return (
            f"partition: {self.src} -> {self.dst} drops everything",
            f"网络分区：{self.src} -> {self.dst} 的包全部丢弃",
        )


@dataclass(frozen=True, slots=True)
class Heal(Step):
    src: str
    dst: str

    def describe(self) -> tuple[str, str]:
        return f"partition healed: {self.src} -> {self.dst}", f"网络分区恢复：{self.src} -> {self.dst}"


@dataclass(frozen=True, slots=True)
class Crash(Step):
    """The host dies: every process killed, connection state lost, no FIN or RST sent, traffic dropped."""

    host: str


@dataclass(frozen=True, slots=True)
class Reboot(Step):
    """The host comes back with an empty TCP stack: segments for old connections get RST."""

    host: str


@dataclass(frozen=True, slots=True)
class Note(Step):
    text: str
    text_zh: str = ""


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One-way delays and impairments between the two sides (the sim's link; the lab's router R)."""

    delay: float = 0.05  # seconds, one way
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0


@dataclass(frozen=True, slots=True)
class HostSpec:
    name: str
    addr: str
    role: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # EndpointConfig overrides for this host


@dataclass(frozen=True, slots=True)
class Script:
    hosts: tuple[HostSpec, ...]
    steps: tuple[Step, ...]
    link: LinkSpec = LinkSpec()
    duration: float = 10.0  # the run ends here (or earlier when nothing is left to happen)

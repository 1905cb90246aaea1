"""The path and its hops: who keeps an idle connection how long, and where each number came from.

A *path* is an ordered list of hops from the client inwards (client pool -> LB/NAT -> proxy -> app server ->
database, any subset). Two kinds of hop:

* an **endpoint** terminates TCP. Its ``idle`` is how long it keeps an idle connection *from the hop before it*
  open (a server's keep-alive timeout: nginx ``keepalive_timeout``, uvicorn ``--timeout-keep-alive``); its
  ``pool_idle`` is how long it keeps an idle connection *to the hop after it* in its pool (nginx upstream
  ``keepalive_timeout``, Go ``IdleConnTimeout``, aiohttp ``keepalive_timeout``). ``None`` means "never gives
  up" (urllib3 has no idle expiry), ``0`` means "does not keep idle connections at all" (no reuse);
* a **middlebox** (NAT gateway, L4 load balancer, conntrack firewall) does not terminate TCP but forgets a flow
  after ``idle`` seconds of silence, silently (``on_expire="drop"``) or with a RST (``"rst"``).

Every number carries its :class:`Source` — a file and line, a command-line flag, or the documented default — so
that a finding can say exactly which line to change and in which syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tcpwise.errors import UsageError

__all__ = ["Source", "Value", "Hop", "FIELDS", "ROLES", "ON_EXPIRE"]

ROLES = ("client", "proxy", "server", "middlebox")
ON_EXPIRE = ("drop", "rst")

# field -> (help, default unit of a bare number)
FIELDS: dict[str, str] = {
    "idle": "keeps an idle connection from the previous hop this long (server keep-alive; middlebox cutoff)",
    "pool_idle": "keeps an idle connection to the next hop in its pool this long",
    "keepalive": "TCP keepalive idle time before the first probe (SO_KEEPALIVE on)",
    "heartbeat": "application heartbeat/ping interval on idle connections",
    "max_lifetime": "pool closes a connection this long after it opened (e.g. HikariCP maxLifetime)",
    "hard_limit": "server closes a connection this long after it opened, idle or not",
    "read_timeout": "waits this long for the next hop's response (e.g. nginx proxy_read_timeout)",
}


@dataclass(frozen=True, slots=True)
class Source:
    """Where a value came from: ``file``/``line`` of a config, ``flag`` (command line), or a default's ``doc``."""

    kind: str  # "file" | "flag" | "default" | "path"
    file: str | None = None
    line: int | None = None
    text: str = ""  # the setting as written there (``keepalive_timeout 60s;``) or the default's reference

    def __post_init__(self) -> None:
        if self.kind not in ("file", "flag", "default", "path"):
            raise ValueError(f"bad source kind {self.kind!r}")

    def where(self) -> str:
        if self.kind == "file":
            return f"{self.file}:{self.line}" if self.line else str(self.file)
        if self.kind == "default":
            return "default"
        if self.kind == "path":
            return f"{self.file}:{self.line}" if self.line else str(self.file or "path file")
        return "command line"


@dataclass(frozen=True, slots=True)
class Value:
    """Seconds (``None`` = unlimited) and where the number came from."""

    seconds: float | None
    source: Source

    def __post_init__(self) -> None:
        if self.seconds is not None and self.seconds < 0:
            raise ValueError("a duration is >= 0")


@dataclass(frozen=True, slots=True)
class Hop:
    """One hop of the path. Unset fields (absent from ``values``) are not known and never judged."""

    name: str
    kind: str
    role: str
    values: dict[str, Value] = field(default_factory=dict)
    on_expire: str = "drop"  # middleboxes: what a packet of a forgotten flow meets
    notes: tuple[
        str, ...
    ] = ()  # what the parser noticed (e.g. "upstream keepalive needs proxy_http_version 1.1")
    context: dict[str, str] = field(
        default_factory=dict
    )  # parser facts the fixes need (upstream name, section)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise UsageError(f"hop {self.name!r}: role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.on_expire not in ON_EXPIRE:
            raise UsageError(f"hop {self.name!r}: on_expire must be drop or rst, got {self.on_expire!r}")
        for k in self.values:
            if k not in FIELDS:
                raise UsageError(f"hop {self.name!r}: unknown field {k!r}; valid: {', '.join(FIELDS)}")

    @property
    def is_middlebox(self) -> bool:
        return self.role == "middlebox"

    def get(self, name: str) -> Value | None:
        return self.values.get(name)

    def seconds(self, name: str) -> float | None:
        """The value in seconds; ``inf`` for "never", ``None`` when unknown."""
        v = self.values.get(name)
        if v is None:
            return None
        return float("inf") if v.seconds is None else v.seconds

    def with_values(self, **vals: Value) -> Hop:
        merged = dict(self.values)
        merged.update(vals)
        return replace(self, values=merged)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"name": self.name, "kind": self.kind, "role": self.role}
        for k in FIELDS:
            v = self.values.get(k)
            d[k] = None if v is None else ("never" if v.seconds is None else v.seconds)
        if self.is_middlebox:
            d["on_expire"] = self.on_expire
        d["sources"] = {k: v.source.where() for k, v in self.values.items()}
        if self.notes:
            d["notes"] = list(self.notes)
        return d

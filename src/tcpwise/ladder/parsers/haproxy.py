"""haproxy.cfg: sections and the timeouts that make HAProxy's idle ladder.

Grammar (configuration.txt §2): a line is a keyword and arguments; ``#`` starts a comment; a section starts with
``global``, ``defaults [name]``, ``frontend``, ``backend`` or ``listen``. A proxy section inherits the *last*
``defaults`` section above it (or the one it names with ``from``). Time values without a unit are milliseconds
(§2.5); ``us ms s m h d`` are accepted.

What the ladder takes from it:

* client side (frontend/listen): ``timeout http-keep-alive``, else ``timeout http-request``, else
  ``timeout client`` (§4 "timeout http-keep-alive": "If this parameter is not set, the "http-request" timeout
  applies, and if both are not set, "timeout client" still applies");
* server side (backend/listen): HAProxy keeps idle server connections with no idle timeout of its own (it trims
  the surplus every ``pool-purge-delay``), so the pool side is "never" unless reuse is off (``http-reuse never``,
  ``option httpclose``/``http-server-close``) — then 0. ``retry-on`` with ``retries`` >= 1 replays a request that
  met a closed connection (noted, the race's consequence is then hidden);
* ``timeout server`` (waiting for the response), ``option srvtcpka``/``srvtcpka-idle`` (TCP keepalive).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcpwise.errors import UsageError
from tcpwise.ladder.model import Hop, Source, Value
from tcpwise.ladder.parsers import ParseError, read_text
from tcpwise.ladder.units import parse_duration

__all__ = ["Section", "parse_haproxy", "read_haproxy"]

SECTIONS = ("global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist", "program",
            "mailers", "cache", "http-errors", "ring")  # fmt: skip


@dataclass
class Section:
    kind: str
    name: str
    line: int
    lines: list[tuple[int, list[str]]] = field(default_factory=list)
    defaults: Section | None = None

    def get(self, *keys: str) -> tuple[int, list[str]] | None:
        """The last line starting with ``keys`` here, else in the inherited defaults."""
        for ln, words in reversed(self.lines):
            if words[: len(keys)] == list(keys):
                return ln, words
        return self.defaults.get(*keys) if self.defaults is not None else None


def parse_haproxy(path: str) -> list[Section]:
    text = read_text(path)
    sections: list[Section] = []
    last_defaults: dict[str, Section] = {}
    current_defaults: Section | None = None
    cur: Section | None = None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] in SECTIONS:
            name = words[1] if len(words) > 1 and words[1] != "from" else ""
            cur = Section(words[0], name, no)
            if "from" in words:
                base = words[words.index("from") + 1] if words.index("from") + 1 < len(words) else ""
                if base not in last_defaults:
                    raise ParseError(path, no, f"defaults section {base!r} is not defined above")
                cur.defaults = last_defaults[base]
            elif words[0] in ("frontend", "backend", "listen", "defaults"):
                cur.defaults = current_defaults if words[0] != "defaults" else None
            if words[0] == "defaults":
                current_defaults = cur
                last_defaults[name] = cur
            sections.append(cur)
            continue
        if cur is None:
            raise ParseError(
                path, no, f"{words[0]!r} outside any section (global/defaults/frontend/backend/listen)"
            )
        cur.lines.append((no, words))
    if not any(s.kind in ("frontend", "backend", "listen") for s in sections):
        raise ParseError(path, None, "no frontend, backend or listen section: is this a haproxy.cfg?")
    return sections


def _time(path: str, ln: int, words: list[str], index: int) -> float:
    if len(words) <= index:
        raise ParseError(path, ln, f"'{' '.join(words)}' needs a time value")
    try:
        return parse_duration(words[index], "ms", what=" ".join(words[:index]))
    except UsageError as exc:
        raise ParseError(path, ln, str(exc)) from None


def _value(path: str, got: tuple[int, list[str]] | None, index: int) -> Value | None:
    if got is None:
        return None
    ln, words = got
    return Value(_time(path, ln, words, index), Source("file", path, ln, " ".join(words)))


def read_haproxy(path: str, name: str = "haproxy", backend: str | None = None) -> Hop:
    secs = parse_haproxy(path)
    fronts = [s for s in secs if s.kind in ("frontend", "listen")]
    backs = [s for s in secs if s.kind in ("backend", "listen")]
    if backend is not None:
        backs = [s for s in backs if s.name == backend]
        if not backs:
            raise UsageError(f"{path}: no backend or listen section named {backend!r}")
    vals: dict[str, Value] = {}
    notes: list[str] = []
    context: dict[str, str] = {}
    if fronts:
        f = fronts[0]
        context["frontend"] = f.name
        idle = (
            _value(path, f.get("timeout", "http-keep-alive"), 2)
            or _value(path, f.get("timeout", "http-request"), 2)
            or _value(path, f.get("timeout", "client"), 2)
        )
        if idle is None:
            notes.append(f"frontend {f.name}: no timeout client - HAProxy keeps idle clients forever")
            idle = Value(None, Source("default", text="no timeout client: infinite"))
        vals["idle"] = idle
    if backs:
        b = backs[0]
        context["backend"] = b.name
        reuse = b.get("http-reuse")
        close = b.get("option", "httpclose") or b.get("option", "http-server-close")
        if (reuse is not None and reuse[1][1:2] == ["never"]) or close is not None:
            ln, words = reuse if reuse is not None and reuse[1][1:2] == ["never"] else close  # type: ignore[misc]
            vals["pool_idle"] = Value(0.0, Source("file", path, ln, " ".join(words)))
        else:
            src = (
                Source("file", path, reuse[0], " ".join(reuse[1]))
                if reuse is not None
                else Source("default", text="http-reuse safe: idle server connections kept while needed")
            )
            vals["pool_idle"] = Value(None, src)
            if reuse is None or reuse[1][1:2] == ["safe"]:
                notes.append("http-reuse safe: a client connection's first request never reuses an idle "
                             "server connection; later requests on it do")  # fmt: skip
        retries = b.get("retries")
        if b.get("retry-on") is not None and (retries is None or retries[1][1:2] != ["0"]):
            notes.append("retry-on is set: HAProxy replays a request that met a closed idle connection")
            context["retry_on"] = "yes"
        server_to = _value(path, b.get("timeout", "server"), 2)
        if server_to is not None:
            vals["read_timeout"] = server_to
        if b.get("option", "srvtcpka") is not None or b.get("option", "tcpka") is not None:
            ka = _value(path, b.get("srvtcpka-idle"), 1)
            from tcpwise.ladder.presets import KERNEL_KEEPALIVE

            got = b.get("option", "srvtcpka") or b.get("option", "tcpka")
            assert got is not None
            vals["keepalive"] = ka or Value(
                KERNEL_KEEPALIVE.seconds, Source("file", path, got[0], " ".join(got[1]))
            )
    return Hop(name, "haproxy", "proxy", vals, notes=tuple(notes), context=context)

"""An Envoy bootstrap (YAML or JSON): the idle timeouts of its HTTP connection managers and clusters.

Envoy's timeouts FAQ: the HTTP protocol ``idle_timeout`` lives in ``common_http_protocol_options`` of the
``HttpConnectionManager`` (downstream) and of the cluster's ``HttpProtocolOptions`` (upstream, under
``typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]``; older configs put
``common_http_protocol_options`` on the cluster itself); both default to 1 hour; ``0s`` disables it.
``max_connection_duration`` is the hard limit; a route's ``timeout`` (15 s) bounds the wait for the response;
``upstream_connection_options.tcp_keepalive.keepalive_time`` turns TCP keepalive on for upstream connections.
Durations are protobuf JSON strings (``"60s"``, ``"0.5s"``) or ``{seconds, nanos}``.

Line numbers come from the YAML node marks, so a finding points at the line to change.
"""

from __future__ import annotations

from typing import Any

from tcpwise.errors import UsageError
from tcpwise.ladder.model import Hop, Source, Value
from tcpwise.ladder.parsers import ParseError, read_text
from tcpwise.ladder.presets import get_preset
from tcpwise.ladder.units import parse_duration

__all__ = ["load_yaml_with_lines", "read_envoy"]

HCM = "envoy.filters.network.http_connection_manager"
HPO = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


class Lined(dict):  # type: ignore[type-arg]
    """A mapping that remembers the line of each key (1-based)."""

    lines: dict[str, int]


# YAML aliases let a few hundred bytes stand for billions of nodes ("billion laughs"): expanding them is bounded.
# A 4 MiB file holds well under a million nodes of its own, so only alias expansion can reach this.
MAX_YAML_NODES = 1_000_000
# Envoy bootstraps nest about 15 levels deep; far deeper is damage, and would overflow Python's stack.
MAX_YAML_DEPTH = 100


def load_yaml_with_lines(path: str) -> Any:
    """YAML (or JSON) -> plain Python, every mapping a :class:`Lined` with ``.lines[key]``."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        raise UsageError("reading YAML needs PyYAML (pip install pyyaml)") from None
    text = read_text(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ParseError(
            path, mark.line + 1 if mark else None, f"not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    except RecursionError:  # PyYAML's composer recurses once per level of nesting
        raise ParseError(path, None, _too_deep()) from None
    if node is None:
        raise ParseError(path, None, "empty file")
    return _Converter(path, yaml.SafeLoader("")).conv(node, 0)


def _too_deep() -> str:
    return f"nested more than {MAX_YAML_DEPTH} levels deep: not a config the ladder reads"


class _Converter:
    """YAML nodes -> Python, counting every node produced, so aliases cannot expand past :data:`MAX_YAML_NODES`."""

    def __init__(self, path: str, loader: Any) -> None:
        self.path = path
        self.loader = loader
        self.produced = 0
        self.open: set[int] = set()  # the nodes being converted: meeting one again is an alias to itself

    def conv(self, n: Any, depth: int) -> Any:
        import yaml

        self._count(n, depth)
        if not isinstance(n, (yaml.MappingNode, yaml.SequenceNode)):
            return self.loader.construct_object(n, deep=True)
        self.open.add(id(n))
        try:
            if isinstance(n, yaml.SequenceNode):
                return [self.conv(v, depth + 1) for v in n.value]
            d = Lined()
            d.lines = {}
            for k, v in n.value:
                key = str(self.conv(k, depth + 1))
                d[key] = self.conv(v, depth + 1)
                d.lines[key] = k.start_mark.line + 1
            return d
        finally:
            self.open.discard(id(n))

    def _count(self, n: Any, depth: int) -> None:
        line = n.start_mark.line + 1
        if id(n) in self.open:
            raise ParseError(self.path, line, "an alias refers to the collection that contains it")
        if depth > MAX_YAML_DEPTH:
            raise ParseError(self.path, line, _too_deep())
        self.produced += 1
        if self.produced > MAX_YAML_NODES:
            raise ParseError(
                self.path, line, f"aliases expand to more than {MAX_YAML_NODES:,} nodes: not a config"
            )


def _duration(path: str, line: int | None, v: Any, what: str) -> float:
    if isinstance(v, dict):
        try:
            return float(v.get("seconds", 0)) + float(v.get("nanos", 0)) / 1e9
        except (TypeError, ValueError):
            raise ParseError(path, line, f"{what}: bad Duration {v!r}") from None
    if isinstance(v, str) and v.endswith("s"):
        try:
            return parse_duration(v, "s", what=what)
        except UsageError as exc:
            raise ParseError(path, line, str(exc)) from None
    raise ParseError(path, line, f'{what}: a Duration is a string like "60s", got {v!r}')


def _find(obj: Any, want: str) -> list[Any]:
    """Every mapping in ``obj`` whose ``name`` is ``want`` (filters), depth first."""
    out = []
    if isinstance(obj, dict):
        if obj.get("name") == want:
            out.append(obj)
        for v in obj.values():
            out.extend(_find(v, want))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_find(v, want))
    return out


def _opt(path: str, m: Any, key: str, what: str) -> Value | None:
    if isinstance(m, dict) and key in m:
        line = m.lines.get(key) if isinstance(m, Lined) else None
        secs = _duration(path, line, m[key], what)
        return Value(None if secs == 0 else secs, Source("file", path, line, f"{key}: {m[key]}"))
    return None


def read_envoy(path: str, name: str = "envoy", cluster: str | None = None) -> Hop:
    doc = load_yaml_with_lines(path)
    if not isinstance(doc, dict) or "static_resources" not in doc:
        raise ParseError(path, None, "no static_resources: is this an Envoy bootstrap?")
    preset = get_preset("envoy")
    vals: dict[str, Value] = {}
    context: dict[str, str] = {}
    hcms = _find(doc, HCM)
    for h in hcms:
        tc = h.get("typed_config", {})
        cho = tc.get("common_http_protocol_options", {}) if isinstance(tc, dict) else {}
        v = _opt(path, cho, "idle_timeout", "idle_timeout")
        if v is not None:
            vals["idle"] = v
        hl = _opt(path, cho, "max_connection_duration", "max_connection_duration")
        if hl is not None:
            vals["hard_limit"] = hl
    if hcms and "idle" not in vals:
        vals["idle"] = Value(3600.0, Source("default", text=preset.defaults["idle"].doc))
    clusters = (
        doc["static_resources"].get("clusters", []) if isinstance(doc["static_resources"], dict) else []
    )
    if cluster is not None:
        clusters = [c for c in clusters if isinstance(c, dict) and c.get("name") == cluster]
        if not clusters:
            raise UsageError(f"{path}: no cluster named {cluster!r}")
    for c in clusters[:1] if cluster is None else clusters:
        _cluster(path, c, vals, context)
    if not hcms and not clusters:
        raise ParseError(path, None, "no http_connection_manager and no clusters: nothing to judge")
    rt = [r for r in _walk_routes(doc) if "timeout" in r]
    if rt:
        r = rt[0]
        line = r.lines.get("timeout") if isinstance(r, Lined) else None
        secs = _duration(path, line, r["timeout"], "route timeout")
        vals["read_timeout"] = Value(
            None if secs == 0 else secs, Source("file", path, line, f"timeout: {r['timeout']}")
        )
    elif hcms:
        vals["read_timeout"] = Value(15.0, Source("default", text=preset.defaults["read_timeout"].doc))
    return Hop(name, "envoy", "proxy", vals, context=context)


def _walk_routes(obj: Any) -> list[dict[str, Any]]:
    """The ``route`` action mappings (``routes[].route``) anywhere in the document."""
    out: list[dict[str, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "route" and isinstance(v, dict) and "cluster" in v:
                out.append(v)
            else:
                out.extend(_walk_routes(v))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_walk_routes(v))
    return out


def _cluster(path: str, c: Any, vals: dict[str, Value], context: dict[str, str]) -> None:
    """The pool side of one cluster: HttpProtocolOptions idle_timeout (or the pre-v3 place), TCP keepalive."""
    preset = get_preset("envoy")
    if not isinstance(c, dict):
        return
    context["cluster"] = str(c.get("name", ""))
    teo = c.get("typed_extension_protocol_options", {})
    hpo = teo.get(HPO, {}) if isinstance(teo, dict) else {}
    cho = hpo.get("common_http_protocol_options") if isinstance(hpo, dict) else None
    if cho is None:
        cho = c.get("common_http_protocol_options", {})  # the pre-v3 place
    v = _opt(path, cho, "idle_timeout", "cluster idle_timeout")
    vals["pool_idle"] = v or Value(3600.0, Source("default", text=preset.defaults["pool_idle"].doc))
    hl = _opt(path, cho, "max_connection_duration", "cluster max_connection_duration")
    if hl is not None:
        context["upstream_max_connection_duration"] = str(hl.seconds)
    uco = c.get("upstream_connection_options", {})
    tk = uco.get("tcp_keepalive") if isinstance(uco, dict) else None
    if isinstance(tk, dict):
        t = tk.get("keepalive_time", 7200)
        line = tk.lines.get("keepalive_time") if isinstance(tk, Lined) else None
        try:
            vals["keepalive"] = Value(float(t), Source("file", path, line, f"keepalive_time: {t}"))
        except (TypeError, ValueError):
            raise ParseError(path, line, f"keepalive_time: expected seconds, got {t!r}") from None

"""Building the path: a TOML/YAML description, ``--hop KIND:key=value,...`` and real config files, in order.

A path file::

    margin = "1s"            # optional; default: 10% of the inner timeout, at least 1 s, at most half of it
    [[hop]]
    kind = "requests"        # a preset from the defaults table (tcpwise ladder --defaults)
    name = "client"
    [[hop]]
    kind = "aws-nat"
    [[hop]]
    kind = "nginx"
    config = "nginx.conf"    # read the real config (relative to this file); nginx, haproxy, envoy, gunicorn,
                             # uvicorn, hypercorn, node, go
    [[hop]]
    kind = "uvicorn"
    idle = "5s"              # any field overrides the preset and the config: idle, pool_idle, keepalive,
                             # heartbeat, max_lifetime, hard_limit, read_timeout ("never"/"off" allowed)

YAML takes the same keys (``hops:`` or ``hop:`` as a list).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.ladder.model import FIELDS, ON_EXPIRE, ROLES, Hop, Source, Value
from tcpwise.ladder.presets import KERNEL_KEEPALIVE, get_preset
from tcpwise.ladder.units import NEVER_WORDS, parse_duration

__all__ = [
    "MAX_HOPS",
    "check_hop_count",
    "LadderPath",
    "hop_from_spec",
    "hop_from_mapping",
    "load_path_file",
    "read_config",
    "apply_sysctl",
]

# A request path crosses a handful of hops; thousands are a generated or damaged file, and every rule and the
# report grow with the number of hops (the read-timeout findings with its square).
MAX_HOPS = 256

KEYS = set(FIELDS) | {"name", "kind", "role", "on_expire", "config", "upstream", "backend", "cluster"}


@dataclass
class LadderPath:
    hops: list[Hop] = field(default_factory=list)
    margin: str | None = None  # "2s" or "10%"; None: automatic
    sysctl: dict[str, Value] = field(default_factory=dict)

    def unique_names(self) -> None:
        seen: dict[str, int] = {}
        out = []
        for h in self.hops:
            n = seen.get(h.name, 0) + 1
            seen[h.name] = n
            out.append(h if n == 1 else replace(h, name=f"{h.name}-{n}"))
        self.hops = out


def check_hop_count(n: int, where: str) -> None:
    if n > MAX_HOPS:
        raise UsageError(f"{where}: {n} hops, more than the {MAX_HOPS} a path may have")


def _preset_hop(kind: str, name: str | None, role: str | None) -> Hop:
    p = get_preset(kind)
    vals = {f: Value(d.seconds, Source("default", text=d.doc)) for f, d in p.defaults.items()}
    return Hop(
        name or kind, kind, role or p.role, vals, on_expire=p.on_expire, notes=(p.note,) if p.note else ()
    )


def read_config(kind: str, path: str, name: str | None, opts: dict[str, str]) -> Hop:
    """A hop read from a real config file of ``kind``."""
    from tcpwise.ladder.parsers.apps import APP_READERS
    from tcpwise.ladder.parsers.envoy import read_envoy
    from tcpwise.ladder.parsers.haproxy import read_haproxy
    from tcpwise.ladder.parsers.nginx import read_nginx

    readers: dict[str, Callable[..., Hop]] = {
        "nginx": read_nginx,
        "haproxy": read_haproxy,
        "envoy": read_envoy,
    }
    readers.update(APP_READERS)
    reader = readers.get(kind)
    if reader is None:
        raise UsageError(f"no config reader for kind {kind!r}; readers: {', '.join(readers)}")
    extra = {}
    for key, arg in (("upstream", "upstream"), ("backend", "backend"), ("cluster", "cluster")):
        if key in opts:
            if (
                kind not in ("nginx", "haproxy", "envoy")
                or {"nginx": "upstream", "haproxy": "backend", "envoy": "cluster"}[kind] != key
            ):
                raise UsageError(
                    f"{key}= only applies to {'nginx' if key == 'upstream' else 'haproxy' if key == 'backend' else 'envoy'}"
                )
            extra[arg] = opts[key]
    hop = reader(path, name or kind, **extra)
    # Fields the file does not set come from the preset's defaults (same kind family).
    preset_kind = hop.kind if hop.kind in _kinds() else kind
    base = _preset_hop(preset_kind, hop.name, hop.role)
    merged = dict(base.values)
    merged.update(hop.values)
    notes = tuple(dict.fromkeys(hop.notes + base.notes))
    return replace(hop, values=merged, notes=notes, on_expire=base.on_expire)


def _kinds() -> set[str]:
    from tcpwise.ladder.presets import PRESETS

    return set(PRESETS)


def _value(key: str, raw: Any, src: Source) -> Value | None:
    """A field override; ``None`` means "remove" (keepalive=off)."""
    text = str(raw).strip().lower() if not isinstance(raw, (int, float)) or isinstance(raw, bool) else raw
    if key == "keepalive" and text in ("on", "true", True):
        return Value(KERNEL_KEEPALIVE.seconds, replace(src, text="SO_KEEPALIVE on, kernel default time"))
    if key in ("keepalive", "heartbeat") and text in ("off", "false", "no", False):
        return None
    if isinstance(text, str) and text in NEVER_WORDS:
        return Value(None, src)
    return Value(parse_duration(raw, "s", what=key), src)


def hop_from_mapping(m: dict[str, Any], src: Source, base_dir: str = ".") -> Hop:
    """One hop from a TOML/YAML table or a parsed ``--hop`` spec."""
    unknown = set(m) - KEYS
    if unknown:
        raise UsageError(
            f"hop: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(KEYS))}"
        )
    kind = str(m.get("kind", "")).strip()
    if not kind:
        raise UsageError("hop: 'kind' is required (tcpwise ladder --defaults lists the kinds)")
    name = str(m["name"]) if "name" in m else None
    role = str(m["role"]) if "role" in m else None
    if role is not None and role not in ROLES:
        raise UsageError(f"hop {name or kind}: role must be one of {', '.join(ROLES)}")
    if "config" in m:
        cfg = str(m["config"])
        if not os.path.isabs(cfg):
            cfg = os.path.join(base_dir, cfg)
        hop = read_config(
            kind, cfg, name, {k: str(m[k]) for k in ("upstream", "backend", "cluster") if k in m}
        )
        if role is not None:
            hop = replace(hop, role=role)
    else:
        if any(k in m for k in ("upstream", "backend", "cluster")):
            raise UsageError(f"hop {name or kind}: upstream/backend/cluster need config=FILE")
        hop = _preset_hop(kind, name, role)
    vals = dict(hop.values)
    for key in FIELDS:
        if key in m:
            v = _value(key, m[key], src)
            if v is None:
                vals.pop(key, None)
            else:
                vals[key] = v
    on_expire = str(m.get("on_expire", hop.on_expire))
    if on_expire not in ON_EXPIRE:
        raise UsageError(f"hop {hop.name}: on_expire must be drop or rst")
    return replace(hop, values=vals, on_expire=on_expire)


def hop_from_spec(spec: str) -> Hop:
    """``KIND[:key=value,key=value]`` (the ``--hop`` option)."""
    kind, _, rest = spec.partition(":")
    m: dict[str, Any] = {"kind": kind.strip()}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        if "=" not in item:
            raise UsageError(f"--hop {spec}: expected key=value, got {item!r}")
        k, v = item.split("=", 1)
        m[k.strip()] = v.strip()
    return hop_from_mapping(m, Source("flag", text=f"--hop {spec}"))


def load_path_file(path: str) -> LadderPath:
    from tcpwise.ladder.parsers import ParseError, read_text

    text = read_text(path)
    low = path.lower()
    data: Any
    if low.endswith((".yaml", ".yml", ".json")):
        from tcpwise.ladder.parsers.envoy import load_yaml_with_lines

        data = load_yaml_with_lines(path)
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ParseError(path, None, f"not valid TOML: {exc}") from None
        except RecursionError:  # tomllib recurses once per level of nested arrays and inline tables
            raise ParseError(path, None, "nested too deep: not a path file") from None
    if not isinstance(data, dict):
        raise ParseError(path, None, "expected a table with a list of hops ([[hop]] in TOML, hops: in YAML)")
    unknown = set(data) - {"hop", "hops", "margin"}
    if unknown:
        raise ParseError(
            path, None, f"unknown key(s) {', '.join(sorted(unknown))}; valid: hop (or hops), margin"
        )
    hops_raw = data.get("hop", data.get("hops"))
    if not isinstance(hops_raw, list) or not hops_raw:
        raise ParseError(path, None, "no hops: add [[hop]] tables (TOML) or a hops: list (YAML)")
    check_hop_count(len(hops_raw), path)  # before any hop reads its config file
    base = os.path.dirname(os.path.abspath(path))
    lp = LadderPath(margin=str(data["margin"]) if "margin" in data else None)
    for i, h in enumerate(hops_raw, 1):
        if not isinstance(h, dict):
            raise ParseError(path, None, f"hop {i}: expected a table")
        line = data.lines.get("hops", data.lines.get("hop")) if hasattr(data, "lines") else None
        try:
            lp.hops.append(hop_from_mapping(dict(h), Source("path", path, line, f"hop {i}"), base))
        except UsageError as exc:
            if str(exc).startswith(path):
                raise
            raise ParseError(path, None, f"hop {i}: {exc}") from None
    return lp


def apply_sysctl(hops: list[Hop], sysctl: dict[str, Value]) -> list[Hop]:
    """Kernel keepalive time for hops whose SO_KEEPALIVE uses the kernel's time; conntrack's cutoff."""
    ka = sysctl.get("net.ipv4.tcp_keepalive_time")
    ct = sysctl.get("net.netfilter.nf_conntrack_tcp_timeout_established")
    out = []
    for h in hops:
        vals = dict(h.values)
        k = vals.get("keepalive")
        if ka is not None and k is not None and k.source.text.endswith("kernel default time"):
            vals["keepalive"] = ka
        if ct is not None and h.kind == "conntrack" and vals.get("idle", ct).source.kind == "default":
            vals["idle"] = ct
        out.append(replace(h, values=vals))
    return out

"""The findings: where the ladder of idle timeouts is in the wrong order.

The rule behind all of them: on every connection, **the side that sends requests must give up an idle connection
first, with a margin** — otherwise it may send a request at the moment the other side (or a box in between)
closes or forgets the connection, and the request fails. The margin covers a round trip plus timer slack: a
request sent at idle time ``t`` reaches the server at ``t + RTT/2``; the server's close (FIN) reaches the client
``RTT/2`` after it left (docs/ladder.md has the race diagram).

=========================  ========  ==================================================================================
id                         severity  when
=========================  ========  ==================================================================================
idle-inversion             crit      a hop keeps idle connections to the next hop >= as long as the next hop keeps them
idle-margin                warn      it gives up first, but by less than the margin
middlebox-cutoff           crit      a connection through a NAT/LB/firewall may stay idle past its cutoff, no keepalive
keepalive-too-slow         crit      TCP keepalive is on but its first probe comes after the middlebox's cutoff
heartbeat-too-slow         crit      an application heartbeat is slower than the idle timeout it should beat
lifetime-exceeds-limit     crit      a pool's max lifetime is >= the server's hard connection limit
read-timeout-exceeds-idle  warn      a proxy waits longer for a response than a box in front of it tolerates silence
=========================  ========  ==================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.ladder.model import Hop, Value
from tcpwise.ladder.presets import PRESETS, SYSCTL_KEEPALIVE, get_preset
from tcpwise.ladder.units import format_duration, parse_duration

__all__ = ["Finding", "Link", "links", "analyze", "margin_for", "SEVERITIES", "RULES"]

SEVERITIES = ("info", "warn", "crit")
RULES = (
    "idle-inversion",
    "idle-margin",
    "middlebox-cutoff",
    "keepalive-too-slow",
    "heartbeat-too-slow",
    "lifetime-exceeds-limit",
    "read-timeout-exceeds-idle",
)
INF = math.inf


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    severity: str
    hops: tuple[str, str]
    message: str
    fix: str
    consequence: str = ""
    setting: dict[str, Any] = field(default_factory=dict)  # {"hop", "where", "text"}: the exact line to write
    reproduce: str = ""  # a tcpwise command that shows the failure in the model

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES or self.id not in RULES:
            raise ValueError(f"bad finding {self.id}/{self.severity}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "hops": list(self.hops),
            "message": self.message,
            "fix": self.fix,
            "consequence": self.consequence,
            "setting": self.setting,
            "reproduce": self.reproduce,
        }


@dataclass(frozen=True, slots=True)
class Link:
    """One TCP connection of the path: ``client`` sends requests to ``server``; ``boxes`` sit in between."""

    client: Hop
    server: Hop
    boxes: tuple[Hop, ...]


def links(hops: list[Hop]) -> list[Link]:
    ends = [i for i, h in enumerate(hops) if not h.is_middlebox]
    out = []
    for a, b in zip(ends, ends[1:], strict=False):
        out.append(Link(hops[a], hops[b], tuple(hops[a + 1 : b])))
    return out


def margin_for(inner: float, spec: str | None) -> float:
    """The safety margin below ``inner`` seconds: ``spec`` is ``"2s"``/``"500ms"``/``"10%"``; default: 10 %, at
    least 1 s, at most half of ``inner`` (a 1 s keep-alive leaves 500 ms)."""
    if spec is None or spec == "auto":
        return min(max(1.0, 0.1 * inner), 0.5 * inner)
    s = spec.strip()
    if s.endswith("%"):
        try:
            pct = float(s[:-1])
        except ValueError:
            raise UsageError(f"--margin {spec}: expected a duration (2s) or a percentage (10%)") from None
        if not 0 <= pct < 100:
            raise UsageError(f"--margin {spec}: a percentage in 0..100")
        return inner * pct / 100
    return parse_duration(s, "s", what="--margin")


def _nice_down(x: float) -> float:
    """A value a person would write, not above ``x``: whole seconds from 2 s, else 100 ms steps."""
    if x >= 2:
        return float(math.floor(x + 1e-9))
    return max(0.1, math.floor(x * 10 + 1e-9) / 10)


def _nice_up(x: float) -> float:
    return float(math.ceil(x - 1e-9)) if x >= 2 else math.ceil(x * 10 - 1e-9) / 10


def _fmt(s: float | None) -> str:
    return "never" if s is None or s == INF else format_duration(s)


def _setting(hop: Hop, fname: str, seconds: float, down: bool) -> dict[str, Any]:
    """The exact line to write for ``hop.fname = seconds`` in the hop's own syntax, and where."""
    p = PRESETS.get(hop.kind) or PRESETS.get({"go": "go-server"}.get(hop.kind, "generic"))
    fmt = p.settings.get(fname) if p else None
    if hop.kind == "go" and fname == "pool_idle":
        fmt = get_preset("go-client").settings["pool_idle"]
    if fname == "keepalive" and fmt is None:
        fmt = SYSCTL_KEEPALIVE
    text = fmt(seconds, down) if fmt else f"{fname} = {format_duration(seconds)}"
    v = hop.get(fname)
    where = v.source.where() if v is not None and v.source.kind in ("file", "path") else ""
    if hop.kind == "nginx" and fname == "pool_idle" and "upstream" in hop.context:
        text = text.replace("upstream {...}", f"upstream {hop.context['upstream']} {{...}}")
    return {"hop": hop.name, "field": fname, "value": seconds, "where": where, "text": text}


def _sim_cmd(client: float, server: float) -> str:
    c = "inf" if client == INF else f"{client:g}"
    return f"tcpwise sim keepalive-race --set client_idle={c} --set server_idle={server:g}"


def _consequence(link: Link) -> str:
    c, s = link.client, link.server
    if c.role == "proxy":
        head = f"{c.name} answers 502 (nginx: 'upstream prematurely closed connection'; Envoy: 503 UC)"
    else:
        head = (
            f"{c.name}'s request fails: 'Connection reset by peer' / RemoteDisconnected (requests), "
            "ServerDisconnectedError (aiohttp)"
        )
    return (
        f"now and then a request leaves {c.name} on a connection {s.name} has just closed: {head}; "
        "idempotent requests are often retried and hide it, POSTs are not"
    )


def _idle_rules(link: Link, margin_spec: str | None) -> list[Finding]:
    c, s = link.client, link.server
    cp, si = c.seconds("pool_idle"), s.seconds("idle")
    if cp is None or si is None or cp == 0 or si == 0 or si == INF:
        return []
    m = margin_for(si, margin_spec)
    if cp < si - m - 1e-9:
        return []
    crit = cp >= si - 1e-9
    target = _nice_down(si - m)
    lower = _setting(c, "pool_idle", target, True)
    raise_to = None if cp == INF else _nice_up(cp + margin_for(cp, margin_spec))
    cv, sv = c.get("pool_idle"), s.get("idle")
    assert cv is not None and sv is not None
    keeps = "never gives up idle connections" if cp == INF else f"keeps idle connections for {_fmt(cp)}"
    msg = (
        f"{c.name} {keeps} to {s.name} ({cv.source.where()}) but {s.name} closes "
        f"them after {_fmt(si)} ({sv.source.where()})"
        + ("" if crit else f": it gives up first by only {_fmt(si - cp)}, less than the {_fmt(m)} margin")
    )
    managed = get_preset(c.kind).managed if c.kind in PRESETS else False
    if managed and raise_to is not None:
        primary = _setting(s, "idle", raise_to, False)
        fix = f"raise {s.name}'s idle timeout to {_fmt(raise_to)}: {primary['text']}"
        fix += f" - or lower {c.name}'s: {lower['text']}"
    else:
        primary = lower
        fix = f"make {c.name} give up first, at {_fmt(target)}: {lower['text']}"
        if raise_to is not None:
            fix += (
                f" - or raise {s.name}'s to {_fmt(raise_to)}: {_setting(s, 'idle', raise_to, False)['text']}"
            )
    return [
        Finding(
            "idle-inversion" if crit else "idle-margin",
            "crit" if crit else "warn",
            (c.name, s.name),
            msg,
            fix,
            _consequence(link),
            primary,
            _sim_cmd(cp, si),
        )
    ]


def _box_rules(link: Link, margin_spec: str | None) -> list[Finding]:
    out = []
    c, s = link.client, link.server
    idle_life = min(x for x in (c.seconds("pool_idle"), s.seconds("idle"), INF) if x is not None)
    probes = [
        x for x in (c.seconds("keepalive"), s.seconds("keepalive"), c.seconds("heartbeat")) if x is not None
    ]
    for box in link.boxes:
        bi = box.seconds("idle")
        if bi is None or bi == INF:
            continue
        m = margin_for(bi, margin_spec)
        if idle_life < bi - m:
            continue
        fastest = min(probes, default=None)
        if fastest is not None and fastest < bi - m:
            continue
        if box.on_expire == "rst":
            cons = f"{box.name} answers the next packet with a RST: the request fails at once with ECONNRESET"
        else:
            cons = (
                f"{box.name} drops the next packets silently: the request hangs, retransmitted into the void, until "
                "the client's own timeout (or ~15 min of tcp_retries2) - both ends stay half-open"
            )
        target = _nice_down(bi - m)
        ka = _setting(c, "keepalive", _nice_down(min(bi - m, 300.0)), True)
        lower = _setting(c, "pool_idle", target, True)
        if fastest is not None:
            fid = "keepalive-too-slow"
            msg = (
                f"TCP keepalive/heartbeat on {c.name}->{s.name} starts after {_fmt(fastest)} of silence, but {box.name} "
                f"forgets an idle flow after {_fmt(bi)}"
            )
            fix = f"probe sooner than {_fmt(bi)}: {ka['text']} - or make {c.name} give up at {_fmt(target)}: {lower['text']}"
            primary = ka
        else:
            fid = "middlebox-cutoff"
            msg = (
                f"a connection {c.name}->{s.name} may stay idle {_fmt(idle_life)} but {box.name} forgets it after "
                f"{_fmt(bi)} and nothing keeps it fresh"
            )
            fix = f"make {c.name} give up at {_fmt(target)}: {lower['text']} - or keep it fresh: {ka['text']}"
            primary = lower
        repro = (
            f"tcpwise sim middlebox-idle-timeout --set idle_timeout={bi:g} --set send_at={bi + 50:g} "
            f"--set on_expired={box.on_expire}"
        )
        out.append(Finding(fid, "crit", (c.name, box.name), msg, fix, cons, primary, repro))
    return out


def _heartbeat_rules(link: Link) -> list[Finding]:
    c, s = link.client, link.server
    hb = c.seconds("heartbeat")
    if hb is None:
        return []
    out = []
    for target in (s, *link.boxes):
        ti = target.seconds("idle")
        if ti is None or ti == INF or ti == 0 or hb < ti:
            continue
        out.append(
            Finding(
                "heartbeat-too-slow",
                "crit",
                (c.name, target.name),
                f"{c.name}'s heartbeat every {_fmt(hb)} is not faster than {target.name}'s {_fmt(ti)} idle timeout",
                f"heartbeat more often than every {_fmt(_nice_down(ti / 2))} (at most half the idle timeout)",
                f"{target.name} closes or forgets the connection between two heartbeats; the next one fails",
                {
                    "hop": c.name,
                    "field": "heartbeat",
                    "value": _nice_down(ti / 2),
                    "where": "",
                    "text": f"heartbeat interval {_fmt(_nice_down(ti / 2))}",
                },
                f"tcpwise sim heartbeat-asymmetry --set interval={hb:g} --set idle_timeout={ti:g}",
            )
        )
    return out


def _lifetime_rules(link: Link, margin_spec: str | None) -> list[Finding]:
    c, s = link.client, link.server
    ml, hl = c.seconds("max_lifetime"), s.seconds("hard_limit")
    if ml is None or hl is None or hl == INF or ml < hl - margin_for(hl, margin_spec):
        return []
    target = _nice_down(hl - margin_for(hl, margin_spec))
    st = _setting(c, "max_lifetime", target, True)
    return [
        Finding(
            "lifetime-exceeds-limit",
            "crit",
            (c.name, s.name),
            f"{c.name} keeps a connection up to {_fmt(ml)} but {s.name} ends every connection after {_fmt(hl)}",
            f"retire connections before {s.name} does: {st['text']}",
            f"{s.name} closes connections {c.name} still hands out: a request races the close",
            st,
        )
    ]


def _cuts_silence(h: Hop) -> bool:
    """A hop whose idle cutoff also cuts a slow response: a middlebox, or a managed product (a cloud LB)."""
    return h.is_middlebox or (h.kind in PRESETS and get_preset(h.kind).managed)


def _read_rules(hops: list[Hop]) -> list[Finding]:
    out = []
    # The hops in front that cut a silent connection, collected on the way in: each hop is looked at once, not
    # once per hop behind it (which made a long path quadratic).
    cutters: list[tuple[Hop, float]] = []
    for h in hops:
        rt = h.seconds("read_timeout")
        if rt is not None and rt != INF and not h.is_middlebox:
            out += [_read_finding(outer, cut, h, rt) for outer, cut in cutters if rt > cut]
        idle = h.seconds("idle")
        if _cuts_silence(h) and idle is not None and idle != INF:
            cutters.append((h, idle))
    return out


def _read_finding(outer: Hop, oi: float, h: Hop, rt: float) -> Finding:
    st = _setting(h, "read_timeout", _nice_down(oi - margin_for(oi, None)), True)
    return Finding(
        "read-timeout-exceeds-idle",
        "warn",
        (outer.name, h.name),
        f"{h.name} waits up to {_fmt(rt)} for a response, but {outer.name} cuts a silent connection after "
        f"{_fmt(oi)}",
        f"answer (or fail) within {outer.name}'s idle time: {st['text']} - or send bytes while waiting",
        f"a slow response is cut by {outer.name} (504 / reset) while {h.name} still waits for it",
        st,
    )


def analyze(hops: list[Hop], margin: str | None = None) -> list[Finding]:
    """Every finding on the path, most severe first (then in path order)."""
    if len(hops) < 2:
        raise UsageError("a ladder needs at least two hops (e.g. --hop nginx --hop uvicorn)")
    margin_for(10.0, margin)  # validate the spec once
    found: list[Finding] = []
    for link in links(hops):
        found += _idle_rules(link, margin)
        found += _box_rules(link, margin)
        found += _heartbeat_rules(link)
        found += _lifetime_rules(link, margin)
    found += _read_rules(hops)
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    return sorted(found, key=lambda f: rank[f.severity])


def hop_value(h: Hop, name: str) -> Value | None:  # pragma: no cover - convenience for callers
    return h.get(name)

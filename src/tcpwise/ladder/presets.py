"""The defaults table: what each pool, proxy, server, load balancer and NAT does when nobody configured it.

Every value names its source (the product's own documentation or source) — docs/ladder.md shows this table, and
a test keeps the two identical. Each preset also knows how to *write* a setting in the product's own syntax, so a
finding can say ``keepalive_timeout 4s;`` to an nginx user and ``--timeout-keep-alive 65`` to a uvicorn user.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from tcpwise.errors import UsageError
from tcpwise.ladder.units import format_duration

__all__ = ["Default", "Preset", "PRESETS", "get_preset", "defaults_markdown", "KERNEL_KEEPALIVE"]

NEVER = None


@dataclass(frozen=True, slots=True)
class Default:
    seconds: float | None  # None: never gives up
    doc: str  # what the default is called there
    url: str  # where it is documented


Formatter = Callable[[float, bool], str]  # (seconds, round_down) -> the setting in the product's syntax


def _round(seconds: float, down: bool, unit: float = 1.0, minimum: float = 1.0) -> int:
    n = seconds / unit
    v = math.floor(n + 1e-9) if down else math.ceil(n - 1e-9)
    return int(max(minimum, v))


def _dur(seconds: float, down: bool) -> str:
    """nginx/HAProxy/Envoy style: whole seconds when the value allows, else milliseconds."""
    if seconds >= 10:
        return format_duration(_round(seconds, down))
    ms = _round(seconds, down, 0.001)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"  # nginx and HAProxy take no fractions


def _tmpl(template: str, style: str = "dur") -> Formatter:
    def fmt(seconds: float, down: bool) -> str:
        if style == "int":
            v: object = _round(seconds, down)
        elif style == "ms":
            v = _round(seconds, down, 0.001)
        elif style == "min":
            v = _round(seconds, down, 60.0)
        elif style == "float":
            v = f"{_round(seconds, down, 0.1, 0.1) / 10:g}"
        elif style == "go":
            v = (
                f"{_round(seconds, down)} * time.Second"
                if seconds >= 10
                else f"{_round(seconds, down, 0.001)} * time.Millisecond"
            )
        else:
            v = _dur(seconds, down)
        return template.format(v=v)

    return fmt


@dataclass(frozen=True, slots=True)
class Preset:
    kind: str
    role: str  # client | proxy | server | middlebox
    title: str
    defaults: dict[str, Default] = field(default_factory=dict)
    settings: dict[str, Formatter] = field(default_factory=dict)
    on_expire: str = "drop"
    note: str = ""
    managed: bool = False  # a cloud product: the fix usually goes to the hop next to it


NGINX_CORE = "https://nginx.org/en/docs/http/ngx_http_core_module.html"
NGINX_UP = "https://nginx.org/en/docs/http/ngx_http_upstream_module.html#keepalive_timeout"
ENVOY_FAQ = "https://www.envoyproxy.io/docs/envoy/latest/faq/configuration/timeouts"
GO_HTTP = "https://pkg.go.dev/net/http"
KERNEL_IP_SYSCTL = "https://docs.kernel.org/networking/ip-sysctl.html"

# What the kernel does when SO_KEEPALIVE is on and the application set no time of its own.
KERNEL_KEEPALIVE = Default(7200.0, "net.ipv4.tcp_keepalive_time = 7200", KERNEL_IP_SYSCTL)

_P = [
    # ---- client pools ---------------------------------------------------------------------------------------------
    Preset(
        "requests",
        "client",
        "Python requests (urllib3 pool)",
        {
            "pool_idle": Default(
                NEVER, "urllib3 has no idle expiry", "https://github.com/urllib3/urllib3/issues/2498"
            )
        },
        {
            "pool_idle": _tmpl(
                "urllib3 has no idle timeout: Retry(total=2, allowed_methods=None) on the HTTPAdapter, "
                "or session.close() after {v} idle"
            )
        },  # fmt: skip
        note="checks the socket before reuse (sees a FIN that already arrived), never expires it",
    ),
    Preset(
        "urllib3",
        "client",
        "urllib3 PoolManager",
        {"pool_idle": Default(NEVER, "no idle expiry", "https://github.com/urllib3/urllib3/issues/3184")},
        {
            "pool_idle": _tmpl(
                "urllib3 has no idle timeout: PoolManager(retries=Retry(total=2, allowed_methods=None)), "
                "or pool.clear() after {v} idle"
            )
        },  # fmt: skip
    ),
    Preset(
        "aiohttp",
        "client",
        "aiohttp ClientSession (TCPConnector)",
        {
            "pool_idle": Default(
                15.0,
                "TCPConnector(keepalive_timeout=15.0)",
                "https://docs.aiohttp.org/en/stable/client_reference.html#aiohttp.TCPConnector",
            )
        },  # fmt: skip
        {"pool_idle": _tmpl("aiohttp.TCPConnector(keepalive_timeout={v})", "float")},
    ),
    Preset(
        "httpx",
        "client",
        "httpx Client",
        {
            "pool_idle": Default(
                5.0,
                "httpx.Limits(keepalive_expiry=5)",
                "https://www.python-httpx.org/advanced/resource-limits/",
            )
        },  # fmt: skip
        {"pool_idle": _tmpl("httpx.Limits(keepalive_expiry={v})", "float")},
    ),
    Preset(
        "go-client",
        "client",
        "Go http.Client (DefaultTransport)",
        {
            "pool_idle": Default(
                90.0, "DefaultTransport IdleConnTimeout: 90 * time.Second", GO_HTTP + "#DefaultTransport"
            ),
            "keepalive": Default(
                30.0, "DefaultTransport net.Dialer KeepAlive: 30 * time.Second", GO_HTTP + "#DefaultTransport"
            ),
        },  # fmt: skip
        {
            "pool_idle": _tmpl("IdleConnTimeout: {v},  // http.Transport", "go"),
            "keepalive": _tmpl("KeepAlive: {v},  // net.Dialer", "go"),
        },  # fmt: skip
    ),
    Preset(
        "hikaricp",
        "client",
        "HikariCP (JDBC pool)",
        {
            "pool_idle": Default(
                600.0,
                "idleTimeout=600000 (ms)",
                "https://github.com/brettwooldridge/HikariCP#frequently-used",
            ),
            "max_lifetime": Default(
                1800.0,
                "maxLifetime=1800000 (ms)",
                "https://github.com/brettwooldridge/HikariCP#frequently-used",
            ),
        },  # fmt: skip
        {"pool_idle": _tmpl("idleTimeout={v}", "ms"), "max_lifetime": _tmpl("maxLifetime={v}", "ms")},
        note="idleTimeout applies only above minimumIdle; maxLifetime should be shorter than any limit on the path",
    ),
    # ---- proxies (a server side and a pool side) -----------------------------------------------------------------
    Preset(
        "nginx",
        "proxy",
        "nginx",
        {
            "idle": Default(75.0, "keepalive_timeout 75s", NGINX_CORE + "#keepalive_timeout"),
            "pool_idle": Default(60.0, "upstream keepalive_timeout 60s (with `keepalive N;`)", NGINX_UP),
            "hard_limit": Default(3600.0, "keepalive_time 1h", NGINX_CORE + "#keepalive_time"),
            "read_timeout": Default(
                60.0,
                "proxy_read_timeout 60s",
                "https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_read_timeout",
            ),
        },  # fmt: skip
        {
            "idle": _tmpl("keepalive_timeout {v};"),
            "pool_idle": _tmpl("keepalive_timeout {v};  # in upstream {{...}}, next to keepalive N;"),
            "hard_limit": _tmpl("keepalive_time {v};"),
            "read_timeout": _tmpl("proxy_read_timeout {v};"),
        },
        note="without `keepalive N;` in the upstream block nginx opens a new upstream connection per request",
    ),
    Preset(
        "haproxy",
        "proxy",
        "HAProxy",
        {
            "pool_idle": Default(
                NEVER,
                "idle server connections kept while needed (pool-purge-delay trims surplus)",
                "https://docs.haproxy.org/2.6/configuration.html#5.2-pool-purge-delay",
            )
        },  # fmt: skip
        {
            "idle": _tmpl("timeout http-keep-alive {v}"),
            "pool_idle": _tmpl(
                "HAProxy has no idle timeout for server connections: retry-on conn-failure "
                "empty-response + retries 1 (replays POSTs too), or http-reuse never"
            ),  # fmt: skip
            "read_timeout": _tmpl("timeout server {v}"),
            "keepalive": _tmpl("option srvtcpka + srvtcpka-idle {v}"),
        },
        note="timeout client/server have no default: HAProxy warns and waits forever",
    ),
    Preset(
        "envoy",
        "proxy",
        "Envoy",
        {
            "idle": Default(
                3600.0, "HttpConnectionManager common_http_protocol_options.idle_timeout 1h", ENVOY_FAQ
            ),
            "pool_idle": Default(
                3600.0, "cluster HttpProtocolOptions common_http_protocol_options.idle_timeout 1h", ENVOY_FAQ
            ),
            "read_timeout": Default(15.0, "route timeout 15s", ENVOY_FAQ),
        },  # fmt: skip
        {
            "idle": _tmpl("common_http_protocol_options: {{idle_timeout: {v}}}  # HttpConnectionManager"),
            "pool_idle": _tmpl(
                "common_http_protocol_options: {{idle_timeout: {v}}}  # cluster "
                "typed_extension_protocol_options envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
            ),
            "hard_limit": _tmpl("common_http_protocol_options: {{max_connection_duration: {v}}}"),
            "read_timeout": _tmpl("timeout: {v}  # route"),
            "keepalive": _tmpl(
                "upstream_connection_options: {{tcp_keepalive: {{keepalive_time: {v}}}}}", "int"
            ),
        },  # fmt: skip
    ),
    Preset(
        "aws-alb",
        "proxy",
        "AWS Application Load Balancer",
        {
            "idle": Default(
                60.0,
                "idle_timeout.timeout_seconds 60 (client and target connections)",
                "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout",
            ),
            "pool_idle": Default(
                60.0,
                "idle_timeout.timeout_seconds 60 (client and target connections)",
                "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout",
            ),
        },  # fmt: skip
        {
            "idle": _tmpl(
                "aws elbv2 modify-load-balancer-attributes --attributes Key=idle_timeout.timeout_seconds,Value={v}",
                "int",
            ),
            "pool_idle": _tmpl(
                "aws elbv2 modify-load-balancer-attributes --attributes Key=idle_timeout.timeout_seconds,Value={v}",
                "int",
            ),
        },  # fmt: skip
        managed=True,
        note="AWS: configure the target's keep-alive timeout larger than the load balancer's idle timeout",
    ),
    Preset(
        "gcp-alb",
        "proxy",
        "Google Cloud external Application Load Balancer",
        {
            "idle": Default(
                610.0,
                "client HTTP keepalive timeout 610 s",
                "https://cloud.google.com/load-balancing/docs/https/request-distribution",
            ),
            "pool_idle": Default(
                600.0,
                "backend keepalive timeout 600 s (fixed)",
                "https://cloud.google.com/load-balancing/docs/https/request-distribution",
            ),
        },  # fmt: skip
        {
            "idle": _tmpl(
                "gcloud compute target-http-proxies update PROXY --http-keep-alive-timeout-sec={v}", "int"
            )
        },
        managed=True,
        note="the backend keepalive (600 s) cannot be changed: backends must keep idle connections longer",
    ),
    # ---- app servers -----------------------------------------------------------------------------------------------
    Preset(
        "gunicorn",
        "server",
        "gunicorn",
        {
            "idle": Default(
                2.0, "keepalive = 2", "https://docs.gunicorn.org/en/stable/settings.html#keepalive"
            )
        },
        {"idle": _tmpl("keepalive = {v}  # gunicorn.conf.py (or --keep-alive {v})", "int")},
        note="the default sync worker does not keep connections alive at all",
    ),
    Preset(
        "uvicorn",
        "server",
        "uvicorn",
        {"idle": Default(5.0, "--timeout-keep-alive 5", "https://www.uvicorn.org/settings/#timeouts")},
        {"idle": _tmpl("--timeout-keep-alive {v}  (uvicorn.run(..., timeout_keep_alive={v}))", "int")},
    ),
    Preset(
        "hypercorn",
        "server",
        "Hypercorn",
        {
            "idle": Default(
                5.0,
                "keep_alive_timeout = 5",
                "https://hypercorn.readthedocs.io/en/latest/how_to_guides/configuring.html",
            )
        },  # fmt: skip
        {"idle": _tmpl("keep_alive_timeout = {v}  # hypercorn.toml", "float")},
    ),
    Preset(
        "node",
        "server",
        "Node.js http.Server",
        {
            "idle": Default(
                5.0,
                "server.keepAliveTimeout = 5000 (ms; 65000 from Node 26, nodejs/node#62782)",
                "https://nodejs.org/api/http.html#serverkeepalivetimeout",
            )
        },  # fmt: skip
        {"idle": _tmpl("server.keepAliveTimeout = {v};  // and server.headersTimeout above it", "ms")},
    ),
    Preset(
        "go-server",
        "server",
        "Go http.Server",
        {
            "idle": Default(NEVER, "IdleTimeout 0 and ReadTimeout 0: no timeout", GO_HTTP + "#Server"),
            "keepalive": Default(
                15.0, "net.ListenConfig KeepAlive default 15 s", "https://pkg.go.dev/net#ListenConfig"
            ),
        },  # fmt: skip
        {"idle": _tmpl("IdleTimeout: {v},  // http.Server", "go")},
    ),
    Preset(
        "mysql",
        "server",
        "MySQL server",
        {
            "idle": Default(
                28800.0,
                "wait_timeout = 28800",
                "https://dev.mysql.com/doc/refman/8.0/en/server-system-variables.html#sysvar_wait_timeout",
            )
        },  # fmt: skip
        {"idle": _tmpl("SET GLOBAL wait_timeout = {v};", "int")},
    ),
    # ---- middleboxes -----------------------------------------------------------------------------------------------
    Preset(
        "aws-nat",
        "middlebox",
        "AWS NAT gateway",
        {
            "idle": Default(
                350.0,
                "350 s, fixed; answers a late packet with RST",
                "https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html",
            )
        },  # fmt: skip
        {},
        on_expire="rst",
        managed=True,
    ),
    Preset(
        "aws-nlb",
        "middlebox",
        "AWS Network Load Balancer",
        {
            "idle": Default(
                350.0,
                "tcp.idle_timeout.seconds 350 (60-6000)",
                "https://docs.aws.amazon.com/elasticloadbalancing/latest/network/update-idle-timeout.html",
            )
        },  # fmt: skip
        {
            "idle": _tmpl(
                "aws elbv2 modify-listener-attributes --attributes Key=tcp.idle_timeout.seconds,Value={v}",
                "int",
            )
        },
        on_expire="rst",
        managed=True,
    ),
    Preset(
        "gcp-nat",
        "middlebox",
        "Google Cloud NAT",
        {
            "idle": Default(
                1200.0,
                "tcpEstablishedIdleTimeoutSec 1200",
                "https://cloud.google.com/nat/docs/tune-nat-configuration",
            )
        },  # fmt: skip
        {
            "idle": _tmpl(
                "gcloud compute routers nats update NAT --router=ROUTER --tcp-established-idle-timeout={v}s",
                "int",
            )
        },
        managed=True,
    ),
    Preset(
        "azure-lb",
        "middlebox",
        "Azure Load Balancer",
        {
            "idle": Default(
                240.0,
                "idle timeout 4 min (4-100), silent drop unless TCP reset is enabled",
                "https://learn.microsoft.com/azure/load-balancer/load-balancer-tcp-idle-timeout",
            )
        },  # fmt: skip
        {"idle": _tmpl("az network lb rule update ... --idle-timeout {v} --enable-tcp-reset true", "min")},
        managed=True,
    ),
    Preset(
        "azure-nat",
        "middlebox",
        "Azure NAT Gateway",
        {
            "idle": Default(
                240.0,
                "TCP idle timeout 4 min (4-120)",
                "https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#tcp-idle-timeout",
            )
        },  # fmt: skip
        {"idle": _tmpl("az network nat gateway update ... --idle-timeout {v}", "min")},
        managed=True,
    ),
    Preset(
        "conntrack",
        "middlebox",
        "Linux conntrack (firewall/NAT box)",
        {
            "idle": Default(
                432000.0,
                "net.netfilter.nf_conntrack_tcp_timeout_established = 432000",
                "https://docs.kernel.org/networking/nf_conntrack-sysctl.html",
            )
        },  # fmt: skip
        {"idle": _tmpl("net.netfilter.nf_conntrack_tcp_timeout_established = {v}", "int")},
        note="drops only with an INVALID drop rule or a NAT mapping to lose; loose pick-up otherwise",
    ),
    # ---- anything else -------------------------------------------------------------------------------------------
    Preset("generic", "proxy", "any other software (give its values)", {}, {}),
]

PRESETS: dict[str, Preset] = {p.kind: p for p in _P}
# The kernel's keepalive knobs are written the same way whatever the hop.
SYSCTL_KEEPALIVE = _tmpl("net.ipv4.tcp_keepalive_time = {v}  (and SO_KEEPALIVE on the socket)", "int")


def get_preset(kind: str) -> Preset:
    p = PRESETS.get(kind)
    if p is None:
        raise UsageError(f"unknown hop kind {kind!r}; valid: {', '.join(PRESETS)}")
    return p


def defaults_markdown() -> str:
    """The table docs/ladder.md shows (kept identical by a test)."""
    lines = ["| kind | role | setting | default | source |", "|---|---|---|---|---|"]
    for p in _P:
        for fname, d in p.defaults.items():
            val = "never" if d.seconds is None else format_duration(d.seconds)
            lines.append(f"| {p.kind} | {p.role} | {fname}: {d.doc} | {val} | {d.url} |")
    lines.append(
        f"| (kernel) | any | keepalive: {KERNEL_KEEPALIVE.doc} | {format_duration(7200)} | {KERNEL_KEEPALIVE.url} |"
    )
    return "\n".join(lines) + "\n"

"""The keep-alive race: a pool keeps idle connections longer than the server behind it (the ladder's finding).

``keepalive-race`` — a proxy's upstream pool (nginx ``keepalive_timeout`` in an upstream block, an ALB, Envoy, a
client pool) sends requests on pooled connections to a server whose keep-alive timeout is shorter (uvicorn 5 s,
gunicorn 2 s, Node 5 s). Requests come at a configurable spacing. When a request leaves the pool on a connection
whose server has just given up — the server's FIN is on the wire towards the pool, the request on the wire
towards the server — the server's closed socket answers the request with RST and the request fails: the proxy's
502 ("upstream prematurely closed connection"), the client's "Connection reset by peer".

Arithmetic (one-way delay ``d``, server keep-alive ``S``): the server's clock starts when a request arrives; a
request sent ``g`` seconds after the previous one arrives at the server ``g`` seconds after it too, so the
server has closed if ``g > S``; the pool has not yet seen the FIN if ``g < S + 2d``. Spacings in ``(S, S + 2d)``
race; the default spacing is the middle of that window, with jitter around it.

The run is two simulations of ``requests`` requests each, counters only (no per-event log — 10 000 requests would
be ~100 000 events): the ladder as configured, and the corrected ladder (the pool gives up at ``server_idle`` minus
the ladder's margin). A third, recorded run of the configured ladder stops just after its first failure: its
events are the diagram.

The pool actor lives here rather than in :mod:`tcpwise.sim.apps` because it mirrors one product's documented
behaviour: nginx's upstream keepalive cache closes a cached connection ``keepalive_timeout`` after it was cached
(a per-connection timer) and drops a cached connection the moment it reads EOF on it (the cache's close handler).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tcpwise.endpoint.config import LINUX
from tcpwise.endpoint.events import Connected, ConnectionError, DataReceived, EndOfStream, EndpointEvent
from tcpwise.endpoint.stack import ConnectError
from tcpwise.endpoint.tcb import Endpoint, LocalProtocolError
from tcpwise.errors import UsageError
from tcpwise.events import Check, Event, Run
from tcpwise.scenarios import query as q
from tcpwise.scenarios.base import Param, Scenario, claim, register
from tcpwise.sim.apps import Server, quiet_reads
from tcpwise.sim.core import SimHost, Simulator
from tcpwise.sim.heartbeat import IdleTimeoutServer
from tcpwise.sim.network import Impairments
from tcpwise.vocab import AppCall, AppWhy, TcpState

__all__ = ["RacePool", "race_window", "ladder_margin"]

P = dict[str, Any]
S = TcpState
A_ADDR, B_ADDR = "198.18.0.1", "198.18.1.1"
REQUEST, RESPONSE = 200, 300


def ladder_margin(server_idle: float) -> float:
    """The ladder's default margin (tcpwise.ladder.rules.margin_for with no --margin): 10 %, >= 1 s, <= half."""
    return min(max(1.0, 0.1 * server_idle), 0.5 * server_idle)


def race_window(server_idle: float, delay: float) -> tuple[float, float]:
    """Spacings between two requests on one pooled connection that race the server's close."""
    return server_idle, server_idle + 2 * delay


@dataclass
class RaceStats:
    requests: int = 0
    completed: int = 0
    failed: int = 0  # requests that met a closed connection and were not retried (the proxy's 502)
    retried: int = 0
    opened: int = 0
    reused: int = 0
    expired: int = 0  # idle connections the pool closed itself (its keepalive_timeout)
    discarded: int = 0  # idle connections the pool dropped on EOF (the server closed first, no request on it)
    first_failure: float | None = None
    failure_idle: list[float] = field(default_factory=list)  # how long the failed connection had been idle
    errnos: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        fi = self.failure_idle
        return {
            "requests": self.requests,
            "completed": self.completed,
            "failed": self.failed,
            "retried": self.retried,
            "opened": self.opened,
            "reused": self.reused,
            "expired": self.expired,
            "discarded": self.discarded,
            "first_failure": self.first_failure,
            "failure_idle_min": round(min(fi), 6) if fi else None,
            "failure_idle_max": round(max(fi), 6) if fi else None,
            "errnos": dict(self.errnos),
        }


class RacePool:
    """A keep-alive pool as nginx's upstream keepalive cache behaves (see the module docstring)."""

    def __init__(
        self, sim: Simulator, host: SimHost, peer: str, *, idle: float, times: Any, retry: bool
    ) -> None:
        self.sim, self.host, self.peer, self.idle, self.retry = sim, host, peer, idle, retry
        self.stats = RaceStats()
        self.cache: deque[tuple[Endpoint, float]] = (
            deque()
        )  # (connection, cached at); right end = most recent
        self.busy: dict[Endpoint, list[Any]] = {}  # ep -> [ep, bytes read, retried?, idle before send]
        self.opening: dict[Endpoint, bool] = {}  # ep -> retried?
        self._times = iter(times)
        quiet_reads(host)
        host.reactions.append(self._react)
        self._next()

    def _next(self) -> None:
        t = next(self._times, None)
        if t is not None:
            self.sim.at(max(t, self.sim.now), self._request)

    def _request(self) -> None:
        self._next()
        self.stats.requests += 1
        now = self.sim.now
        while self.cache:
            ep, since = self.cache.pop()  # most recently used first, as nginx's cache queue
            if ep.state is not S.ESTABLISHED:
                continue  # (closed by the EOF handler already)
            self.stats.reused += 1
            self._send(ep, now, False, now - since)
            self.sim.drain(self.host)
            return
        self._open(now, False)
        self.sim.drain(self.host)

    def _open(self, now: float, retried: bool) -> None:
        try:
            ep = self.host.stack.connect(self.peer, 80, now)
        except ConnectError as exc:
            self.host.app(AppCall.CONNECT, errno=exc.errno)
            return
        self.stats.opened += 1
        self.opening[ep] = retried
        self.host.app(AppCall.CONNECT, ep, why=AppWhy.POOL_NEW)

    def _send(self, ep: Endpoint, now: float, retried: bool, idle_for: float) -> None:
        self.busy[ep] = [ep, 0, retried, idle_for]
        try:
            ep.send(b"q" * REQUEST, now)
        except LocalProtocolError:
            self._fail(ep, now, "EPIPE")
            return
        # value: how long the connection sat idle in the pool before this request (0 for a fresh one)
        self.host.app(AppCall.SEND, ep, nbytes=REQUEST, why=AppWhy.REQUEST, value=round(idle_for, 6))

    def _fail(self, ep: Endpoint, now: float, why: str) -> None:
        """The request on ``ep`` failed: ``why`` is the errno, or "EOF" when the server closed first."""
        entry = self.busy.pop(ep, None)
        self.stats.errnos[why] = self.stats.errnos.get(why, 0) + 1
        if self.stats.first_failure is None:
            self.stats.first_failure = now  # the first request that met a closed connection (retried or not)
        if entry is not None:
            self.stats.failure_idle.append(entry[3])
        if entry is not None and not entry[2] and self.retry:
            self.stats.retried += 1
            self._report_failure(ep, why, "retry on a new connection")
            self._open(now, True)
        else:
            self.stats.failed += 1
            self._report_failure(ep, why, "502 Bad Gateway")
        if ep.state is not S.CLOSED:
            try:
                ep.close(now)
            except LocalProtocolError:
                pass

    def _report_failure(self, ep: Endpoint, why: str, outcome: str) -> None:
        if (
            why == "EOF"
        ):  # the server's FIN arrived instead of a response: nginx "upstream prematurely closed"
            self.host.app(AppCall.EOF, ep, why=AppWhy.REQUEST, text=outcome)
        else:
            self.host.app(AppCall.ERROR, ep, errno=why, why=AppWhy.REQUEST, text=outcome)

    def _expire(self, ep: Endpoint, since: float) -> None:
        for i, (e, s) in enumerate(self.cache):
            if e is ep and s == since:
                del self.cache[i]
                self.stats.expired += 1
                self.host.app(AppCall.CLOSE, ep, why=AppWhy.POOL_MAX_IDLE, value=self.idle)
                if ep.state is not S.CLOSED:
                    ep.close(self.sim.now)
                self.host.after_call()
                return

    def _react(self, host: SimHost, ep: Endpoint, ev: EndpointEvent, now: float) -> None:
        key = ep
        tev = type(ev)
        if key in self.opening and tev is Connected:
            self._send(ep, now, self.opening.pop(key), 0.0)
            return
        entry = self.busy.get(key)
        if entry is None:
            if tev is EndOfStream or tev is ConnectionError:
                self.opening.pop(key, None)
                for i, (e, _s) in enumerate(self.cache):
                    if e is ep:  # nginx's close handler: a cached connection that reads EOF is dropped
                        del self.cache[i]
                        self.stats.discarded += 1
                        host.app(AppCall.CLOSE, ep, why=AppWhy.POOL_PEER_CLOSED)
                        if ep.state is not S.CLOSED:
                            ep.close(now)
                        break
            return
        if tev is DataReceived:
            entry[1] += len(ep.recv())
            if entry[1] >= RESPONSE:
                del self.busy[key]
                self.stats.completed += 1
                host.app(AppCall.RECV, ep, nbytes=entry[1], why=AppWhy.POOL_RETURN)
                self.cache.append((ep, now))
                if math.isfinite(self.idle):
                    self.sim.at(now + self.idle, self._expire, ep, now)
        elif tev is EndOfStream:
            self._fail(ep, now, "EOF")
        elif isinstance(ev, ConnectionError):
            self._fail(ep, now, ev.errno)


def _check(p: P) -> None:
    if not (0.2 <= p["server_idle"] <= 3600):
        raise UsageError("server_idle must be between 0.2 and 3600 s")
    if not (p["client_idle"] > 0):
        raise UsageError("client_idle must be > 0 (inf: the pool never gives up)")
    if not (0 <= p["delay"] <= 1.0):
        raise UsageError("delay must be between 0 and 1 s")
    if not (1 <= p["requests"] <= 100_000):
        raise UsageError("requests must be between 1 and 100000")
    if not (0 <= p["spacing"] <= 3600) or not (0 <= p["jitter"] <= 600):
        raise UsageError("spacing must be 0..3600 s (0 = auto) and jitter 0..600 s")
    if not (0 <= p["fixed_idle"] < p["server_idle"]):
        raise UsageError("fixed_idle must be 0 (auto) or below server_idle")
    if _spacing(p) - p["jitter"] < 2 * p["delay"] + 0.01:
        raise UsageError("spacing - jitter must leave room for a round trip (requests would overlap)")


def _spacing(p: P) -> float:
    lo, hi = race_window(p["server_idle"], p["delay"])
    return p["spacing"] or (lo + hi) / 2


def _fixed_idle(p: P) -> float:
    return float(p["fixed_idle"] or p["server_idle"] - ladder_margin(p["server_idle"]))


def _times(p: P, sim: Simulator, n: int) -> Any:
    rng = sim.rng_for("keepalive-race|spacing")
    g, j = _spacing(p), p["jitter"]
    t = 0.0
    for _ in range(n):
        yield t
        t += g + (rng.uniform(-j, j) if j else 0.0)


def _simulate_one(
    p: P, seed: int, client_idle: float, *, record: bool, until: float | None = None
) -> tuple[Simulator, RacePool, Server]:
    sim = Simulator(seed, record=record)
    sim.default_imp = Impairments(delay=p["delay"])
    ha = sim.add_host("A", A_ADDR, LINUX, "pool (proxy upstream keep-alive)")
    hb = sim.add_host("B", B_ADDR, LINUX, f"server (keep-alive {p['server_idle']:g} s)")
    server = Server(sim, hb, 80, response_bytes=RESPONSE)
    IdleTimeoutServer(sim, hb, p["server_idle"]).attach()
    pool = RacePool(sim, ha, B_ADDR, idle=client_idle, times=_times(p, sim, p["requests"]), retry=p["retry"])
    end = p["requests"] * (_spacing(p) + p["jitter"]) + p["server_idle"] + 10.0
    sim.run(min(end, until) if until is not None else end)
    return sim, pool, server


def _simulate(p: P, seed: int) -> Run:
    _check(p)
    _, bad, _srv = _simulate_one(p, seed, p["client_idle"], record=False)
    _, good, _ = _simulate_one(p, seed, _fixed_idle(p), record=False)
    events: list[Event] = []
    sim = None
    ff = bad.stats.first_failure
    if ff is not None:
        # The same run again, recorded, up to just after its first failure (same seed: the same requests).
        sim, _, _ = _simulate_one(p, seed, p["client_idle"], record=True, until=ff + 4 * p["delay"] + 0.01)
        t0 = ff - _spacing(p) - p["jitter"] - 4 * p["delay"]
        events = [e for e in sim.events if e.t >= t0]
    if sim is None:
        sim, _, _ = _simulate_one(
            {**p, "requests": min(p["requests"], 3)}, seed, p["client_idle"], record=True
        )
        events = sim.events
    run = Run(scenario="keepalive-race", seed=seed, hosts=sim.host_models(), events=events, world="sim")
    lo, hi = race_window(p["server_idle"], p["delay"])
    run.summary["values"] = {
        "configured": bad.stats.to_dict(),
        "fixed": good.stats.to_dict(),
        "fixed_idle": _fixed_idle(p),
        "spacing": _spacing(p),
        "window": [lo, hi],
    }
    return run


def _inverted(p: P) -> bool:
    return bool(p["client_idle"] >= p["server_idle"])


def _fmt(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:g} s"


def _t(x: float | None) -> str:
    return "never" if x is None else f"{x:.3f} s"


def _race_seen(run: Run, delay: float) -> tuple[bool, str]:
    """In the recorded window: the pool's request and the server's FIN cross on the wire — the request reaches
    the server after its close, the FIN reaches the pool after the request left — and the server answers RST."""
    fins = [e for e in q.sends(run, "B") if e.segment is not None and "F" in e.segment.flags]
    if not fins:
        return False, "no FIN from the server in the recorded window"
    fin = fins[-1]
    assert fin.segment is not None
    fin_at_a = next(
        (e.t for e in q.recvs(run, "A") if e.segment is not None and "F" in e.segment.flags and e.t >= fin.t),
        None,
    )
    reqs = [
        e
        for e in q.sends(run, "A")
        if e.segment is not None and e.segment.len > 0 and e.t < (fin_at_a or 1e18)
    ]
    req = reqs[-1] if reqs else None
    req_at_b = next(
        (e.t for e in q.recvs(run, "B") if req is not None and e.segment is not None and e.segment.seq == req.segment.seq
         and e.segment.len > 0 and e.t >= req.t),
        None,
    )  # fmt: skip
    rst = next(
        (e for e in q.sends(run, "B") if e.segment is not None and "R" in e.segment.flags and e.t >= fin.t),
        None,
    )
    ok = (
        req is not None
        and req_at_b is not None
        and req_at_b >= fin.t
        and rst is not None
        and rst.t >= req_at_b
    )
    return ok, (
        f"request sent at {_t(req.t if req else None)}, reaches the server at {_t(req_at_b)}; the server's FIN "
        f"left at {fin.t:.3f} s, reaches the pool at {_t(fin_at_a)}; RST at {_t(rst.t if rst else None)}"
    )


def _check_run(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    c, f = v["configured"], v["fixed"]
    fixed_claim = claim(
        f"With the corrected ladder (the pool gives up after {v['fixed_idle']:g} s, below the server's "
        f"{p['server_idle']:g} s by the ladder's margin) none of {f['requests']} requests fails.",
        f"修正后的阶梯（连接池 {v['fixed_idle']:g} 秒后放弃空闲连接，比服务端的 {p['server_idle']:g} 秒少出阶梯要求的余量）"
        f"下，{f['requests']} 个请求无一失败。",
        f["failed"] == 0 and f["retried"] == 0 and f["completed"] == f["requests"],
        f"fixed: {f['failed']} failed, {f['retried']} retried, {f['completed']}/{f['requests']} completed, "
        f"{f['opened']} connections opened, {f['expired']} closed idle by the pool",
    )
    if not _inverted(p):
        return [
            claim(
                f"As configured (pool {_fmt(p['client_idle'])} < server {p['server_idle']:g} s) no request meets a "
                "closed connection.",
                f"按当前配置（连接池 {_fmt(p['client_idle'])} < 服务端 {p['server_idle']:g} 秒）没有请求遇到已关闭的连接。",
                c["failed"] == 0 and c["retried"] == 0,
                f"configured: {c['failed']} failed, {c['retried']} retried of {c['requests']}",
            ),
            fixed_claim,
        ]
    seen, detail = _race_seen(run, p["delay"])
    hit = c["failed"] + c["retried"]
    return [
        claim(
            f"As configured (the pool keeps idle connections {_fmt(p['client_idle'])}, the server {p['server_idle']:g} s) "
            "requests meet a connection the server has just closed.",
            f"按当前配置（连接池保留空闲连接 {_fmt(p['client_idle'])}，服务端 {p['server_idle']:g} 秒）有请求遇到服务端刚刚关闭的连接。",
            hit > 0,
            f"configured: {c['failed']} failed (502), {c['retried']} retried, of {c['requests']}; "
            f"failed connections had been idle {c['failure_idle_min']}..{c['failure_idle_max']} s",
        ),
        claim(
            "The race on the wire: the request and the server's FIN cross — the request reaches the server after "
            "it closed, the FIN reaches the pool after the request left — and the closed socket answers RST.",
            "线上的竞争：请求与服务端的 FIN 在线上交错——请求在服务端关闭之后到达，FIN 在请求发出之后才到达连接池——已关闭的套接字回应 RST。",
            seen,
            detail,
        ),
        fixed_claim,
    ]


def _narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    c, f = v["configured"], v["fixed"]
    lo, hi = v["window"]
    retry = (
        f" The pool retries such a request once on a new connection ({c['retried']} retries), as nginx does for "
        "idempotent requests: the error only reaches the client when the retry is not allowed (a POST)."
        if p["retry"]
        else ""
    )
    retry_zh = (
        f"连接池会在新连接上重试一次（重试 {c['retried']} 次），nginx 对幂等请求正是这样做的。"
        if p["retry"]
        else ""
    )
    en = (
        f"A pool (a proxy's upstream keep-alive) sends one request about every {v['spacing']:.3f} s "
        f"(± {p['jitter']:g} s) to a server that closes connections idle for {p['server_idle']:g} s; the pool keeps "
        f"them {_fmt(p['client_idle'])}. A request sent {lo:g}..{hi:g} s after the previous one on the same connection "
        f"races the server's close: the server has closed, its FIN is still on its way. Of {c['requests']} requests, "
        f"{c['failed']} failed (the proxy's 502) and {c['retried']} were retried; the pool opened {c['opened']} "
        f"connections and reused {c['reused']}.{retry} With the ladder's fix — the pool gives up after "
        f"{v['fixed_idle']:g} s — {f['failed']} of {f['requests']} failed, at the price of {f['opened']} new "
        "connections."
    )
    zh = (
        f"一个连接池（代理的上游 keep-alive）大约每 {v['spacing']:.3f} 秒（± {p['jitter']:g} 秒）向服务端发一个请求；服务端关闭空闲 "
        f"{p['server_idle']:g} 秒的连接，连接池却保留 {_fmt(p['client_idle'])}。在同一连接上、距上一个请求 {lo:g}..{hi:g} 秒发出的请求"
        f"会与服务端的关闭竞争：服务端已经关闭，它的 FIN 还在路上。{c['requests']} 个请求中 {c['failed']} 个失败（代理的 502），"
        f"{c['retried']} 个被重试；连接池新建 {c['opened']} 条连接，复用 {c['reused']} 次。{retry_zh}按阶梯的修正——连接池 "
        f"{v['fixed_idle']:g} 秒后放弃空闲连接——{f['requests']} 个请求失败 {f['failed']} 个，代价是新建 {f['opened']} 条连接。"
    )
    return en, zh


register(
    Scenario(
        id="keepalive-race",
        title="Keep-alive race: the pool outlives the server's idle timeout",
        title_zh="Keep-alive 竞争：连接池的空闲时间长于服务端",
        claim="A pool that keeps idle connections longer than the server (nginx upstream 60 s vs uvicorn 5 s) sends "
        "requests into connections the server is closing: RST, 502; the ladder's fix (pool gives up first, with "
        "margin) makes 10 000 requests fail 0 times.",
        claim_zh="连接池保留空闲连接的时间长于服务端（nginx 上游 60 秒 vs uvicorn 5 秒）时，请求会发进服务端正在关闭的连接：RST、502；"
        "按阶梯修正（连接池带余量先放弃）后 10000 个请求零失败。",
        params={
            "client_idle": Param(
                60.0,
                "how long the pool keeps an idle connection (s); inf = never (urllib3)",
                "连接池保留空闲连接的时长（秒）；inf = 永不放弃（urllib3）",
                unit="s",
                lo=0.01,
                hi=86_400.0,
                inf_ok=True,
            ),
            "server_idle": Param(
                5.0,
                "the server's keep-alive timeout (s)",
                "服务端 keep-alive 超时（秒）",
                unit="s",
                lo=0.2,
                hi=3600.0,
            ),
            "spacing": Param(
                0.0,
                "mean time between requests (s); 0 = auto: the middle of the race window",
                "请求间的平均间隔（秒）；0 = 自动：竞争窗口的中点",
                unit="s",
                lo=0.0,
                hi=3600.0,
            ),
            "jitter": Param(
                0.5,
                "each spacing is drawn in spacing ± jitter (s)",
                "每个间隔在 spacing ± jitter 内随机（秒）",
                unit="s",
                lo=0.0,
                hi=600.0,
            ),
            "requests": Param(
                10000,
                "requests per run (the configured and the fixed ladder)",
                "每次运行的请求数",
                lo=1,
                hi=100_000,
            ),
            "retry": Param(
                False,
                "retry a request that failed on a reused connection once (nginx does for idempotent requests)",
                "在复用连接上失败的请求重试一次（nginx 对幂等请求如此）",
            ),
            "fixed_idle": Param(
                0.0,
                "the corrected pool idle (s); 0 = auto: server_idle minus the ladder's margin",
                "修正后的连接池空闲时长（秒）；0 = 自动：server_idle 减去阶梯的余量",
                unit="s",
                lo=0.0,
                hi=3600.0,
            ),
        },
        simulate=_simulate,
        check=_check_run,
        narrate=_narrate,
        tags=("liveness", "pool", "ladder"),
    )
)

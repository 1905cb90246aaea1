"""Connection limits: what fills up, in which queue or table, and what the user then sees.

Five scenarios, each a packet-level simulation of real endpoints driven by application actors
(:mod:`tcpwise.sim.apps`):

* ``close-wait-leak`` — a server that never close()s: CLOSE_WAIT grows one per request until the process's fd
  limit; accept(2) then fails with EMFILE, connections wait in the accept queue until it overflows, and new
  clients' SYNs are dropped (they time out).
* ``client-leak`` — a client that never closes: the server's ESTABLISHED table fills with one client's
  connections; a per-source-IP limit in the server application keeps room for everybody else.
* ``syn-flood`` — spoofed SYNs fill the SYN queue (the "半连接队列": SYN_RCVD entries, *not* half-open
  connections); with ``tcp_syncookies=0`` a legitimate client's SYN is dropped, with ``=1`` it gets a cookie.
* ``accept-queue-overflow`` — a slow accept(): the accept queue holds backlog+1; a final ACK arriving at a full
  queue is dropped (``tcp_abort_on_overflow=0``: the client believes it is ESTABLISHED, the server keeps
  SYN_RCVD and retransmits its SYN-ACK) or answered with RST (``=1``); new SYNs are dropped (ListenOverflows).
* ``pool-dead-connections`` — a naive keep-alive pool hands out connections the server closed when idle:
  "Connection reset by peer", retries on new connections, dead ones kept; a validating, evicting pool does not.

Each scenario that contrasts a bug with its remedy runs both in one go, so the default run shows every claim;
the event log keeps a few sample connections (the whole run is summarised in ``run.series``).
"""

from __future__ import annotations

from typing import Any

from tcpwise.endpoint.config import LINUX
from tcpwise.errors import UsageError
from tcpwise.events import Check, Event, Run
from tcpwise.scenarios import query as q
from tcpwise.scenarios.base import Param, Scenario, claim, register
from tcpwise.script import Abort, Accept, Close, Connect, HostSpec, LinkSpec, Listen, Script, Send
from tcpwise.sim.apps import BASE_FDS, LeakyClient, PoolClient, Server, ShortConnClient, SynFlood
from tcpwise.sim.core import SimHost, Simulator
from tcpwise.sim.network import Impairments
from tcpwise.vocab import AppCall, AppWhy, DropReason

__all__: list[str] = []

P = dict[str, Any]
A_ADDR = "198.18.0.1"
C_ADDR = "198.18.0.2"
X_ADDR = "198.18.0.66"
B_ADDR = "198.18.1.1"


def _need(p: P, name: str, lo: float, hi: float) -> None:
    if not (lo <= p[name] <= hi):
        raise UsageError(f"{name}={p[name]}: must be between {lo:g} and {hi:g}")


def _sim(p: P, seed: int, record: bool = True) -> Simulator:
    _need(p, "delay", 0.0, 5.0)
    sim = Simulator(seed, record=record)
    sim.default_imp = Impairments(delay=p["delay"])
    return sim


def _host(sim: Simulator, name: str, addr: str, role: str, **cfg: Any) -> SimHost:
    return sim.add_host(name, addr, LINUX.with_(**cfg), role)


def _ports_of(label: str | None) -> set[int]:
    """Ports named in a connection label like ``A:32768>B:80``."""
    out: set[int] = set()
    if not label:
        return out
    for part in label.replace(" (listen)", "").split(">"):
        tail = part.rsplit(":", 1)[-1]
        if tail.isdigit():
            out.add(int(tail))
    return out


def _sample(
    events: list[Event], ports: set[int], hosts: set[str] | None = None, limit: int = 600
) -> list[Event]:
    """Keep the events of a few sample connections (by client port) and everything that names no connection.
    ``hosts``: restrict to these hosts. The full run is in the series and the summary values."""
    out = []
    for e in events:
        if hosts is not None and e.host not in hosts:
            continue
        if e.segment is not None:
            keep = e.segment.sport in ports or e.segment.dport in ports
        elif e.conn is not None and not e.conn.endswith("(listen)"):
            keep = bool(_ports_of(e.conn) & ports)
        else:
            keep = True
        if keep:
            out.append(e)
        if len(out) >= limit:
            break
    return out


def _conn_port(ev: Event, host: str) -> int | None:
    """The client-side port of a connection label on ``host`` (A:PORT>B:80 or B:80>A:PORT)."""
    if not ev.conn or ev.conn.endswith("(listen)"):
        return None
    left, _, right = ev.conn.partition(">")
    side = left if left.startswith(f"{host}:") and not left.endswith(":80") else right
    tail = side.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _sampler(sim: Simulator, interval: float, until: float, cols: dict[str, Any]) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {"t": []}
    for k in cols:
        series[k] = []

    def tick(t: float) -> None:
        series["t"].append(round(t, 6))
        for k, fn in cols.items():
            series[k].append(fn())
        if t + interval <= until + 1e-9:
            sim.at(t + interval, tick, t + interval)

    sim.at(0.0, tick, 0.0)
    return series


def _count(host: SimHost, state: str) -> int:
    return sum(1 for ep in host.stack.conns.values() if ep.state.value == state)


def _finish(sim: Simulator, scenario: str, seed: int, events: list[Event] | None = None) -> Run:
    return Run(
        scenario=scenario,
        seed=seed,
        hosts=sim.host_models(),
        events=sim.events if events is None else events,
        world="sim",
    )


def _t(x: float | None) -> str:
    """A measured time for a narrative; 'never' when the run did not get there (odd parameters)."""
    return "never" if x is None else f"{x:.2f}"


# ============================================================================================================
# close-wait-leak
# ============================================================================================================
def _lab_label(i: int) -> str:
    """The label of the i-th connection a server accepts, in both worlds: s, s2, s3, ..."""
    return "s" if i == 0 else f"s{i + 1}"


def _cwl_build(p: P) -> Script:
    """The leak at lab scale, as a script: four requests; each client closes after its response, the server never
    close()s — CLOSE_WAIT stays on the server while the client's orphaned FIN_WAIT_2 dies after tcp_fin_timeout."""
    _need(p, "backlog", 1, 4096)
    _need(p, "fin_timeout", 1, 3600)
    d = p["delay"]
    gap = max(0.5, 10 * d)
    steps: list[Any] = [Listen(0.0, "B", 80, backlog=p["backlog"])]
    n = 4
    for i in range(n):
        t, c = i * gap, f"c{i}"
        steps += [
            Connect(t, "A", "B", 80, sock=c),
            Send(t + 3 * d, "A", 100, sock=c),
            Send(t + 5 * d, "B", 200, sock=_lab_label(i)),
            Close(t + 7 * d, "A", sock=c),
        ]
    hosts = (
        HostSpec("A", A_ADDR, "client", {"fin_timeout": p["fin_timeout"]}),
        HostSpec("B", B_ADDR, "server (never close()s)"),
    )
    return Script(hosts, tuple(steps), LinkSpec(delay=d), duration=n * gap + p["fin_timeout"] + 2.0)


def _cwl_simulate(p: P, seed: int) -> Run:
    _need(p, "fd_limit", BASE_FDS + 1, 20000)
    _need(p, "backlog", 1, 4096)
    _need(p, "rate", 1, 10000)
    _need(p, "timeout", 0.1, 60)
    sim = _sim(p, seed)
    ha = _host(sim, "A", A_ADDR, "client")
    hb = _host(sim, "B", B_ADDR, "server (never close()s)", backlog=p["backlog"])
    server = Server(sim, hb, 80, backlog=p["backlog"], on_eof="leak", fd_limit=p["fd_limit"])
    # Enough requests to use every fd, fill the accept queue (backlog + 1) and then some.
    n = p["fd_limit"] - BASE_FDS + server.listener.backlog + 1 + p["extra"]
    rate = p["rate"]
    client = ShortConnClient(sim, ha, B_ADDR, 80, times=[i / rate for i in range(n)], timeout=p["timeout"])
    lst = server.listener
    until = n / rate + p["timeout"] + 2.0
    series = _sampler(
        sim,
        0.5,
        until,
        {
            "B.CLOSE_WAIT": lambda: _count(hb, "CLOSE_WAIT"),
            "B.fds": lambda: server.stats.open_fds,
            "B.accept_queue": lambda: len(lst.accept_queue),
            "A.timeouts": lambda: client.stats.timeouts,
        },
    )
    sim.run(until)
    # Sample connections: the first, the first never accepted, the first whose SYN was dropped.
    accepted = {
        _conn_port(e, "B")
        for e in sim.events
        if e.host == "B" and (e.call is AppCall.ACCEPT and e.errno is None)
    }
    opened = [
        _conn_port(e, "A")
        for e in sim.events
        if e.host == "A" and (e.call is AppCall.CONNECT and e.errno is None)
    ]
    est = {
        _conn_port(e, "A")
        for e in sim.events
        if e.host == "A" and e.kind == "state" and e.to_state == "ESTABLISHED"
    }
    queued = next((pt for pt in opened if pt not in accepted and pt in est), None)
    dropped = next((pt for pt in opened if pt not in est), None)
    sample = {pt for pt in (opened[0] if opened else None, queued, dropped) if pt is not None}
    run = _finish(sim, "close-wait-leak", seed, _sample(sim.events, sample))
    run.series = series
    syn_timeouts = sum(1 for e in sim.events if e.host == "A" and e.why is AppWhy.CONNECT_TIMEOUT)
    run.summary["values"] = {
        "requests": n,
        "accepted": server.stats.accepted,
        "responses": server.stats.responses,
        "emfile": server.stats.emfile,
        "peak_fds": server.stats.peak_fds,
        "peak_close_wait": max(series["B.CLOSE_WAIT"]),
        "peak_accept_queue": max(series["B.accept_queue"]),
        "accept_queue_limit": lst.backlog + 1,
        "listen_overflows": lst.stats["ListenOverflows"],
        "completed": client.stats.completed,
        "timeouts": client.stats.timeouts,
        "connect_timeouts": syn_timeouts,
        "sample_ports": sorted(sample),
        "first_emfile_t": next(
            (round(e.t, 3) for e in sim.events if e.host == "B" and e.errno == "EMFILE"), None
        ),
    }
    return run


def _cwl_check(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    cw = run.series["B.CLOSE_WAIT"] if run.series else []
    grows = all(b >= a for a, b in zip(cw, cw[1:], strict=False))
    usable = p["fd_limit"] - BASE_FDS
    return [
        claim(
            "The server never close()s: CLOSE_WAIT grows by one per answered request and never shrinks.",
            "服务端从不 close()：每处理一个请求 CLOSE_WAIT 加一，且从不减少。",
            grows and v["peak_close_wait"] >= v["responses"] >= usable,
            f"{v['responses']} responses, CLOSE_WAIT peak {v['peak_close_wait']}, never decreasing: {grows}",
        ),
        claim(
            f"At the fd limit ({p['fd_limit']}) accept() fails with EMFILE.",
            f"达到 fd 上限（{p['fd_limit']}）时 accept() 以 EMFILE 失败。",
            v["peak_fds"] == p["fd_limit"] and v["emfile"] > 0 and v["accepted"] == usable,
            f"open fds peaked at {v['peak_fds']} ({BASE_FDS} + {v['accepted']} accepted sockets); "
            f"{v['emfile']} accept() calls failed with EMFILE, first at t={v['first_emfile_t']}",
        ),
        claim(
            "Connections the server cannot accept wait in the accept queue until it is full (backlog + 1).",
            "无法 accept 的连接停在全连接队列里，直到队列满（backlog + 1）。",
            v["peak_accept_queue"] == v["accept_queue_limit"],
            f"accept queue peaked at {v['peak_accept_queue']} of {v['accept_queue_limit']}",
        ),
        claim(
            "Then new SYNs are dropped: new clients time out.",
            "之后新的 SYN 被丢弃：新客户端连接超时。",
            v["listen_overflows"] > 0 and v["connect_timeouts"] > 0,
            f"ListenOverflows {v['listen_overflows']}; {v['connect_timeouts']} connects timed out after "
            f"{p['timeout']:g} s; {v['timeouts']} requests timed out in all",
        ),
    ]


def _cwl_narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    en = (
        f"Client A sends {v['requests']} requests at {p['rate']:g}/s; the server answers each one but never calls "
        f"close(). Each client closes, so each server socket sits in CLOSE_WAIT holding an fd: CLOSE_WAIT "
        f"reached {v['peak_close_wait']}. With {p['fd_limit']} fds (3 standard + the listener + "
        f"{v['accepted']} sockets) accept() started failing with EMFILE at t={_t(v['first_emfile_t'])} s. "
        f"The kernel still completed handshakes into the accept queue ({v['peak_accept_queue']} = backlog + 1), "
        f"then dropped new SYNs ({v['listen_overflows']} ListenOverflows): {v['connect_timeouts']} clients "
        f"gave up connecting after {p['timeout']:g} s. The fix is in the application: close() every socket "
        f"(CLOSE_WAIT is always the application's bug, never the kernel's)."
    )
    zh = (
        f"客户端 A 以每秒 {p['rate']:g} 个的速率发出 {v['requests']} 个请求；服务端逐个应答，却从不调用 close()。客户端都会关闭，"
        f"于是服务端每个套接字停在 CLOSE_WAIT 并占用一个 fd：CLOSE_WAIT 达到 {v['peak_close_wait']}。fd 上限 {p['fd_limit']}"
        f"（3 个标准 fd + 监听套接字 + {v['accepted']} 个连接）用尽后，accept() 在 t={_t(v['first_emfile_t'])} 秒开始以 EMFILE 失败。"
        f"内核仍把完成握手的连接放进全连接队列（{v['peak_accept_queue']} = backlog + 1），之后丢弃新的 SYN"
        f"（ListenOverflows {v['listen_overflows']}）：{v['connect_timeouts']} 个客户端在 {p['timeout']:g} 秒后放弃连接。"
        f"修复在应用：每个套接字都要 close()（CLOSE_WAIT 永远是应用的问题，不是内核的）。"
    )
    return en, zh


register(
    Scenario(
        id="close-wait-leak",
        title="CLOSE_WAIT leak: the server never close()s",
        title_zh="CLOSE_WAIT 泄漏：服务端从不 close()",
        claim="CLOSE_WAIT grows per request until the fd limit (1024) -> accept fails (EMFILE), the accept queue "
        "fills, new clients time out.",
        claim_zh="CLOSE_WAIT 随请求增长直到 fd 上限（1024）-> accept 失败（EMFILE），全连接队列被占满，新客户端超时。",
        params={
            "fd_limit": Param(
                1024,
                "server process RLIMIT_NOFILE (ulimit -n)",
                "服务端进程 fd 上限（ulimit -n）",
                lo=4,
                hi=65536,
            ),
            "backlog": Param(
                128,
                "listen() backlog (accept queue holds backlog + 1)",
                "listen() 的 backlog（全连接队列可容纳 backlog + 1）",
                lo=0,
                hi=65535,
            ),
            "rate": Param(
                200.0, "client requests per second", "客户端每秒请求数", unit="conn/s", lo=0.1, hi=10_000.0
            ),
            "extra": Param(
                100,
                "requests beyond fds + accept queue",
                "超出 fd 与全连接队列容量的额外请求数",
                lo=0,
                hi=100_000,
            ),
            "timeout": Param(
                3.0,
                "client application timeout for connect + response (s)",
                "客户端应用的连接+响应超时（秒）",
                unit="s",
                lo=0.01,
                hi=3600.0,
            ),
            "fin_timeout": Param(
                60.0,
                "the client's net.ipv4.tcp_fin_timeout: how long its orphaned FIN_WAIT_2 lives (s; lab script)",
                "客户端的 tcp_fin_timeout：孤儿 FIN_WAIT_2 存活多久（秒；实验室脚本）",
                unit="s",
                lo=1.0,
                hi=3600.0,
            ),
        },
        simulate=_cwl_simulate,
        build=_cwl_build,
        lab=True,
        check=_cwl_check,
        narrate=_cwl_narrate,
        tags=("limits", "close_wait"),
    )
)


# ============================================================================================================
# client-leak
# ============================================================================================================
def _leak_run(p: P, seed: int, per_ip_limit: int, record: bool) -> tuple[Simulator, dict[str, Any]]:
    sim = _sim(p, seed, record)
    ha = _host(sim, "A", A_ADDR, "client that never closes")
    hc = _host(sim, "C", C_ADDR, "another client")
    hb = _host(
        sim,
        "B",
        B_ADDR,
        "server" + (f" (per-IP limit {per_ip_limit})" if per_ip_limit else ""),
        backlog=p["backlog"],
    )
    server = Server(
        sim, hb, 80, backlog=p["backlog"], fd_limit=p["max_conns"] + BASE_FDS, per_ip_limit=per_ip_limit
    )
    n = p["leak_conns"]
    leak_rate = 20.0
    leaky = LeakyClient(sim, ha, B_ADDR, 80, times=[i / leak_rate for i in range(n)], timeout=p["timeout"])
    t_c = n / leak_rate + 1.0
    other = ShortConnClient(
        sim, hc, B_ADDR, 80, times=[t_c + i for i in range(p["other_requests"])], timeout=p["timeout"]
    )
    until = t_c + p["other_requests"] + p["timeout"] + 1.0
    series = (
        _sampler(
            sim,
            0.5,
            until,
            {
                "B.ESTABLISHED": lambda: _count(hb, "ESTABLISHED"),
                "B.from_A": lambda: sum(
                    1
                    for ep in hb.stack.conns.values()
                    if ep.raddr == A_ADDR and ep.state.value == "ESTABLISHED"
                ),
                "C.completed": lambda: other.stats.completed,
            },
        )
        if record
        else {}
    )
    sim.run(until)
    from_a = sum(1 for ep in server.open.values() if ep.raddr == A_ADDR)
    info = {
        "per_ip_limit": per_ip_limit,
        "accepted": server.stats.accepted,
        "refused": server.stats.refused,
        "emfile": server.stats.emfile,
        "server_est_from_A": from_a,
        "peak_est": max(series["B.ESTABLISHED"]) if series else None,
        "A_errors": dict(leaky.stats.errors),
        "A_established": leaky.stats.established,
        "C_attempts": other.stats.attempts,
        "C_completed": other.stats.completed,
        "C_timeouts": other.stats.timeouts,
        "listen_overflows": server.listener.stats["ListenOverflows"],
    }
    return sim, {"info": info, "series": series}


def _leak_build(p: P) -> Script:
    """Three hosts, as a script (the lab runs it): A opens connections and never closes them; the server refuses
    (RST) those beyond its per-IP limit right after accept(); the other client C is served."""
    _need(p, "per_ip_limit", 1, 5000)
    _need(p, "leak_conns", 1, 50)
    _need(p, "other_requests", 1, 20)
    _need(p, "backlog", 1, 4096)
    d = p["delay"]
    gap = max(0.2, 4 * d)
    n = p["leak_conns"]
    steps: list[Any] = [Listen(0.0, "B", 80, backlog=p["backlog"], on_eof="close")]
    for i in range(n):
        t, c, s = i * gap, f"c{i}", _lab_label(i)
        steps += [Connect(t, "A", "B", 80, sock=c), Send(t + 3 * d, "A", 100, sock=c)]
        if i >= p["per_ip_limit"]:
            steps.append(Abort(t + 3.5 * d, "B", sock=s))  # refused: before its request arrives
        else:
            steps.append(Send(t + 5 * d, "B", 200, sock=s))
    t_c = n * gap + 0.5
    for j in range(p["other_requests"]):
        t, c, s = t_c + j * max(0.5, 10 * d), f"c{j}", _lab_label(n + j)
        steps += [
            Connect(t, "C", "B", 80, sock=c),
            Send(t + 3 * d, "C", 100, sock=c),
            Send(t + 5 * d, "B", 200, sock=s),
            Close(t + 7 * d, "C", sock=c),
        ]
    hosts = (
        HostSpec("A", A_ADDR, "client that never closes"),
        HostSpec("B", B_ADDR, f"server (per-IP limit {p['per_ip_limit']})"),
        HostSpec("C", C_ADDR, "another client"),
    )
    end = t_c + p["other_requests"] * max(0.5, 10 * d) + 2.0
    return Script(hosts, tuple(steps), LinkSpec(delay=d), duration=end)


def _leak_simulate(p: P, seed: int) -> Run:
    _need(p, "max_conns", 1, 5000)
    _need(p, "per_ip_limit", 1, 5000)
    _need(p, "leak_conns", 1, 5000)
    _need(p, "other_requests", 1, 100)
    _need(p, "backlog", 1, 4096)
    sim, limited = _leak_run(p, seed, p["per_ip_limit"], True)
    _, unlimited = _leak_run(p, seed, 0, False)
    # Sample: A's first connection, its first refused one, C's first connection.
    refused = next(
        (_conn_port(e, "B") for e in sim.events if e.host == "B" and e.why is AppWhy.PER_IP_LIMIT), None
    )
    first_a = next(
        (
            _conn_port(e, "A")
            for e in sim.events
            if e.host == "A" and (e.call is AppCall.CONNECT and e.errno is None)
        ),
        None,
    )
    first_c = next(
        (
            _conn_port(e, "C")
            for e in sim.events
            if e.host == "C" and (e.call is AppCall.CONNECT and e.errno is None)
        ),
        None,
    )
    ports = {pt for pt in (refused, first_a, first_c) if pt is not None}
    run = _finish(sim, "client-leak", seed, _sample(sim.events, ports))
    run.series = limited["series"]
    run.summary["values"] = {"limited": limited["info"], "unlimited": unlimited["info"]}
    return run


def _leak_check(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    lim, unl = v["limited"], v["unlimited"]
    return [
        claim(
            "Without a limit the leaking client's connections pile up ESTABLISHED on the server until it is full.",
            "没有限制时，泄漏客户端的连接在服务端以 ESTABLISHED 堆积，直到服务端满载。",
            unl["server_est_from_A"] == p["max_conns"] and unl["emfile"] > 0,
            f"server holds {unl['server_est_from_A']} ESTABLISHED connections from A (capacity {p['max_conns']}); "
            f"{unl['emfile']} accept() EMFILE",
        ),
        claim(
            "... and the other client C is not served.",
            "……另一个客户端 C 得不到服务。",
            unl["C_completed"] == 0 and unl["C_timeouts"] == unl["C_attempts"] > 0,
            f"C: {unl['C_completed']}/{unl['C_attempts']} requests completed, {unl['C_timeouts']} timed out",
        ),
        claim(
            f"A per-IP limit of {p['per_ip_limit']} refuses A's connections beyond it (closed with RST).",
            f"每 IP 上限 {p['per_ip_limit']} 会拒绝 A 超出的连接（以 RST 关闭）。",
            lim["server_est_from_A"] <= p["per_ip_limit"]
            and lim["refused"] > 0
            and lim["A_errors"].get("ECONNRESET", 0) > 0,
            f"server holds {lim['server_est_from_A']} from A; refused {lim['refused']}; A saw {lim['A_errors']}",
        ),
        claim(
            "With the limit, client C is still served.",
            "有了限制，客户端 C 仍然得到服务。",
            lim["C_completed"] == lim["C_attempts"] > 0,
            f"C: {lim['C_completed']}/{lim['C_attempts']} requests completed",
        ),
    ]


def _leak_narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    lim, unl = v["limited"], v["unlimited"]
    en = (
        f"Client A opens {p['leak_conns']} connections and never closes any. Without a limit the server (room "
        f"for {p['max_conns']} connections) ends up holding {unl['server_est_from_A']} ESTABLISHED connections from "
        f"A alone; client C then gets {unl['C_completed']} of {unl['C_attempts']} requests answered. With a "
        f"per-IP limit of {p['per_ip_limit']} the server closes A's extra connections with RST ({lim['refused']} "
        f"refused), keeps {lim['server_est_from_A']} for A, and C gets {lim['C_completed']} of "
        f"{lim['C_attempts']} answered. One misbehaving client can no longer take every slot."
    )
    zh = (
        f"客户端 A 打开 {p['leak_conns']} 条连接且从不关闭。没有限制时，服务端（容量 {p['max_conns']} 条连接）最终仅 A 一个就占了 "
        f"{unl['server_est_from_A']} 条 ESTABLISHED；客户端 C 的 {unl['C_attempts']} 个请求只有 {unl['C_completed']} 个得到应答。"
        f"设置每 IP 上限 {p['per_ip_limit']} 后，服务端以 RST 关闭 A 多出的连接（拒绝 {lim['refused']} 条），为 A 保留 "
        f"{lim['server_est_from_A']} 条，C 的 {lim['C_attempts']} 个请求有 {lim['C_completed']} 个得到应答。一个出问题的客户端不再能占满所有名额。"
    )
    return en, zh


register(
    Scenario(
        id="client-leak",
        title="Client leak: connections that are never closed",
        title_zh="客户端泄漏：从不关闭的连接",
        claim="Clients open and never close: server ESTABLISHED grows; a per-IP limit stops one client from taking all.",
        claim_zh="客户端打开连接从不关闭：服务端 ESTABLISHED 不断增长；每 IP 上限能阻止单个客户端占满全部连接。",
        params={
            "max_conns": Param(
                64,
                "connections the server process can hold (fds beyond the standard ones)",
                "服务端进程可持有的连接数（除标准 fd 外）",
                lo=1,
                hi=65536,
            ),
            "per_ip_limit": Param(
                10,
                "server application policy: open connections allowed per source IP",
                "服务端应用策略：每个源 IP 允许的连接数",
                lo=0,
                hi=65536,
            ),
            "leak_conns": Param(
                100,
                "connections the leaking client opens (20 per second)",
                "泄漏客户端打开的连接数（每秒 20 个）",
                lo=0,
                hi=100_000,
            ),
            "other_requests": Param(
                3,
                "requests from the other client C, one per second",
                "另一客户端 C 的请求数（每秒一个）",
                lo=0,
                hi=10_000,
            ),
            "backlog": Param(16, "listen() backlog", "listen() 的 backlog", lo=0, hi=65535),
            "timeout": Param(
                3.0, "client application timeout (s)", "客户端应用超时（秒）", unit="s", lo=0.01, hi=3600.0
            ),
        },
        simulate=_leak_simulate,
        build=_leak_build,
        lab=True,
        check=_leak_check,
        narrate=_leak_narrate,
        tags=("limits",),
    )
)


# ============================================================================================================
# syn-flood
# ============================================================================================================
def _flood_run(p: P, seed: int, cookies: int, record: bool) -> tuple[Simulator, dict[str, Any]]:
    sim = _sim(p, seed, record)
    _host(sim, "X", X_ADDR, "attacker")
    ha = _host(sim, "A", A_ADDR, "legit client")
    hb = _host(
        sim,
        "B",
        B_ADDR,
        f"server (syncookies={cookies})",
        backlog=p["backlog"],
        syncookies=cookies,
        max_syn_backlog=p["max_syn_backlog"],
    )
    server = Server(sim, hb, 80, backlog=p["backlog"])
    lst = server.listener
    sources = [f"198.18.2.{i}" for i in range(1, 251)]  # nobody answers for these: SYN-ACKs go nowhere
    flood = SynFlood(
        sim, "X", B_ADDR, 80, sources, rate=p["flood_rate"], start=0.0, duration=p["flood_duration"]
    )
    client = ShortConnClient(sim, ha, B_ADDR, 80, times=[p["client_at"]], timeout=p["timeout"])
    until = max(p["flood_duration"], p["client_at"] + p["timeout"]) + 1.0
    series = _sampler(
        sim,
        0.5,
        until,
        {
            "B.SYN_RCVD": lambda: len(lst.syn_queue),
            "A.completed": lambda: client.stats.completed,
        },
    )
    sim.run(until)
    t_est = next(
        (
            round(e.t, 6)
            for e in sim.events
            if e.host == "A" and e.kind == "state" and e.to_state == "ESTABLISHED"
        ),
        None,
    )
    info = {
        "syncookies": cookies,
        "syn_queue_limit": lst.syn_queue_limit,
        "peak_syn_rcvd": max(series["B.SYN_RCVD"]),
        # Which Linux rule sets the limit: backlog + 1 (inet_csk_reqsk_queue_is_full), or without cookies the
        # quarter of tcp_max_syn_backlog kept free (tcp_conn_request).
        "limit_rule": (
            f"backlog + 1 = {lst.backlog + 1}"
            if lst.syn_queue_limit == lst.backlog + 1
            else f"tcp_max_syn_backlog {p['max_syn_backlog']} minus its last quarter, + 1"
        ),
        "flood_syns": flood.sent,
        "stats": dict(lst.stats),
        "completed": client.stats.completed,
        "timeouts": client.stats.timeouts,
        "a_syns": sum(
            1
            for e in sim.events
            if e.host == "A" and e.kind == "send" and e.segment is not None and e.segment.flags == "S"
        ),
        "established_at": t_est,
        "no_route": sum(1 for e in sim.events if e.reason is DropReason.NO_ROUTE),
        "synrcvd_states_only": all(ep.state.value == "SYN_RCVD" for ep in lst.syn_queue.values()),
    }
    return sim, {"info": info, "series": series}


def _flood_build(p: P) -> Script:
    """The three hosts' script (the lab runs it): the server listens, the legitimate client connects and gives
    up after its timeout; the attacker's spoofed SYNs come from each world's raw-socket program."""
    _need(p, "syncookies", 0, 2)
    _need(p, "backlog", 1, 4096)
    _need(p, "max_syn_backlog", 1, 65535)
    _need(p, "client_at", 0.0, 60)
    _need(p, "timeout", 0.1, 60)
    b_cfg = {"syncookies": p["syncookies"], "max_syn_backlog": p["max_syn_backlog"]}
    hosts = (
        HostSpec("X", X_ADDR, "attacker"),
        HostSpec("A", A_ADDR, "legit client"),
        HostSpec("B", B_ADDR, f"server (syncookies={p['syncookies']})", b_cfg),
    )
    t, end = p["client_at"], p["client_at"] + p["timeout"]
    steps = (Listen(0.0, "B", 80, backlog=p["backlog"]), Connect(t, "A", "B", 80), Close(end, "A"))
    return Script(hosts, steps, LinkSpec(delay=p["delay"]), duration=max(p["flood_duration"], end) + 1.0)


def _flood_simulate(p: P, seed: int) -> Run:
    _need(p, "syncookies", 0, 2)
    _need(p, "backlog", 1, 4096)
    _need(p, "max_syn_backlog", 1, 65535)
    _need(p, "flood_rate", 1, 5000)
    _need(p, "flood_duration", 0.1, 60)
    _need(p, "timeout", 0.1, 60)
    _need(p, "client_at", 0.0, 60)
    sim, main = _flood_run(p, seed, p["syncookies"], True)
    other_cookies = 1 if p["syncookies"] == 0 else 0
    _, other = _flood_run(p, seed, other_cookies, True)
    # Sample: the legit client's connection plus the first three spoofed SYNs (and their SYN-ACK retries).
    first3: set[tuple[str, int]] = set()
    for e in sim.events:  # the first three attacker sources, in the order they appear in the log
        if len(first3) == 3:
            break
        if e.kind == "send" and e.host == "X" and e.segment is not None:
            first3.add((e.segment.src, e.segment.sport))
    keep = []
    for e in sim.events:
        seg = e.segment
        if seg is not None and A_ADDR not in (seg.src, seg.dst):
            if (seg.src, seg.sport) not in first3 and (seg.dst, seg.dport) not in first3:
                continue
        elif e.conn is not None and e.host == "B" and ">A:" not in e.conn and "(listen)" not in e.conn:
            continue
        keep.append(e)
    run = _finish(sim, "syn-flood", seed, keep[:400])
    run.series = main["series"]
    off, on = (main, other) if p["syncookies"] == 0 else (other, main)
    run.summary["values"] = {"cookies_off": off["info"], "cookies_on": on["info"]}
    return run


def _flood_check(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    off, on = v["cookies_off"], v["cookies_on"]
    return [
        claim(
            "Spoofed SYNs fill the SYN queue (the 'half-connection queue' of Chinese texts) with SYN_RCVD entries up to "
            "its limit.",
            "伪造源地址的 SYN 用 SYN_RCVD 条目填满 SYN 队列（半连接队列），直到上限。",
            off["peak_syn_rcvd"] == off["syn_queue_limit"] and off["synrcvd_states_only"],
            f"syncookies=0: SYN queue peaked at {off['peak_syn_rcvd']} of {off['syn_queue_limit']} "
            f"({off['limit_rule']}); {off['flood_syns']} flood SYNs",
        ),
        claim(
            "The SYN-ACKs go to addresses nobody answers for: the entries are half-finished handshakes, "
            "not half-open connections (neither side ever reached ESTABLISHED).",
            "SYN-ACK 发往无人应答的地址：这些条目是未完成的握手，而不是半开连接（双方都从未进入 ESTABLISHED）。",
            off["no_route"] > 0 and off["synrcvd_states_only"],
            f"{off['no_route']} SYN-ACKs (with retransmissions) went nowhere",
        ),
        claim(
            "With tcp_syncookies=0 the legitimate client's SYNs are dropped and its connect() times out.",
            "tcp_syncookies=0 时，正常客户端的 SYN 被丢弃，connect() 超时。",
            off["completed"] == 0 and off["timeouts"] == 1 and off["stats"]["ListenDrops"] > 0,
            f"A sent {off['a_syns']} SYNs, gave up after {p['timeout']:g} s; ListenDrops "
            f"{off['stats']['ListenDrops']} (TCPReqQFullDrop {off['stats']['TCPReqQFullDrop']})",
        ),
        claim(
            "With tcp_syncookies=1 the server answers with a cookie instead of queueing: the client connects.",
            "tcp_syncookies=1 时，服务端用 cookie 应答而不入队：客户端连接成功。",
            on["completed"] == 1 and on["stats"]["SyncookiesSent"] > 0 and on["stats"]["SyncookiesRecv"] >= 1,
            f"A ESTABLISHED at t={on['established_at']}; SyncookiesSent {on['stats']['SyncookiesSent']}, "
            f"SyncookiesRecv {on['stats']['SyncookiesRecv']}",
        ),
    ]


def _flood_narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    off, on = v["cookies_off"], v["cookies_on"]
    en = (
        f"Host X sends {off['flood_syns']} SYNs in {p['flood_duration']:g} s from spoofed addresses. Each one "
        f"leaves a SYN_RCVD entry whose SYN-ACK goes nowhere and is retransmitted for about a minute: with "
        f"tcp_syncookies=0 the SYN queue (the 'half-connection queue', {off['syn_queue_limit']} entries: {off['limit_rule']}) is "
        f"full at once, {off['stats']['ListenDrops']} SYNs are dropped — including all {off['a_syns']} of "
        f"the legitimate client A, whose connect() gives up after {p['timeout']:g} s. With tcp_syncookies=1 the "
        f"server stops queueing when the queue ({on['syn_queue_limit']} entries: {on['limit_rule']}) is full and encodes the "
        f"connection in the SYN-ACK's sequence number ({on['stats']['SyncookiesSent']} cookies sent): A's ACK "
        f"returns a valid cookie and A is ESTABLISHED at t={_t(on['established_at'])} s. Note: the SYN queue "
        f"holds half-finished handshakes; 'half-open connections' (one side gone) are a different thing."
    )
    zh = (
        f"主机 X 在 {p['flood_duration']:g} 秒内用伪造地址发出 {off['flood_syns']} 个 SYN。每个都留下一个 SYN_RCVD 条目，其 SYN-ACK "
        f"无人接收并持续重传约一分钟：tcp_syncookies=0 时 SYN 队列（半连接队列，{off['syn_queue_limit']} 个条目：{off['limit_rule']}）"
        f"立刻被占满，{off['stats']['ListenDrops']} 个 SYN 被丢弃——包括正常客户端 A 的全部 {off['a_syns']} 个，A 的 connect() "
        f"在 {p['timeout']:g} 秒后放弃。tcp_syncookies=1 时，队列（{on['syn_queue_limit']} 个条目：{on['limit_rule']}）满后服务端不再入队，而是把连接信息"
        f"编码进 SYN-ACK 的序列号（发出 {on['stats']['SyncookiesSent']} 个 cookie）：A 的 ACK 带回有效 cookie，A 在 "
        f"t={_t(on['established_at'])} 秒进入 ESTABLISHED。注意：SYN 队列里是未完成的握手；“半开连接”（一方已消失）是另一回事。"
    )
    return en, zh


register(
    Scenario(
        id="syn-flood",
        title="SYN flood: the SYN queue (the 'half-connection queue')",
        title_zh="SYN 洪泛：SYN 队列（半连接队列）",
        claim="SYN_RCVD fills the SYN queue, legit clients' SYNs are dropped; syncookies restore service. "
        "The 'half-connection queue' of Chinese texts means the SYN queue, not half-open connections.",
        claim_zh="SYN_RCVD 占满 SYN 队列，正常客户端的 SYN 被丢弃；syncookies 恢复服务。“半连接队列”指 SYN 队列，而不是半开连接。",
        params={
            "syncookies": Param(
                0,
                "server's net.ipv4.tcp_syncookies for the main run (the other value is run too)",
                "主运行中服务端的 tcp_syncookies（另一取值也会运行）",
                choices=(0, 1, 2),
            ),
            "backlog": Param(
                64,
                "listen() backlog (the SYN queue holds backlog + 1)",
                "listen() backlog（SYN 队列可容纳 backlog + 1）",
                lo=0,
                hi=65535,
            ),
            "max_syn_backlog": Param(
                128,
                "net.ipv4.tcp_max_syn_backlog (without cookies its last quarter stays free)",
                "tcp_max_syn_backlog（不开 syncookies 时保留最后四分之一）",
                lo=1,
                hi=65536,
            ),
            "flood_rate": Param(
                200.0, "spoofed SYNs per second", "每秒伪造 SYN 数", unit="SYN/s", lo=0.1, hi=100_000.0
            ),
            "flood_duration": Param(
                10.0, "seconds of flood", "洪泛持续时间（秒）", unit="s", lo=0.1, hi=3600.0
            ),
            "client_at": Param(
                2.0,
                "when the legitimate client connects (s)",
                "正常客户端发起连接的时间（秒）",
                unit="s",
                lo=0.0,
                hi=3600.0,
            ),
            "timeout": Param(
                8.0,
                "legit client's connect timeout (s)",
                "正常客户端的连接超时（秒）",
                unit="s",
                lo=0.01,
                hi=3600.0,
            ),
        },
        simulate=_flood_simulate,
        build=_flood_build,
        lab=True,
        check=_flood_check,
        narrate=_flood_narrate,
        tags=("limits", "listen"),
    )
)


# ============================================================================================================
# accept-queue-overflow
# ============================================================================================================
def _aq_build(p: P) -> Script:
    """The same arrivals as a script (the lab runs it): backlog connections one after the other, three at once,
    one late; the server accept()s one every accept_interval seconds."""
    _need(p, "backlog", 1, 64)
    _need(p, "accept_interval", 0.1, 60)
    _need(p, "duration", 1.0, 600)
    _need(p, "somaxconn", 1, 65535)
    d = p["delay"]
    b = min(p["backlog"], p["somaxconn"])
    times = [i * (2 * d + 0.1) for i in range(b)]
    t_burst = b * (2 * d + 0.1)
    times += [t_burst + 0.001 * i for i in range(3)] + [t_burst + 6 * d]
    steps: list[Any] = [Listen(0.0, "B", 80, backlog=p["backlog"], accept=False)]
    steps += [Connect(t, "A", "B", 80, sock=f"c{i}") for i, t in enumerate(times)]
    k = 1
    while k * p["accept_interval"] <= p["duration"] and k <= len(times):
        steps.append(Accept(k * p["accept_interval"], "B", sock=_lab_label(k - 1)))
        k += 1
    b_cfg = {"abort_on_overflow": bool(p["abort_on_overflow"]), "syncookies": 0, "somaxconn": p["somaxconn"]}
    hosts = (HostSpec("A", A_ADDR, "clients"), HostSpec("B", B_ADDR, "server (slow accept())", b_cfg))
    return Script(hosts, tuple(steps), LinkSpec(delay=d), duration=p["duration"])


def _aq_simulate(p: P, seed: int) -> Run:
    _need(p, "backlog", 1, 64)
    _need(p, "accept_interval", 0.1, 60)
    _need(p, "duration", 1.0, 600)
    sim = _sim(p, seed)
    ha = _host(sim, "A", A_ADDR, "clients")
    abort = bool(p["abort_on_overflow"])
    _need(p, "somaxconn", 1, 65535)
    hb = _host(
        sim,
        "B",
        B_ADDR,
        "server (slow accept())",
        backlog=p["backlog"],
        abort_on_overflow=abort,
        syncookies=0,
        somaxconn=p["somaxconn"],
    )
    server = Server(sim, hb, 80, backlog=p["backlog"], accept_interval=p["accept_interval"])
    lst = server.listener
    b = lst.backlog
    rtt = 2 * p["delay"]
    # backlog connections one after the other fill the queue to backlog; then three at (almost) once: all three
    # SYNs find room in the SYN queue, but only the first ACK finds room in the accept queue (backlog + 1).
    times = [i * (rtt + 0.1) for i in range(b)]
    t_burst = b * (rtt + 0.1)
    # 1 ms apart: no two timers share a deadline (the stack orders equal deadlines by object id, which is not
    # reproducible from run to run).
    times += [t_burst + 0.001 * i for i in range(3)]
    t_late = t_burst + 3 * rtt
    times.append(t_late)
    ShortConnClient(sim, ha, B_ADDR, 80, times=times, request_bytes=0)
    series = _sampler(
        sim,
        0.25,
        p["duration"],
        {
            "B.accept_queue": lambda: len(lst.accept_queue),
            "B.SYN_RCVD": lambda: len(lst.syn_queue),
            "B.accepted": lambda: server.stats.accepted,
        },
    )
    sim.run(p["duration"])
    ev = sim.events
    # Per client port: when A became ESTABLISHED and whether B's side was still SYN_RCVD then.
    a_est = {
        _conn_port(e, "A"): round(e.t, 6)
        for e in ev
        if e.host == "A" and e.kind == "state" and e.to_state == "ESTABLISHED"
    }
    b_est = {
        _conn_port(e, "B"): round(e.t, 6)
        for e in ev
        if e.host == "B" and e.kind == "state" and e.to_state == "ESTABLISHED"
    }
    # The client is ESTABLISHED when the SYN-ACK arrives; the server normally follows one delay later, when
    # the ACK arrives. Later than that = the ACK was dropped at the full accept queue.
    ghost = sorted(
        pt
        for pt, t in a_est.items()
        if pt is not None and (b_est.get(pt) is None or b_est[pt] > t + p["delay"] + 1e-6)
    )
    ghost_port = ghost[0] if ghost else None
    synacks = sum(
        1
        for e in ev
        if e.host == "B"
        and e.kind == "send"
        and e.segment is not None
        and e.segment.flags == "SA"
        and e.segment.dport == ghost_port
    )
    opened = [
        _conn_port(e, "A") for e in ev if e.host == "A" and (e.call is AppCall.CONNECT and e.errno is None)
    ]
    late_port = opened[-1] if opened else None
    late_syns = sum(
        1
        for e in ev
        if e.host == "A"
        and e.kind == "send"
        and e.segment is not None
        and e.segment.flags == "S"
        and e.segment.sport == late_port
    )
    resets = [e for e in ev if e.host == "A" and e.errno == "ECONNRESET"]
    run = _finish(
        sim,
        "accept-queue-overflow",
        seed,
        _sample(ev, {pt for pt in (opened[0] if opened else None, ghost_port, late_port) if pt is not None}),
    )
    run.series = series
    run.summary["values"] = {
        "backlog": b,
        "requested_backlog": p["backlog"],
        "somaxconn": p["somaxconn"],
        "peak_accept_queue": max(series["B.accept_queue"]),
        "stats": dict(lst.stats),
        "ghost_port": ghost_port,
        "ghost_client_established": a_est.get(ghost_port),
        "ghost_server_established": b_est.get(ghost_port),
        "ghost_synacks": synacks,
        "late_port": late_port,
        "late_syns": late_syns,
        "late_server_established": b_est.get(late_port),
        "accepted": server.stats.accepted,
        "clients": len(times),
        "resets": len(resets),
        "first_accept": next(
            (e.t for e in ev if e.host == "B" and (e.call is AppCall.ACCEPT and e.errno is None)), None
        ),
    }
    return run


def _aq_check(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    st = v["stats"]
    checks = [
        claim(
            "listen()'s backlog is silently capped by net.core.somaxconn: the queue limit is min(backlog, somaxconn), "
            "not only what the application asked for.",
            "listen() 的 backlog 会被 net.core.somaxconn 悄悄截断：队列上限是 min(backlog, somaxconn)，而不只是应用请求的值。",
            v["backlog"] == min(v["requested_backlog"], v["somaxconn"]),
            f"listen(backlog={v['requested_backlog']}) with somaxconn={v['somaxconn']} -> effective backlog {v['backlog']}",
        ),
        claim(
            f"The slow server's accept queue fills to backlog + 1 = {v['backlog'] + 1}.",
            f"慢速 accept 的服务端全连接队列涨到 backlog + 1 = {v['backlog'] + 1}。",
            v["peak_accept_queue"] == v["backlog"] + 1,
            f"peak {v['peak_accept_queue']}",
        ),
        claim(
            "New SYNs are dropped while the accept queue is full (ListenOverflows): the client retransmits its SYN.",
            "全连接队列满时新的 SYN 被丢弃（ListenOverflows）：客户端重传 SYN。",
            st["ListenOverflows"] > 0 and v["late_syns"] >= 2,
            f"ListenOverflows {st['ListenOverflows']}; the late client sent {v['late_syns']} SYNs",
        ),
    ]
    if not p["abort_on_overflow"]:
        checks += [
            claim(
                "tcp_abort_on_overflow=0: a final ACK that meets a full queue is dropped — the client is "
                "ESTABLISHED while the server still has the connection in SYN_RCVD.",
                "tcp_abort_on_overflow=0：遇到满队列的第三次握手 ACK 被丢弃——客户端已 ESTABLISHED，服务端仍是 SYN_RCVD。",
                v["ghost_port"] is not None and v["ghost_client_established"] is not None,
                f"client port {v['ghost_port']}: ESTABLISHED at A t={v['ghost_client_established']}, at B "
                f"t={v['ghost_server_established']}",
            ),
            claim(
                "The server retransmits its SYN-ACK for that connection and completes it once accept() makes room.",
                "服务端为该连接重传 SYN-ACK，并在 accept() 腾出空间后完成它。",
                v["ghost_synacks"] >= 2 and v["ghost_server_established"] is not None and v["resets"] == 0,
                f"{v['ghost_synacks']} SYN-ACKs; first accept() at t={v['first_accept']}; {v['accepted']} of "
                f"{v['clients']} connections accepted by the end",
            ),
        ]
    else:
        checks.append(
            claim(
                "tcp_abort_on_overflow=1: the final ACK is answered with RST — the client, which thought it was "
                "ESTABLISHED, gets ECONNRESET.",
                "tcp_abort_on_overflow=1：第三次握手的 ACK 收到 RST——自以为已 ESTABLISHED 的客户端得到 ECONNRESET。",
                v["resets"] >= 1 and v["ghost_port"] is not None,
                f"{v['resets']} ECONNRESET at the client; first affected client port {v['ghost_port']}",
            )
        )
    return checks


def _aq_narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    st = v["stats"]
    if not p["abort_on_overflow"]:
        en = (
            f"The server listens with backlog {v['backlog']} but accept()s only one connection every "
            f"{p['accept_interval']:g} s. The accept queue fills to {v['peak_accept_queue']} (backlog + 1). "
            f"Three clients then connect at once: their SYNs still fit the SYN queue, but only one final ACK fits "
            f"the accept queue. For port {v['ghost_port']} the client is ESTABLISHED at "
            f"t={_t(v['ghost_client_established'])} s while the server drops the ACK, keeps SYN_RCVD and sends "
            f"{v['ghost_synacks']} SYN-ACKs in all; the server side only completes at "
            f"t={_t(v['ghost_server_established'])} s. A later client's SYN is dropped too ({v['late_syns']} "
            f"SYNs sent; ListenOverflows {st['ListenOverflows']}). Nothing is reset: the client just waits."
        )
        zh = (
            f"服务端以 backlog {v['backlog']} 监听，但每 {p['accept_interval']:g} 秒才 accept() 一个连接。全连接队列涨到 "
            f"{v['peak_accept_queue']}（backlog + 1）。随后三个客户端同时连接：它们的 SYN 还能进入 SYN 队列，但只有一个 ACK 能进入全连接队列。"
            f"端口 {v['ghost_port']} 的客户端在 t={_t(v['ghost_client_established'])} 秒已 ESTABLISHED，而服务端丢弃该 ACK、保持 "
            f"SYN_RCVD，共发出 {v['ghost_synacks']} 个 SYN-ACK；服务端一侧直到 t={_t(v['ghost_server_established'])} 秒才完成。"
            f"之后的客户端 SYN 也被丢弃（发出 {v['late_syns']} 个 SYN；ListenOverflows {st['ListenOverflows']}）。没有复位：客户端只是在等。"
        )
    else:
        en = (
            f"Same slow server with tcp_abort_on_overflow=1: when a final ACK meets the full accept queue "
            f"(backlog + 1 = {v['peak_accept_queue']}), the server answers RST. The client on port "
            f"{v['ghost_port']}, ESTABLISHED a moment before, gets ECONNRESET ({v['resets']} such resets): "
            f"failures become visible at once instead of stalls, which is why it is off by default."
        )
        zh = (
            f"同样的慢速服务端，但 tcp_abort_on_overflow=1：第三次握手的 ACK 遇到满的全连接队列（backlog + 1 = "
            f"{v['peak_accept_queue']}）时，服务端回 RST。端口 {v['ghost_port']} 的客户端刚刚还是 ESTABLISHED，随即得到 "
            f"ECONNRESET（共 {v['resets']} 次）：失败立即可见而不是卡住，这也是它默认关闭的原因。"
        )
    return en, zh


register(
    Scenario(
        id="accept-queue-overflow",
        title="Accept queue overflow: a slow accept()",
        title_zh="全连接队列溢出：accept() 太慢",
        claim="Accept queue full (backlog+1); the kernel drops the final ACK (tcp_abort_on_overflow=0: client "
        "ESTABLISHED, server SYN_RCVD retransmits SYN-ACK) and new SYNs (ListenOverflows); =1 sends RST.",
        claim_zh="全连接队列满（backlog+1）；内核丢弃第三次握手的 ACK（tcp_abort_on_overflow=0：客户端 ESTABLISHED，服务端 SYN_RCVD "
        "并重传 SYN-ACK）以及新的 SYN（ListenOverflows）；=1 时回 RST。",
        params={
            "backlog": Param(4, "listen() backlog", "listen() 的 backlog", lo=0, hi=65535),
            "somaxconn": Param(
                4096,
                "net.core.somaxconn: caps every listen() backlog",
                "net.core.somaxconn：限制所有 listen() 的 backlog",
                lo=1,
                hi=65535,
            ),
            "accept_interval": Param(
                5.0,
                "the server accept()s one connection every this many seconds",
                "服务端每隔多少秒 accept() 一个连接",
                unit="s",
                lo=0.01,
                hi=3600.0,
            ),
            "abort_on_overflow": Param(False, "net.ipv4.tcp_abort_on_overflow", "tcp_abort_on_overflow"),
            "duration": Param(30.0, "seconds to run", "运行时长（秒）", unit="s", lo=0.1, hi=3600.0),
        },
        simulate=_aq_simulate,
        build=_aq_build,
        lab=True,
        check=_aq_check,
        narrate=_aq_narrate,
        tags=("limits", "listen"),
    )
)


# ============================================================================================================
# pool-dead-connections
# ============================================================================================================
def _pool_run(p: P, seed: int, good: bool, record: bool) -> tuple[Simulator, dict[str, Any]]:
    sim = _sim(p, seed, record)
    ha = _host(sim, "A", A_ADDR, "client with a " + ("validating, evicting pool" if good else "naive pool"))
    hb = _host(sim, "B", B_ADDR, f"server (idle timeout {p['server_idle']:g} s)")
    server = Server(sim, hb, 80, idle_timeout=p["server_idle"])
    bursts = [int(x) for x in str(p["bursts"]).split(",") if x.strip()]
    gap = p["gap"]
    times = []
    for i, n in enumerate(bursts):
        times += [i * gap + 0.001 * k for k in range(n)]
    pool = PoolClient(
        sim, ha, B_ADDR, 80, times=times, validate=good, max_idle=p["max_idle"] if good else None
    )
    until = len(bursts) * gap
    series = _sampler(
        sim,
        1.0,
        until,
        {
            "A.CLOSE_WAIT": lambda: _count(ha, "CLOSE_WAIT"),
            "A.held_sockets": lambda: len(pool.held()),
            "A.errors": lambda: pool.stats.errors,
            "A.opened": lambda: pool.stats.opened,
        },
    )
    sim.run(until)
    held = pool.held()
    info = {
        "requests": pool.stats.requests,
        "completed": pool.stats.completed,
        "errors": pool.stats.errors,
        "opened": pool.stats.opened,
        "reused": pool.stats.reused,
        "discarded_dead": pool.stats.discarded_dead,
        "evicted_idle": pool.stats.evicted_idle,
        "held_sockets": len(held),
        "close_wait_held": sum(1 for ep in held if ep.state.value == "CLOSE_WAIT"),
        "close_wait_peak": max(series["A.CLOSE_WAIT"]),
        "server_idle_closed": server.stats.idle_closed,
        "errnos": dict(pool.stats.errnos),
        "rsts_from_server": sum(
            1
            for e in sim.events
            if e.host == "A" and e.kind == "recv" and e.segment is not None and "R" in e.segment.flags
        )
        if record
        else None,
    }
    return sim, {"info": info, "series": series}


def _pool_build(p: P) -> Script:
    """The naive pool's failure as a script (the lab runs it): a pooled connection's request and response; the
    server closes it after server_idle; the next burst reuses it (the naive pool does not look): the request
    meets a closed socket and draws a RST; the pool then opens a new connection, which works."""
    _need(p, "server_idle", 0.5, 3600)
    _need(p, "gap", 0.5, 3600)
    if p["gap"] <= p["server_idle"] + 0.5:
        raise UsageError("the lab script needs gap > server_idle + 0.5 s (the reuse comes after the close)")
    d, gap = p["delay"], p["gap"]
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80, sock="c0"),
        Send(3 * d, "A", 100, sock="c0"),
        Send(5 * d, "B", 200, sock="s"),
        Close(5 * d + p["server_idle"], "B", sock="s"),  # the server's keep-alive idle timeout
        Send(gap, "A", 100, sock="c0"),  # the naive pool hands out the dead connection
        Close(gap + 4 * d, "A", sock="c0"),  # the request failed: the pool drops it
        Connect(gap + 4 * d, "A", "B", 80, sock="c1"),
        Send(gap + 7 * d, "A", 100, sock="c1"),
        Send(gap + 9 * d, "B", 200, sock="s2"),
    )
    hosts = (HostSpec("A", A_ADDR, "client with a naive pool"), HostSpec("B", B_ADDR, "server"))
    return Script(hosts, steps, LinkSpec(delay=d), duration=gap + 2.0)


def _pool_simulate(p: P, seed: int) -> Run:
    _need(p, "server_idle", 0.5, 3600)
    _need(p, "max_idle", 0.1, 3600)
    _need(p, "gap", 0.5, 3600)
    try:
        bursts = [int(x) for x in str(p["bursts"]).split(",") if x.strip()]
    except ValueError:
        raise UsageError(
            f"bursts={p['bursts']!r}: expected comma-separated request counts, e.g. 6,2,2,6"
        ) from None
    if not bursts or any(not (1 <= b <= 200) for b in bursts) or len(bursts) > 50:
        raise UsageError("bursts: 1 to 50 bursts of 1 to 200 requests each")
    sim, naive = _pool_run(p, seed, False, True)
    _, good = _pool_run(p, seed, True, True)
    # Events: the first two bursts of the naive pool (the whole run is in the series and the values).
    run = _finish(
        sim, "pool-dead-connections", seed, [e for e in sim.events if e.t < 2 * p["gap"] + 1.0][:400]
    )
    series = {"t": naive["series"]["t"]}
    for tag, res in (("naive", naive), ("validating", good)):
        for k, vals in res["series"].items():
            if k != "t":
                series[f"{tag}.{k}"] = vals
    run.series = series
    run.summary["values"] = {"naive": naive["info"], "validating": good["info"]}
    return run


def _pool_check(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    nv, gd = v["naive"], v["validating"]
    return [
        claim(
            "The server closes idle pooled connections; the client's kernel ACKs the FIN and they sit in "
            "CLOSE_WAIT inside the pool.",
            "服务端关闭空闲的池化连接；客户端内核确认 FIN 后，这些连接以 CLOSE_WAIT 躺在连接池里。",
            nv["server_idle_closed"] > 0 and nv["close_wait_peak"] > 0,
            f"server closed {nv['server_idle_closed']} idle connections; client CLOSE_WAIT peaked at "
            f"{nv['close_wait_peak']}",
        ),
        claim(
            "The naive pool hands them out: the server answers the request with RST and the request fails "
            "(on Linux the read gets EOF — 'remote end closed connection without response' — and the next write "
            "EPIPE 'Broken pipe'; ECONNRESET 'Connection reset by peer' when the RST beats the FIN).",
            "朴素连接池把它们交给应用：服务端对请求回 RST，请求失败（Linux 上读到 EOF——“对端未响应即关闭连接”——"
            "下一次写得到 EPIPE “Broken pipe”；若 RST 先于 FIN 到达则是 ECONNRESET “Connection reset by peer”）。",
            nv["errors"] > 0 and (nv["rsts_from_server"] or 0) >= nv["errors"],
            f"{nv['errors']} of {nv['requests']} requests failed {nv['errnos']}; {nv['rsts_from_server']} RSTs from "
            f"the server",
        ),
        claim(
            "... and the application opens new connections while dead ones pile up (sockets held, CLOSE_WAIT).",
            "……应用不断新建连接，死连接越积越多（持有的套接字、CLOSE_WAIT）。",
            nv["opened"] > gd["opened"] - 1
            and nv["held_sockets"] > gd["held_sockets"]
            and nv["close_wait_held"] > 0,
            f"naive: opened {nv['opened']}, holds {nv['held_sockets']} sockets ({nv['close_wait_held']} in "
            f"CLOSE_WAIT) at the end",
        ),
        claim(
            f"A validating pool with max_idle {p['max_idle']:g} s < the server's {p['server_idle']:g} s sees no "
            f"errors and holds no CLOSE_WAIT.",
            f"校验连接并设置 max_idle {p['max_idle']:g} 秒（小于服务端 {p['server_idle']:g} 秒）的连接池没有错误，也不持有 CLOSE_WAIT。",
            gd["errors"] == 0 and gd["close_wait_held"] == 0 and gd["completed"] == gd["requests"],
            f"validating: {gd['errors']} errors, {gd['completed']}/{gd['requests']} completed, opened "
            f"{gd['opened']}, evicted {gd['evicted_idle']} idle, discarded {gd['discarded_dead']} dead, holds "
            f"{gd['held_sockets']} sockets ({gd['close_wait_held']} CLOSE_WAIT)",
        ),
    ]


def _pool_narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    nv, gd = v["naive"], v["validating"]
    en = (
        f"Requests come in bursts ({p['bursts']}) every {p['gap']:g} s; the server closes connections idle for "
        f"{p['server_idle']:g} s. The naive pool keeps the closed ones (CLOSE_WAIT on the client, peak "
        f"{nv['close_wait_peak']}) and hands them out: {nv['errors']} of {nv['requests']} requests met "
        f"a RST from the server ({', '.join(f'{k} x{n}' for k, n in nv['errnos'].items())}) and were retried on new connections; it opened {nv['opened']} connections "
        f"and ends holding {nv['held_sockets']} sockets, {nv['close_wait_held']} of them in CLOSE_WAIT — the "
        f"'connection count keeps growing' symptom. The validating pool (check before use, evict after "
        f"{p['max_idle']:g} s idle) had {gd['errors']} errors, opened {gd['opened']}, evicted "
        f"{gd['evicted_idle']} and holds {gd['held_sockets']} sockets, {gd['close_wait_held']} in CLOSE_WAIT."
    )
    zh = (
        f"请求以突发方式到来（{p['bursts']}），每 {p['gap']:g} 秒一次；服务端关闭空闲 {p['server_idle']:g} 秒的连接。朴素连接池保留这些已关闭的连接"
        f"（客户端 CLOSE_WAIT，峰值 {nv['close_wait_peak']}）并交给应用：{nv['requests']} 个请求中有 {nv['errors']} 个遇到服务端的 RST"
        f"（{', '.join(f'{k} x{n}' for k, n in nv['errnos'].items())}），在新连接上重试；它共打开 {nv['opened']} 条连接，结束时持有 {nv['held_sockets']} 个套接字，"
        f"其中 {nv['close_wait_held']} 个处于 CLOSE_WAIT——这就是“连接数一直涨”。校验连接（使用前检查、空闲 {p['max_idle']:g} 秒即淘汰）"
        f"的连接池错误 {gd['errors']} 次，打开 {gd['opened']} 条，淘汰 {gd['evicted_idle']} 条，持有 {gd['held_sockets']} 个套接字，"
        f"CLOSE_WAIT {gd['close_wait_held']} 个。"
    )
    return en, zh


register(
    Scenario(
        id="pool-dead-connections",
        title="Pool hands out dead connections",
        title_zh="连接池交出已死的连接",
        claim="A naive pool hands out connections the server closed: 'Connection reset by peer', new connections "
        "pile up; a validating, evicting pool fixes it.",
        claim_zh="朴素连接池交出服务端已关闭的连接：“Connection reset by peer”，新连接越积越多；校验并淘汰空闲连接的连接池解决问题。",
        params={
            "server_idle": Param(
                5.0,
                "server keep-alive idle timeout (s)",
                "服务端 keep-alive 空闲超时（秒）",
                unit="s",
                lo=0.1,
                hi=3600.0,
            ),
            "max_idle": Param(
                4.0,
                "validating pool's max idle time (s), below the server's",
                "校验型连接池的最大空闲时间（秒），需小于服务端",
                unit="s",
                lo=0.01,
                hi=3600.0,
            ),
            "bursts": Param(
                "6,2,2,6,2",
                "requests per burst, comma-separated",
                "每次突发的请求数，逗号分隔",
                pattern=r"\d{1,3}(,\d{1,3}){0,49}",
            ),
            "gap": Param(10.0, "seconds between bursts", "突发间隔（秒）", unit="s", lo=0.01, hi=3600.0),
        },
        simulate=_pool_simulate,
        build=_pool_build,
        lab=True,
        check=_pool_check,
        narrate=_pool_narrate,
        tags=("limits", "pool", "close_wait"),
    )
)

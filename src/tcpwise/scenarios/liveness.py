"""Is the other side still there? Half-open connections and the timers that find them.

A TCP connection has no heartbeat of its own: an idle endpoint learns nothing until it sends (RFC 9293 §3.10.7.1:
a segment for a connection the peer no longer has draws a RST) or a timer fires. These scenarios measure, in
virtual time, how long each mechanism takes with Linux's knobs:

* ``half-open-crash``   — the peer's host dies and comes back without a FIN; keepalive (RFC 1122 §4.2.3.6,
  Linux tcp_keepalive_timer) detects it after keepalive_time + keepalive_intvl * keepalive_probes.
* ``half-open-partition`` — only B->A is cut; the sender retransmits with exponential backoff (RFC 6298 §5.5,
  capped at TCP_RTO_MAX = 120 s) until tcp_retries2's time budget (tcp_model_timeout: 924.6 s for 15) or
  TCP_USER_TIMEOUT (RFC 5482).
* ``heartbeat-asymmetry`` — an application heartbeat slower than the server's idle timeout.
* ``keepalive`` — probes, the peer's ACKs, and the arithmetic of detection, tuned vs default.
* ``middlebox-idle-timeout`` — a stateful firewall forgets an idle flow and black-holes it.
* ``rst-on-timeout`` — nginx ``reset_timedout_connection``: closing with RST skips TIME_WAIT and throws away
  the unsent response.

Every number a narrative quotes is measured from the run (or, for the default-knob comparison of
``keepalive``, from a second, unrecorded run of the same script).
"""

from __future__ import annotations

import bisect
from itertools import pairwise
from typing import Any

from tcpwise.endpoint.rto import linux_retrans_timeout
from tcpwise.errors import UsageError
from tcpwise.events import Check, Event, Run
from tcpwise.i18n import event_text
from tcpwise.scenarios import query as q
from tcpwise.scenarios.base import Param, Scenario, claim, register
from tcpwise.scenarios.basic import A_ADDR, B_ADDR, TW_PARAM
from tcpwise.scenarios.fmt import fmt_time
from tcpwise.script import (
    Abort,
    Close,
    Connect,
    Crash,
    HostSpec,
    LinkSpec,
    Listen,
    Partition,
    Reboot,
    Script,
    Send,
)
from tcpwise.sim.runner import run_script
from tcpwise.vocab import STATE_NAMES, AppCall, DropReason
from tcpwise.wire.seq import seq_add, seq_gt

P = dict[str, Any]
EPS = 1e-6


def _near(run: Run, got: float, want: float) -> bool:
    """Equal in the model; on the kernel within its timer wheel's rounding (under 1/8 of the timeout) plus the
    lab's delay line and state polling (docs/lab.md)."""
    tol = EPS if run.world == "sim" else 0.13 * abs(want) + 0.03
    return abs(got - want) < tol


KA_PARAMS: dict[str, Param] = {
    "keepalive_time": Param(
        7200.0,
        "net.ipv4.tcp_keepalive_time / TCP_KEEPIDLE (s)",
        "空闲多久后开始探测（秒）",
        unit="s",
        lo=1.0,
        hi=32767.0,
    ),
    "keepalive_intvl": Param(
        75.0,
        "net.ipv4.tcp_keepalive_intvl / TCP_KEEPINTVL (s)",
        "探测间隔（秒）",
        unit="s",
        lo=1.0,
        hi=32767.0,
    ),
    "keepalive_probes": Param(
        9, "net.ipv4.tcp_keepalive_probes / TCP_KEEPCNT", "放弃前的探测次数", lo=1, hi=127
    ),
}


def _hosts(a: dict[str, Any] | None = None, b: dict[str, Any] | None = None) -> tuple[HostSpec, ...]:
    return (HostSpec("A", A_ADDR, "client", dict(a or {})), HostSpec("B", B_ADDR, "server", dict(b or {})))


def _ka_cfg(p: P, on: bool | None = None) -> dict[str, Any]:
    return {
        "keepalive": p.get("keepalive", True) if on is None else on,
        "keepalive_time": p["keepalive_time"],
        "keepalive_intvl": p["keepalive_intvl"],
        "keepalive_probes": p["keepalive_probes"],
    }


def _check_ka(p: P) -> None:
    if p["keepalive_time"] <= 0 or p["keepalive_intvl"] <= 0 or not 1 <= p["keepalive_probes"] <= 127:
        raise UsageError(
            "keepalive_time and keepalive_intvl must be > 0, keepalive_probes 1..127 (TCP_KEEPCNT)"
        )


def _seg_events(
    run: Run, kind: str, host: str, flags: str | None = None, t0: float = -1.0, t1: float = float("inf")
) -> list[Event]:
    return [
        e
        for e in run.events
        if e.kind == kind
        and e.host == host
        and e.segment is not None
        and (flags is None or e.segment.flags == flags)
        and t0 - 1e-9 <= e.t <= t1 + 1e-9
    ]


def _has_rst(events: list[Event]) -> bool:
    return any(e.segment is not None and "R" in e.segment.flags for e in events)


def _err(run: Run, host: str, errno: str) -> Event | None:
    return next((e for e in q.apps(run, host, AppCall.ERROR, errno=errno)), None)


def _last_recv_before(run: Run, host: str, t: float) -> float | None:
    ts = [e.t for e in q.recvs(run, host) if e.t <= t + 1e-9]
    return ts[-1] if ts else None


def _probes(run: Run, host: str) -> list[q.SegEvent]:
    """Keepalive probes: pure ACKs with SEG.SEQ = SND.NXT - 1 and no data (Linux tcp_xmit_probe_skb), where
    SND.NXT is tracked from the host's own earlier segments."""
    nxt: int | None = None
    out: list[q.SegEvent] = []
    for e in q.sends(run, host):
        seg = e.segment
        if seg is None:
            continue
        if nxt is not None and seg.flags == "A" and seg.len == 0 and seg.seq == seq_add(nxt, -1):
            out.append(e)
            continue
        end = seq_add(seg.seq, seg.len + ("S" in seg.flags) + ("F" in seg.flags))
        if nxt is None or seq_gt(end, nxt):
            nxt = end
    return out


def _data_end(run: Run, host: str) -> int | None:
    """SND.NXT after the host's data (the sequence number after its last data byte)."""
    ends = [
        seq_add(e.segment.seq, e.segment.len)
        for e in q.sends(run, host)
        if e.segment is not None and e.segment.len > 0
    ]
    if ends:
        return ends[-1]
    isn = q.isn_of(run, host)
    return None if isn is None else seq_add(isn, 1)


# ============================================================================================================
# half-open-crash
# ============================================================================================================
def _hoc_build(p: P) -> Script:
    _check_ka(p)
    if not 1.0 <= p["crash_at"] < p["reboot_at"] < p["send_at"]:
        raise UsageError("need 1 <= crash_at < reboot_at < send_at")
    a = _ka_cfg(p, p["keepalive"])
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80),
        Send(0.5, "A", 100),
        Send(0.6, "B", 100, sock="s"),
        Crash(p["crash_at"], "B"),
        Reboot(p["reboot_at"], "B"),
        Listen(p["reboot_at"], "B", 80),
        Send(p["send_at"], "A", 100),
    )
    return Script(_hosts(a), steps, LinkSpec(delay=p["delay"]), duration=p["send_at"] + 5.0)


def _hoc_check(run: Run, p: P) -> list[Check]:
    crash, reboot, send = p["crash_at"], p["reboot_at"], p["send_at"]
    # Until A itself sends something after B's reboot, nothing comes from B.
    a_next = next((e.t for e in q.sends(run, "A") if e.t >= reboot), send)
    b_after = _seg_events(run, "send", "B", t0=crash, t1=a_next - 1e-6)
    checks = [
        claim(
            "B's host crashes and comes back without sending a FIN or RST: nothing tells A.",
            "B 的主机崩溃后重启，没有发出 FIN 或 RST：没有任何东西通知 A。",
            not b_after,
            f"segments from B between the crash ({crash:g} s) and A's next segment after the "
            f"reboot ({a_next:g} s): {len(b_after)}",
        )
    ]
    last_rx = _last_recv_before(run, "A", crash)
    if not p["keepalive"]:
        changes = [e for e in q.state_events(run, "A") if crash <= e.t < send]
        rst = _seg_events(run, "send", "B", t0=send)
        err = _err(run, "A", "ECONNRESET")
        checks += [
            claim(
                f"Idle A never notices: it is still ESTABLISHED at {send:g} s, {send - crash:g} s after the crash.",
                f"空闲的 A 毫无察觉：崩溃 {send - crash:g} 秒后（{send:g} 秒时）它仍是 ESTABLISHED。",
                not changes and q.state_path(run, "A")[:2] == ["SYN_SENT", "ESTABLISHED"],
                f"A's state changes between crash and send: {len(changes)}",
            ),
            # A common claim corrected: `ss -s | grep half-open` finds nothing — there is no such state or line.
            claim(
                "On A the half-open connection is an ordinary ESTABLISHED socket: no state, and no `ss -s` line, "
                "says 'half-open' — it is invisible to the host that still believes in it.",
                "在 A 上，半开连接只是一个普通的 ESTABLISHED 套接字：没有哪个状态、也没有 `ss -s` 的哪一行叫“半开”——"
                "仍相信它的一方根本看不出来。",
                not changes
                and all(e.to_state in STATE_NAMES for e in q.state_events(run, "A"))
                and "ESTABLISHED" in q.state_path(run, "A"),
                f"A's states during the run: {' -> '.join(q.state_path(run, 'A'))}",
            ),
            claim(
                "When A finally sends, the rebooted B has no such connection and answers RST (RFC 9293 §3.10.7.1).",
                "A 终于发送数据时，重启后的 B 没有这条连接，回复 RST（RFC 9293 §3.10.7.1）。",
                _has_rst(rst),
                " ".join(e.segment.flags for e in rst if e.segment) or "no segment from B",
            ),
            claim(
                "A's application learns only now: ECONNRESET.",
                "A 的应用直到此时才知道：ECONNRESET。",
                err is not None and err.t >= send,
                event_text(err) if err else "no error",
            ),
        ]
        return checks
    expect = p["keepalive_time"] + p["keepalive_intvl"] * p["keepalive_probes"]
    err = _err(run, "A", "ETIMEDOUT")
    probes = [e for e in _probes(run, "A") if e.t > crash]
    measured = None if err is None or last_rx is None else err.t - last_rx
    dead = err is not None and err.t < reboot
    if last_rx is not None and reboot < last_rx + expect:
        # B is back before A would give up: the first probe after the reboot meets an empty stack -> RST.
        reset = _err(run, "A", "ECONNRESET")
        silent = [e for e in probes if e.t < reboot]
        after = [
            e for e in q.sends(run, "A") if e.t >= reboot
        ]  # a keepalive probe or data, whichever is first
        kind = ("keepalive probe" if after and after[0] in probes else "data segment") if after else "segment"
        checks += [
            claim(
                "Probes sent while B is down go unanswered.",
                "B 宕机期间发出的探测无人应答。",
                not [e for e in q.recvs(run, "A") if crash < e.t < reboot],
                f"{len(silent)} probes before the reboot",
            ),
            claim(
                "B is back with an empty stack before keepalive gives up: A's next segment draws a RST and A gets "
                "ECONNRESET at once.",
                "keepalive 放弃之前 B 已以空协议栈重启：A 的下一个报文招来 RST，A 立即得到 ECONNRESET。",
                reset is not None and bool(after) and 0 <= reset.t - after[0].t <= 2 * p["delay"] + EPS,
                f"first {kind} after the reboot at {fmt_time(after[0].t if after else None)}, ECONNRESET at "
                f"{fmt_time(reset.t if reset else None)}",
            ),
        ]
        return checks
    checks += [
        claim(
            f"With SO_KEEPALIVE A probes the silent peer: {p['keepalive_probes']} probes, "
            f"{p['keepalive_intvl']:g} s apart, none answered.",
            f"开启 SO_KEEPALIVE 后 A 探测沉默的对端：{p['keepalive_probes']} 个探测，间隔 {p['keepalive_intvl']:g} 秒，无一应答。",
            len(probes) == p["keepalive_probes"]
            and dead
            and all(abs(b.t - a.t - p["keepalive_intvl"]) < EPS for a, b in pairwise(probes)),
            f"{len(probes)} probes at {', '.join(f'{e.t:.1f}' for e in probes[:3])}{' ...' if len(probes) > 3 else ''}",
        ),
        claim(
            f"A learns of the crash keepalive_time + intvl*probes = {p['keepalive_time']:g} + "
            f"{p['keepalive_intvl']:g}*{p['keepalive_probes']} = {expect:g} s after the last segment it received "
            "(ETIMEDOUT).",
            f"A 在最后一次收到报文后 keepalive_time + intvl*probes = {p['keepalive_time']:g} + "
            f"{p['keepalive_intvl']:g}*{p['keepalive_probes']} = {expect:g} 秒得知崩溃（ETIMEDOUT）。",
            measured is not None and abs(measured - expect) < EPS,
            f"measured {measured if measured is None else round(measured, 6)} s "
            f"(last segment at {fmt_time(last_rx)}, ETIMEDOUT at {fmt_time(err.t if err else None)})",
        ),
    ]
    return checks


def _hoc_narrate(run: Run, p: P) -> tuple[str, str]:
    crash, send = p["crash_at"], p["send_at"]
    if not p["keepalive"]:
        err = _err(run, "A", "ECONNRESET")
        en = (
            f"A and B exchange a request and a response, then go quiet. At {crash:g} s B's host dies; it comes back "
            f"at {p['reboot_at']:g} s with an empty TCP stack. Nothing is sent, so A — idle, no keepalive — stays "
            f"ESTABLISHED for {send - crash:g} s: a half-open connection, invisible to A (ss shows it as an ordinary "
            f"ESTAB). Only when A sends at {send:g} s does B answer with RST, and A's application gets "
            f"ECONNRESET at {fmt_time(err.t if err else None)}."
        )
        zh = (
            f"A 和 B 交换一次请求和响应后沉默。{crash:g} 秒时 B 的主机崩溃，{p['reboot_at']:g} 秒时以空的 TCP 栈重启。"
            f"没有任何报文发出，所以空闲且未开 keepalive 的 A 在 {send - crash:g} 秒内一直是 ESTABLISHED：一条半开连接，"
            f"A 自己看不出来（ss 里只是普通的 ESTAB）。直到 A 在 {send:g} 秒发送数据，B 才回 RST，A 的应用在 "
            f"{fmt_time(err.t if err else None)} 得到 ECONNRESET。"
        )
        return en, zh
    err = _err(run, "A", "ETIMEDOUT")
    last_rx = _last_recv_before(run, "A", crash)
    m = None if err is None or last_rx is None else err.t - last_rx
    if err is None:
        reset = _err(run, "A", "ECONNRESET")
        en = (
            f"Same crash at {crash:g} s with SO_KEEPALIVE ({p['keepalive_time']:g}/{p['keepalive_intvl']:g}/"
            f"{p['keepalive_probes']}), but B is back at {p['reboot_at']:g} s, before keepalive would give up: "
            f"A's next segment (probe or data) reaches an empty stack, draws a RST, and A gets ECONNRESET at "
            f"{fmt_time(reset.t if reset else None)}."
        )
        zh = (
            f"同样在 {crash:g} 秒崩溃，A 开启了 SO_KEEPALIVE（{p['keepalive_time']:g}/{p['keepalive_intvl']:g}/"
            f"{p['keepalive_probes']}），但 B 在 {p['reboot_at']:g} 秒、keepalive 放弃之前就已重启：A 的下一个报文（探测或数据）到达空的协议栈，"
            f"招来 RST，A 在 {fmt_time(reset.t if reset else None)} 得到 ECONNRESET。"
        )
        return en, zh
    en = (
        f"Same crash at {crash:g} s, but A has SO_KEEPALIVE ({p['keepalive_time']:g}/{p['keepalive_intvl']:g}/"
        f"{p['keepalive_probes']}). After {p['keepalive_time']:g} s of silence A sends its first probe, then one "
        f"every {p['keepalive_intvl']:g} s; B is down, none is answered. A gives up with ETIMEDOUT at "
        f"{fmt_time(err.t if err else None)}: {m if m is None else round(m, 3)} s after the last segment it received"
        + (" — over two hours of believing in a dead peer." if (m or 0) >= 3600 else ".")
    )
    zh = (
        f"同样在 {crash:g} 秒崩溃，但 A 开启了 SO_KEEPALIVE（{p['keepalive_time']:g}/{p['keepalive_intvl']:g}/"
        f"{p['keepalive_probes']}）。沉默 {p['keepalive_time']:g} 秒后 A 发出第一个探测，之后每 {p['keepalive_intvl']:g} 秒一个；"
        f"B 已宕机，无一应答。A 在 {fmt_time(err.t if err else None)} 以 ETIMEDOUT 放弃：距最后一次收到报文 "
        f"{m if m is None else round(m, 3)} 秒"
        + ("——对一个已死的对端深信不疑两个多小时。" if (m or 0) >= 3600 else "。")
    )
    return en, zh


register(
    Scenario(
        id="half-open-crash",
        title="Half-open after the peer crashes",
        title_zh="对端崩溃后的半开连接",
        claim="B's host reboots without FIN; idle A never notices; when A sends, B answers RST; with keepalive A learns "
        "in time+intvl*probes (Linux default 7200+75*9 s).",
        claim_zh="B 的主机重启且未发 FIN；空闲的 A 毫无察觉；A 发送数据时 B 回 RST；开启 keepalive 时 A 在 "
        "time+intvl*probes 后得知（Linux 默认 7200+75*9 秒）。",
        params={
            "keepalive": Param(False, "SO_KEEPALIVE on A", "A 是否开启 SO_KEEPALIVE"),
            **KA_PARAMS,
            "crash_at": Param(
                10.0, "when B's host dies (s)", "B 的主机何时崩溃（秒）", unit="s", lo=0.0, hi=604_800.0
            ),
            "reboot_at": Param(
                9000.0,
                "when B is back with an empty stack and its server restarted (s)",
                "B 何时以空的协议栈重启并重新启动服务（秒）",
                unit="s",
                lo=0.0,
                hi=604_800.0,
            ),
            "send_at": Param(
                10000.0,
                "when A's application sends again (s)",
                "A 的应用何时再次发送（秒）",
                unit="s",
                lo=0.0,
                hi=604_800.0,
            ),
        },
        build=_hoc_build,
        lab=True,
        check=_hoc_check,
        narrate=_hoc_narrate,
        tags=("liveness", "half-open"),
    )
)


# ============================================================================================================
# half-open-partition
# ============================================================================================================
def _hop_build(p: P) -> Script:
    if p["user_timeout"] < 0 or not 0 <= p["retries2"] <= 255:
        raise UsageError("user_timeout must be >= 0 (0 = off) and retries2 0..255")
    a = {"user_timeout": p["user_timeout"], "retries2": p["retries2"]}
    budget = p["user_timeout"] if p["user_timeout"] > 0 else linux_retrans_timeout(p["retries2"], 0.2, 120.0)
    steps = (Listen(0.0, "B", 80), Connect(0.0, "A", "B", 80), Partition(1.0, "B", "A"), Send(2.0, "A", 100))
    return Script(_hosts(a), steps, LinkSpec(delay=p["delay"]), duration=2.0 + budget + 125.0)


def _hop_facts(run: Run, p: P) -> dict[str, Any]:
    data = [e for e in q.sends(run, "A") if e.segment is not None and e.segment.len > 0]
    seq0 = data[0].segment.seq if data else None
    tx = [e.t for e in data if e.segment is not None and e.segment.seq == seq0]
    intervals = [round(b - a, 6) for a, b in pairwise(tx)]
    err = _err(run, "A", "ETIMEDOUT")
    gave_up = None if err is None or not tx else err.t - tx[0]
    # Linux starts the TCP_USER_TIMEOUT clock at the first RTO retransmission (retrans_stamp), after the tail
    # loss probe when there is one (the first two intervals equal).
    probe = len(intervals) >= 2 and abs(intervals[0] - intervals[1]) <= 0.15 * intervals[1]
    first_rto = tx[2 if probe else 1] if len(tx) > (2 if probe else 1) else None
    return {
        "tx": tx,
        "since_rto": None if err is None or first_rto is None else err.t - first_rto,
        "intervals": intervals,
        "err": err,
        "gave_up": gave_up,
        "budget": linux_retrans_timeout(p["retries2"], 0.2, 120.0),
    }


def _hop_check(run: Run, p: P) -> list[Check]:
    f = _hop_facts(run, p)
    got_b = [e for e in q.recvs(run, "B") if e.segment is not None and e.segment.len > 0]
    dropped_b = [e for e in q.drops(run, "B") if e.reason is DropReason.PARTITION]
    iv = f["intervals"]
    # Linux first sends one tail loss probe (RFC 8985) about one RTO after the data and re-arms a full RTO: the
    # first two intervals are equal, the backoff doubles from the second on.
    backoff = iv[1:] if len(iv) >= 2 and abs(iv[0] - iv[1]) < 1e-3 else iv
    doubling = len(backoff) >= 1 and all(abs(b - min(2 * a, 120.0)) < 1e-3 for a, b in pairwise(backoff))
    checks = [
        claim(
            "A->B still works (B receives A's data and ACKs it) but every segment B->A is dropped.",
            "A->B 仍然畅通（B 收到 A 的数据并确认），但 B->A 的每个报文都被丢弃。",
            bool(got_b) and len(dropped_b) >= 1,
            f"data segments reaching B: {len(got_b)}, B's segments lost: {len(dropped_b)}",
        ),
        claim(
            "A retransmits with exponential backoff after one tail loss probe: each interval doubles, capped at "
            "120 s (TCP_RTO_MAX).",
            "A 先发一次尾部丢失探测，然后以指数退避重传：每次间隔翻倍，上限 120 秒（TCP_RTO_MAX）。",
            doubling,
            "intervals " + ", ".join(f"{x:g}" for x in iv),
        ),
    ]
    if p["user_timeout"] > 0:
        checks.append(
            claim(
                f"TCP_USER_TIMEOUT={p['user_timeout']:g} s: A gives up (ETIMEDOUT) {p['user_timeout']:g} s after "
                "its first retransmission timeout (Linux starts the clock there; RFC 5482 at the first "
                "transmission).",
                f"TCP_USER_TIMEOUT={p['user_timeout']:g} 秒：A 在首次超时重传后 {p['user_timeout']:g} 秒放弃（ETIMEDOUT；"
                "Linux 从这里开始计时，RFC 5482 从首次发送开始）。",
                f["since_rto"] is not None
                and abs(f["since_rto"] - p["user_timeout"])
                < (EPS if run.world == "sim" else 0.13 * p["user_timeout"] + 0.05),
                f"gave up {f['since_rto'] if f['since_rto'] is None else round(f['since_rto'], 3)} s after the "
                f"first RTO retransmission ({f['gave_up'] if f['gave_up'] is None else round(f['gave_up'], 3)} s "
                f"after the data), {len(f['tx']) - 1} retransmissions",
            )
        )
    else:
        last_iv = iv[-1] if iv else 0.0
        checks.append(
            claim(
                f"With tcp_retries2={p['retries2']} A gives up (ETIMEDOUT) at the first timeout past its "
                f"{f['budget']:g} s budget (tcp_model_timeout with a 200 ms base): about 15 minutes.",
                f"tcp_retries2={p['retries2']} 时，A 在超过 {f['budget']:g} 秒预算（以 200 毫秒为基数的 tcp_model_timeout）"
                "后的第一次超时放弃（ETIMEDOUT）：约 15 分钟。",
                f["gave_up"] is not None
                and f["budget"] - EPS <= f["gave_up"] <= f["budget"] + max(last_iv, 120.0) + EPS,
                f"gave up after {f['gave_up'] if f['gave_up'] is None else round(f['gave_up'], 3)} s, "
                f"{len(f['tx']) - 1} retransmissions",
            )
        )
    b_path = q.state_path(run, "B")
    checks.append(
        claim(
            "B never learns anything: it is still ESTABLISHED when A has given up (half-open).",
            "B 什么也不知道：A 放弃时 B 仍是 ESTABLISHED（半开）。",
            bool(b_path) and b_path[-1] == "ESTABLISHED" and f["err"] is not None,
            " -> ".join(b_path),
        )
    )
    return checks


def _hop_narrate(run: Run, p: P) -> tuple[str, str]:
    f = _hop_facts(run, p)
    iv = f["intervals"]
    g = f["gave_up"]
    shown = ", ".join(f"{x:g}" for x in iv[:12]) + (" ..." if len(iv) > 12 else "")
    how = (
        f"TCP_USER_TIMEOUT ({p['user_timeout']:g} s) cuts this short"
        if p["user_timeout"] > 0
        else f"tcp_retries2={p['retries2']} allows {f['budget']:g} s"
    )
    how_zh = (
        f"TCP_USER_TIMEOUT（{p['user_timeout']:g} 秒）提前结束了这一过程"
        if p["user_timeout"] > 0
        else f"tcp_retries2={p['retries2']} 允许 {f['budget']:g} 秒"
    )
    en = (
        f"At 1 s the path from B to A breaks (one way). A sends 100 bytes at 2 s; they reach B, but B's ACKs "
        f"vanish. A's retransmission timer starts at {iv[0] if iv else None} s (Linux: RTT + a 200 ms floor) and "
        f"backs off: {shown} s apart. {how}: A gives up with ETIMEDOUT "
        f"{g if g is None else round(g, 3)} s after the first transmission, after {len(f['tx']) - 1} "
        f"retransmissions. B, which got the data, never hears a thing and stays ESTABLISHED."
    )
    zh = (
        f"1 秒时 B 到 A 的路径单向中断。A 在 2 秒发送 100 字节；数据到达 B，但 B 的 ACK 全部丢失。A 的重传计时器从 "
        f"{iv[0] if iv else None} 秒开始（Linux：RTT 加 200 毫秒下限），不断退避："
        f"间隔 {shown} 秒。{how_zh}：A 在首次发送后 {g if g is None else round(g, 3)} 秒、重传 {len(f['tx']) - 1} 次后以 "
        f"ETIMEDOUT 放弃。收到了数据的 B 一无所知，仍是 ESTABLISHED。"
    )
    return en, zh


register(
    Scenario(
        id="half-open-partition",
        title="One-way partition",
        title_zh="单向网络分区",
        claim="A->B works, B->A dropped; A retransmits with exponential backoff until tcp_retries2 (~15 min) vs "
        "TCP_USER_TIMEOUT.",
        claim_zh="A->B 正常，B->A 丢包；A 以指数退避重传直到 tcp_retries2（约 15 分钟），对比 TCP_USER_TIMEOUT。",
        params={
            "delay": Param(
                0.0005,
                "one-way link delay in seconds (a LAN: RTT 1 ms, so the first RTO is ~200 ms)",
                "单向链路时延（秒；局域网：RTT 1 毫秒，首个 RTO 约 200 毫秒）",
                unit="s",
                lo=0.0001,
                hi=10.0,
            ),
            "user_timeout": Param(
                0.0,
                "TCP_USER_TIMEOUT on A in seconds (0 = off)",
                "A 的 TCP_USER_TIMEOUT（秒，0 = 关闭）",
                unit="s",
                lo=0.0,
                hi=86_400.0,
            ),
            "retries2": Param(15, "net.ipv4.tcp_retries2", "net.ipv4.tcp_retries2", lo=0, hi=255),
        },
        build=_hop_build,
        lab=True,
        check=_hop_check,
        narrate=_hop_narrate,
        tags=("liveness", "half-open"),
    )
)


# ============================================================================================================
# heartbeat-asymmetry
# ============================================================================================================
_HB_START = 0.2


def _hb_simulate(p: P, seed: int) -> Run:
    from tcpwise.sim.heartbeat import HeartbeatClient, IdleTimeoutServer

    if p["interval"] <= 0 or p["idle_timeout"] <= 0:
        raise UsageError("interval and idle_timeout must be > 0")
    start = max(_HB_START, 4 * p["delay"])  # the first heartbeat once the connection is up
    duration = start + max(3 * p["interval"], 4 * p["idle_timeout"]) + 1.0
    steps = (Listen(0.0, "B", 80), Connect(0.0, "A", "B", 80))
    script = Script(_hosts(), steps, LinkSpec(delay=p["delay"]), duration=duration)
    actors: dict[str, Any] = {}

    def setup(sim: Any) -> None:
        actors["server"] = IdleTimeoutServer(sim, sim.hosts["B"], p["idle_timeout"]).attach()
        actors["client"] = HeartbeatClient(sim, sim.hosts["A"], p["interval"], start, duration).attach()

    _, run = run_script(script, seed, scenario="heartbeat-asymmetry", params=p, setup=setup)
    cl, sv = actors["client"], actors["server"]
    run.summary["values"] = {
        "writes": [[t, n, e] for t, n, e in cl.writes],
        "failed_at": cl.failed_at,
        "server_closed": [t for t, _ in sv.closed],
        "duration": duration,
    }
    return run


def _hb_build(p: P) -> Script:
    """The same story as a script (the lab runs it): heartbeats as timed sends, the server's idle timeout as a
    close() one idle period after the first heartbeat arrives."""
    if p["interval"] <= 0 or p["idle_timeout"] <= 0:
        raise UsageError("interval and idle_timeout must be > 0")
    start = max(_HB_START, 4 * p["delay"])
    duration = start + max(3 * p["interval"], 4 * p["idle_timeout"]) + 1.0
    steps: list[Any] = [Listen(0.0, "B", 80), Connect(0.0, "A", "B", 80)]
    k = 0
    while start + k * p["interval"] <= duration + 1e-9 and k < 1000:
        steps.append(Send(start + k * p["interval"], "A", 8))
        k += 1
    if p["interval"] >= p["idle_timeout"]:
        steps.append(Close(start + p["delay"] + p["idle_timeout"], "B", sock="s"))
    return Script(_hosts(), tuple(steps), LinkSpec(delay=p["delay"]), duration=duration)


def _hb_observed(run: Run) -> tuple[list[Any], list[float]]:
    """(writes, server closes): from the simulator's actors, or from the app events of a scripted run."""
    v = q.values(run)
    if "writes" in v:
        return v.get("writes", []), v.get("server_closed", [])
    writes = [
        [e.t, e.nbytes if e.errno is None else None, e.errno or ""] for e in q.apps(run, "A", AppCall.SEND)
    ]
    return writes, [e.t for e in q.apps(run, "B", AppCall.CLOSE)]


def _hb_check(run: Run, p: P) -> list[Check]:
    writes, closed = _hb_observed(run)
    if p["interval"] < p["idle_timeout"]:
        return [
            claim(
                f"A heartbeat every {p['interval']:g} s (< the server's {p['idle_timeout']:g} s idle timeout) keeps "
                "the connection open: the server never closes it.",
                f"每 {p['interval']:g} 秒一次心跳（小于服务端 {p['idle_timeout']:g} 秒空闲超时）让连接保持打开：服务端从不关闭它。",
                not closed and q.state_path(run, "A")[-1:] == ["ESTABLISHED"],
                f"server closes: {len(closed)}, A ends {q.state_path(run, 'A')[-1:]}",
            ),
            claim(
                "Every heartbeat write succeeds.",
                "每次心跳写入都成功。",
                bool(writes) and all(n is not None for _, n, _ in writes),
                f"{len(writes)} writes, failures: {sum(1 for _, n, _ in writes if n is None)}",
            ),
        ]
    t_close = closed[0] if closed else None
    first_hb = writes[0][0] if writes else None
    fin_b = next((e for e in q.sends(run, "B") if e.segment is not None and "F" in e.segment.flags), None)
    cw = q.first_time_in(run, "A", "CLOSE_WAIT")
    ok_after = [w for w in writes if t_close is not None and w[0] > t_close and w[1] is not None]
    rst = [e for e in q.sends(run, "B") if e.segment is not None and "R" in e.segment.flags]
    fail = next((w for w in writes if w[1] is None), None)
    return [
        claim(
            f"The server closes the idle connection {p['idle_timeout']:g} s after the last heartbeat it received: "
            "FIN.",
            f"服务端在最后一次收到心跳 {p['idle_timeout']:g} 秒后关闭空闲连接：发送 FIN。",
            t_close is not None
            and fin_b is not None
            and first_hb is not None
            and abs(t_close - (first_hb + p["delay"] + p["idle_timeout"])) < EPS,
            f"heartbeat sent at {fmt_time(first_hb)}, server close() at {fmt_time(t_close)}",
        ),
        claim(
            "The client, which never reads, does not notice the FIN: it sits in CLOSE_WAIT.",
            "从不读取的客户端没有注意到 FIN：它停在 CLOSE_WAIT。",
            cw is not None and not q.apps(run, "A", AppCall.CLOSE),
            f"A in CLOSE_WAIT from {fmt_time(cw)}",
        ),
        claim(
            "Its next heartbeat is accepted by its own kernel, but the server's closed socket answers RST.",
            "它的下一次心跳被本机内核接受，但服务端已关闭的套接字回复 RST。",
            bool(ok_after) and bool(rst) and rst[0].t >= ok_after[0][0],
            f"write at {fmt_time(ok_after[0][0] if ok_after else None)} returned {ok_after[0][1] if ok_after else None}; "
            f"RST from B at {fmt_time(rst[0].t if rst else None)}",
        ),
        claim(
            "The client learns only on the following write: it fails with EPIPE (broken pipe, Linux: a RST in "
            "CLOSE_WAIT reports EPIPE).",
            "客户端直到下一次写入才知道：写入以 EPIPE 失败（Broken pipe；Linux 在 CLOSE_WAIT 收到 RST 时报告 EPIPE）。",
            fail is not None and fail[2] == "EPIPE" and bool(ok_after) and fail[0] > ok_after[0][0],
            f"failed write at {fmt_time(fail[0] if fail else None)}: {fail[2] if fail else None}",
        ),
    ]


def _hb_narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    writes, closed = _hb_observed(run)
    if p["interval"] < p["idle_timeout"]:
        en = (
            f"The client's heartbeat ({p['interval']:g} s) is shorter than the server's idle timeout "
            f"({p['idle_timeout']:g} s): all {len(writes)} heartbeats arrive before the server's timer runs out, "
            f"and the connection is still open after {v.get('duration', 0):g} s. Rule: heartbeat interval < the "
            f"smallest idle timeout on the path."
        )
        zh = (
            f"客户端心跳间隔（{p['interval']:g} 秒）短于服务端空闲超时（{p['idle_timeout']:g} 秒）：{len(writes)} 次心跳都在"
            f"服务端计时器到期前到达，{v.get('duration', 0):g} 秒后连接仍然打开。规则：心跳间隔 < 路径上最小的空闲超时。"
        )
        return en, zh
    t_close = closed[0] if closed else None
    ok_after = next((w for w in writes if t_close is not None and w[0] > t_close and w[1] is not None), None)
    fail = next((w for w in writes if w[1] is None), None)
    en = (
        f"The client sends a heartbeat every {p['interval']:g} s; the server drops connections idle for "
        f"{p['idle_timeout']:g} s. At {fmt_time(t_close)} the server closes (FIN). The client never reads, so its kernel "
        f"ACKs the FIN and the socket sits in CLOSE_WAIT unnoticed. At {fmt_time(ok_after[0] if ok_after else None)} "
        f"the next heartbeat is written successfully — send() only queues — and the server's kernel, whose socket "
        f"is closed, answers RST. The error surfaces on the write after that, at "
        f"{fmt_time(fail[0] if fail else None)}: {fail[2] if fail else None} (broken pipe). Fix: heartbeat more often "
        f"than the idle timeout, and read the socket so EOF is seen."
    )
    zh = (
        f"客户端每 {p['interval']:g} 秒发一次心跳；服务端关闭空闲 {p['idle_timeout']:g} 秒的连接。{fmt_time(t_close)} 时服务端关闭（FIN）。"
        f"客户端从不读取，内核确认了 FIN，套接字停在 CLOSE_WAIT 而无人察觉。{fmt_time(ok_after[0] if ok_after else None)} "
        f"时下一次心跳写入成功——send() 只是放进缓冲区——而服务端内核的套接字已关闭，回复 RST。错误在再下一次写入时才出现："
        f"{fmt_time(fail[0] if fail else None)}，{fail[2] if fail else None}（Broken pipe）。解决：心跳间隔小于空闲超时，并读取套接字以发现 EOF。"
    )
    return en, zh


register(
    Scenario(
        id="heartbeat-asymmetry",
        title="Heartbeat slower than the idle timeout",
        title_zh="心跳间隔大于空闲超时",
        claim="Client heartbeat 30 s > server idle timeout 10 s: the server closes the idle connection; the client's next "
        "heartbeat meets RST, the write after it fails with broken pipe.",
        claim_zh="客户端心跳 30 秒 > 服务端空闲超时 10 秒：服务端关闭空闲连接；客户端的下一次心跳遇到 RST，再下一次写入以 Broken pipe 失败。",
        params={
            "interval": Param(
                30.0, "client heartbeat interval (s)", "客户端心跳间隔（秒）", unit="s", lo=0.01, hi=86_400.0
            ),
            "idle_timeout": Param(
                10.0, "server idle timeout (s)", "服务端空闲超时（秒）", unit="s", lo=0.01, hi=86_400.0
            ),
        },
        simulate=_hb_simulate,
        build=_hb_build,
        lab=True,
        check=_hb_check,
        narrate=_hb_narrate,
        tags=("liveness", "application"),
    )
)


# ============================================================================================================
# keepalive
# ============================================================================================================
def _die_at(p: P, keepalive_time: float) -> float:
    """When B dies: the parameter, or (0 = auto) late enough for the live peer to answer two probes."""
    return float(p["die_at"]) if p["die_at"] > 0 else max(2.5 * keepalive_time, 2 * keepalive_time + 1.0)


def _ka_script(p: P, knobs: dict[str, Any]) -> Script:
    t = knobs["keepalive_time"]
    die = _die_at(p, t)
    steps: list[Any] = [
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80),
        Send(0.5, "A", 100),
        Send(0.6, "B", 100, sock="s"),
    ]
    if p["death"] == "crash":
        steps.append(Crash(die, "B"))
    else:
        steps += [Partition(die, "B", "A"), Partition(die, "A", "B")]
    dur = die + t + knobs["keepalive_intvl"] * knobs["keepalive_probes"] + 10.0
    return Script(
        _hosts({"keepalive": True, **knobs}), tuple(steps), LinkSpec(delay=p["delay"]), duration=dur
    )


def _ka_build(p: P) -> Script:
    """The tuned story as a script (the lab runs it; the model's own run adds a default-knob comparison)."""
    _check_ka(p)
    if p["death"] not in ("crash", "partition"):
        raise UsageError("--set death= must be crash or partition")
    if p["die_at"] and p["die_at"] < 2 * p["keepalive_time"] + 1.0:
        raise UsageError(
            f"--set die_at= must be 0 (auto) or at least {2 * p['keepalive_time'] + 1.0:g} s, so that "
            "the live peer answers two probes first"
        )
    return _ka_script(p, {k: p[k] for k in KA_PARAMS})


def _ka_simulate(p: P, seed: int) -> Run:
    _, run = run_script(_ka_build(p), seed, scenario="keepalive", params=p)
    # The same story with Linux's default knobs, unrecorded: only the detection time is kept.
    default = {k: v.default for k, v in KA_PARAMS.items()}
    errs: list[float] = []

    def watch(sim: Any) -> None:
        from tcpwise.endpoint.events import ConnectionError as CE

        def react(host: Any, ep: Any, ev: Any, now: float) -> None:
            if type(ev) is CE and ev.errno == "ETIMEDOUT":
                errs.append(now)

        sim.hosts["A"].reactions.append(react)

    sim2, _ = run_script(
        _ka_script(p, default), seed, scenario="keepalive", params=p, record=False, setup=watch
    )
    ep = sim2.hosts["A"].socks.get("c")
    run.summary["values"] = {
        "default_detect": (errs[0] - ep.last_rcv) if errs and ep is not None else None,
        "default_expect": default["keepalive_time"]
        + default["keepalive_intvl"] * default["keepalive_probes"],
    }
    return run


def _ka_facts(run: Run, p: P) -> dict[str, Any]:
    die = _die_at(p, p["keepalive_time"])
    end = _data_end(run, "A")
    probes = _probes(run, "A")
    answered: list[tuple[q.SegEvent, q.SegEvent | None]] = []
    silent: list[tuple[q.SegEvent, q.SegEvent | None]] = []
    # The ACKs that can answer a probe, in time order: one pass over the log, then a bisect per probe (a week
    # of probes must not cost probes x log length).
    acks = [e for e in q.recvs(run, "A") if e.segment.flags == "A" and e.segment.ack == end]
    ack_times = [e.t for e in acks]
    for pr in probes:
        i = bisect.bisect_left(ack_times, pr.t)
        ack = acks[i] if i < len(acks) and acks[i].t <= pr.t + 4 * p["delay"] + 1e-6 else None
        (answered if ack is not None else silent).append((pr, ack))
    err = _err(run, "A", "ETIMEDOUT")
    last_rx = _last_recv_before(run, "A", die)
    return {
        "die": die,
        "end": end,
        "probes": probes,
        "answered": answered,
        "silent": silent,
        "err": err,
        "last_rx": last_rx,
        "detect": None if err is None or last_rx is None else err.t - last_rx,
        "expect": p["keepalive_time"] + p["keepalive_intvl"] * p["keepalive_probes"],
    }


def _ka_check(run: Run, p: P) -> list[Check]:
    f = _ka_facts(run, p)
    v = q.values(run)
    pr = f["probes"]
    ans = f["answered"]
    gaps_alive = [round(b[0].t - a[1].t, 6) for a, b in pairwise(ans)]
    first_gap = None
    if pr:
        prev_rx = _last_recv_before(run, "A", pr[0].t - 1e-6)
        first_gap = None if prev_rx is None else pr[0].t - prev_rx
    silent_t = [s[0].t for s in f["silent"]]
    silent_gaps = [round(b - a, 6) for a, b in pairwise(silent_t)]
    rst_a = [e for e in q.sends(run, "A") if e.segment is not None and "R" in e.segment.flags]
    dd, de = v.get("default_detect"), v.get("default_expect")
    return [
        claim(
            f"After {p['keepalive_time']:g} s without a segment from B, A sends a probe: no data, SEG.SEQ = "
            "SND.NXT - 1 (a byte B already has, so B must answer).",
            f"{p['keepalive_time']:g} 秒没有收到 B 的报文后，A 发出探测：不带数据，SEG.SEQ = SND.NXT - 1（B 已收到的字节，B 必须回应）。",
            bool(pr) and first_gap is not None and abs(first_gap - p["keepalive_time"]) < EPS,
            f"first probe at {fmt_time(pr[0].t if pr else None)} seq=SND.NXT-1, "
            f"{first_gap if first_gap is None else round(first_gap, 6)} s after the last segment",
        ),
        claim(
            "The live peer answers every probe with an ACK (ack = SND.NXT); each answer restarts the idle clock, so "
            "probes come keepalive_time apart and the connection stays up.",
            "活着的对端用 ACK（ack = SND.NXT）回应每个探测；每次回应都重新开始空闲计时，所以探测间隔为 keepalive_time，连接保持。",
            len(ans) >= 2 and all(_near(run, g, p["keepalive_time"]) for g in gaps_alive),
            f"{len(ans)} probes answered; gaps after each answer: {', '.join(f'{g:g}' for g in gaps_alive)} s",
        ),
        claim(
            f"After the peer dies ({p['death']}), {p['keepalive_probes']} probes go unanswered, "
            f"{p['keepalive_intvl']:g} s apart.",
            f"对端死亡（{p['death']}）后，{p['keepalive_probes']} 个探测无人应答，间隔 {p['keepalive_intvl']:g} 秒。",
            len(silent_t) == p["keepalive_probes"]
            and all(_near(run, g, p["keepalive_intvl"]) for g in silent_gaps),
            f"{len(silent_t)} unanswered probes, gaps {', '.join(f'{g:g}' for g in silent_gaps) or '-'} s",
        ),
        claim(
            f"A gives up with ETIMEDOUT keepalive_time + intvl*probes = {f['expect']:g} s after B's last "
            "segment, and sends a RST as it does (Linux tcp_keepalive_timer).",
            f"A 在 B 的最后一个报文之后 keepalive_time + intvl*probes = {f['expect']:g} 秒以 ETIMEDOUT 放弃，"
            "并同时发出 RST（Linux tcp_keepalive_timer）。",
            f["detect"] is not None
            and _near(run, f["detect"], f["expect"])
            and bool(rst_a)
            and _near(run, rst_a[-1].t, f["err"].t),
            f"measured {f['detect'] if f['detect'] is None else round(f['detect'], 6)} s; RST sent: {bool(rst_a)}",
        ),
        _default_knobs_claim(dd, de),
    ]


def _default_knobs_claim(dd: float | None, de: float | None) -> Check:
    """The default-knob detection time comes from a second model run; a lab run has none (not observed)."""
    want = de if de is not None else 7200.0 + 75.0 * 9
    c = claim(
        f"With Linux's default knobs (7200/75/9) the same death takes {want:g} s to notice.",
        f"使用 Linux 默认参数（7200/75/9）时，同样的死亡需要 {want:g} 秒才能发现。",
        dd is not None and abs(dd - want) < EPS,
        f"measured in a second run: {dd if dd is None else round(dd, 6)} s",
    )
    if de is None:
        return Check(
            c.claim, False, c.claim_zh, "not observed: a two-hour wait (the model measures it)", False
        )
    return c


def _ka_narrate(run: Run, p: P) -> tuple[str, str]:
    f = _ka_facts(run, p)
    v = q.values(run)
    dd = v.get("default_detect")
    en = (
        f"A turns on SO_KEEPALIVE with {p['keepalive_time']:g}/{p['keepalive_intvl']:g}/{p['keepalive_probes']} "
        f"(idle/interval/count). After {p['keepalive_time']:g} s of silence it sends a probe carrying no data and "
        f"the sequence number SND.NXT-1; B, alive, ACKs it — {len(f['answered'])} times. At {f['die']:g} s B dies "
        f"({p['death']}). The next probe is unanswered, then one every {p['keepalive_intvl']:g} s; after "
        f"{len(f['silent'])} A gives up: ETIMEDOUT at {fmt_time(f['err'].t if f['err'] else None)}, "
        f"{f['detect'] if f['detect'] is None else round(f['detect'], 3)} s after B's last segment. With the "
        f"defaults the same run needs {dd if dd is None else round(dd, 3)} s (over two hours): tune the knobs "
        f"(per socket: TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT) or they are of little use."
    )
    zh = (
        f"A 开启 SO_KEEPALIVE，参数 {p['keepalive_time']:g}/{p['keepalive_intvl']:g}/{p['keepalive_probes']}（空闲/间隔/次数）。"
        f"沉默 {p['keepalive_time']:g} 秒后它发出一个不带数据、序列号为 SND.NXT-1 的探测；活着的 B 回 ACK——共 {len(f['answered'])} 次。"
        f"{f['die']:g} 秒时 B 死亡（{p['death']}）。下一个探测无人应答，之后每 {p['keepalive_intvl']:g} 秒一个；{len(f['silent'])} "
        f"个之后 A 放弃：{fmt_time(f['err'].t if f['err'] else None)} 报 ETIMEDOUT，距 B 的最后一个报文 "
        f"{f['detect'] if f['detect'] is None else round(f['detect'], 3)} 秒。使用默认值时同样的过程需要 "
        f"{dd if dd is None else round(dd, 3)} 秒（两个多小时）：必须调整参数（每个套接字可用 TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT），否则用处不大。"
    )
    return en, zh


register(
    Scenario(
        id="keepalive",
        title="Keepalive detects silent death",
        title_zh="keepalive 发现无声的死亡",
        claim="Keepalive probes (seq = SND.NXT-1, no data), ACKs from a live peer, timings; after the peer dies the "
        "probes go unanswered and A gets ETIMEDOUT at time + intvl*probes; tuned vs default detection time.",
        claim_zh="keepalive 探测（seq = SND.NXT-1，无数据）、活着的对端的 ACK、时间；对端死亡后探测无人应答，A 在 "
        "time + intvl*probes 时得到 ETIMEDOUT；调优与默认参数的发现时间对比。",
        params={
            "keepalive_time": Param(
                60.0,
                KA_PARAMS["keepalive_time"].help + " [tuned; Linux default 7200]",
                KA_PARAMS["keepalive_time"].help_zh,
                unit="s",
                lo=1.0,
                hi=32767.0,
            ),
            "keepalive_intvl": Param(
                10.0,
                KA_PARAMS["keepalive_intvl"].help + " [tuned; Linux default 75]",
                KA_PARAMS["keepalive_intvl"].help_zh,
                unit="s",
                lo=1.0,
                hi=32767.0,
            ),
            "keepalive_probes": Param(
                3,
                KA_PARAMS["keepalive_probes"].help + " [tuned; Linux default 9]",
                KA_PARAMS["keepalive_probes"].help_zh,
                lo=1,
                hi=127,
            ),
            "death": Param(
                "crash",
                "how B dies: crash (host down) or partition (both directions cut)",
                "B 如何死亡：crash（主机宕机）或 partition（双向断开）",
                choices=("crash", "partition"),
            ),
            "die_at": Param(
                0.0,
                "when B dies (s); 0 = auto (2.5 * keepalive_time, at least 2 * keepalive_time + 1)",
                "B 何时死亡（秒）；0 = 自动（2.5 * keepalive_time，至少 2 * keepalive_time + 1）",
                unit="s",
                lo=0.0,
                hi=604_800.0,
            ),
        },
        simulate=_ka_simulate,
        build=_ka_build,
        lab=True,
        check=_ka_check,
        narrate=_ka_narrate,
        tags=("liveness",),
    )
)


# ============================================================================================================
# middlebox-idle-timeout
# ============================================================================================================
def _mb_build(p: P) -> Script:
    """The two ends' script; the firewall in the path is the world's own (the simulator's StatefulFirewall, in
    the lab nft conntrack at the router)."""
    _check_ka(p)
    if p["idle_timeout"] <= 0 or p["send_at"] <= p["idle_timeout"] + 1.0:
        raise UsageError(
            "need idle_timeout > 0 and send_at > idle_timeout + 1 s (the send must come after the "
            "flow would have expired)"
        )
    if p["on_expired"] not in ("drop", "rst"):
        raise UsageError(
            "--set on_expired= must be drop (silent, like conntrack INVALID) or rst (like an AWS NLB)"
        )
    a = {**_ka_cfg(p, p["keepalive"])}
    t_send = p["send_at"]
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80),
        Send(0.5, "A", 100),
        Send(0.6, "B", 100, sock="s"),
        Send(t_send, "A", 100),
        Send(t_send + 10.0, "B", 100, sock="s"),
    )
    dur = t_send + 10.0 + linux_retrans_timeout(15, 0.2, 120.0) + 125.0
    return Script(_hosts(a), steps, LinkSpec(delay=p["delay"]), duration=dur)


def _mb_simulate(p: P, seed: int) -> Run:
    from tcpwise.sim.middlebox import StatefulFirewall

    script = _mb_build(p)
    boxes: list[Any] = []

    def setup(sim: Any) -> None:
        fw = StatefulFirewall(idle_timeout=p["idle_timeout"], reply_rst=p["on_expired"] == "rst", sim=sim)
        sim.channel("A", "B").elements.append((fw, "fwd"))
        sim.channel("B", "A").elements.append((fw, "rev"))
        boxes.append(fw)

    _, run = run_script(script, seed, scenario="middlebox-idle-timeout", params=p, setup=setup)
    fw = boxes[0]
    run.summary["values"] = {
        "expired": [t for _, t in fw.expired],
        "dropped": fw.dropped,
        "passed": fw.passed,
        "box_resets": fw.resets,
    }
    return run


def _mb_survives(p: P) -> bool:
    return bool(p["keepalive"]) and p["keepalive_time"] < p["idle_timeout"]


def _mb_check(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    t_send = p["send_at"]
    expired = v.get("expired", [])
    fw_drops = [e for e in run.events if e.reason is DropReason.FIREWALL]
    probes = _probes(run, "A")
    if _mb_survives(p):
        got_b = [
            e for e in q.recvs(run, "B") if e.segment is not None and e.segment.len > 0 and e.t >= t_send
        ]
        got_a = [
            e for e in q.recvs(run, "A") if e.segment is not None and e.segment.len > 0 and e.t >= t_send
        ]
        errs = q.errors(run)
        return [
            claim(
                f"Keepalive probes every {p['keepalive_time']:g} s (below the {p['idle_timeout']:g} s idle timeout) "
                "and B's ACKs refresh the firewall's state: the flow is never forgotten.",
                f"每 {p['keepalive_time']:g} 秒一次的 keepalive 探测（小于 {p['idle_timeout']:g} 秒空闲超时）及 B 的 ACK "
                "刷新了防火墙状态：该流从未被遗忘。",
                bool(probes) and not expired and not fw_drops,
                f"probes before {t_send:g} s: {sum(1 for e in probes if e.t < t_send)}, flows expired: {len(expired)}",
            ),
            claim(
                "The connection survives: A's request and B's push both get through, no errors.",
                "连接存活：A 的请求和 B 的推送都顺利到达，没有错误。",
                bool(got_b) and bool(got_a) and not errs,
                f"data reaching B after {t_send:g} s: {len(got_b)}, reaching A: {len(got_a)}, errors: {len(errs)}",
            ),
        ]
    t_exp = expired[0] if expired else None
    quiet = [e for e in q.recvs(run) if t_exp is not None and t_exp - 1e-9 <= e.t < t_send]
    changes = [
        e
        for e in q.state_events(run, "A") + q.state_events(run, "B")
        if e.t < t_send and e.to_state != "ESTABLISHED" and e.to_state not in ("SYN_SENT", "SYN_RCVD")
    ]
    if p["on_expired"] == "rst":
        a_rst, b_rst = _err(run, "A", "ECONNRESET"), _err(run, "B", "ECONNRESET")
        return [
            claim(
                f"The box forgets the flow after {p['idle_timeout']:g} s of silence; both ends still believe in it.",
                f"中间设备在沉默 {p['idle_timeout']:g} 秒后遗忘该流；两端仍然相信连接存在。",
                t_exp is not None and not quiet and not changes,
                f"flow forgotten at {fmt_time(t_exp)}; state changes before {t_send:g} s: {len(changes)}",
            ),
            claim(
                "A box that answers with RST (like an AWS NLB) turns the black hole into an immediate error: A's "
                "next send gets ECONNRESET within one round trip.",
                "回复 RST 的中间设备（如 AWS NLB）把黑洞变成即时错误：A 的下一次发送在一个往返之内得到 ECONNRESET。",
                a_rst is not None and a_rst.t - t_send <= 2 * p["delay"] + EPS,
                f"ECONNRESET at {fmt_time(a_rst.t if a_rst else None)} for a send at {t_send:g} s",
            ),
            claim(
                "B's push is reset the same way: neither end retransmits into the void.",
                "B 的推送同样被复位：两端都没有向虚空重传。",
                b_rst is not None and len(fw_drops) == 2 and v.get("box_resets") == 2,
                f"B: {event_text(b_rst) if b_rst else 'no error'}; packets dropped {len(fw_drops)}, RSTs from the box "
                f"{v.get('box_resets')}",
            ),
        ]
    a_err, b_err = _err(run, "A", "ETIMEDOUT"), _err(run, "B", "ETIMEDOUT")
    a_drops = [e for e in fw_drops if e.host == "A"]
    b_drops = [e for e in fw_drops if e.host == "B"]
    rsts = [e for e in q.sends(run) if e.segment is not None and "R" in e.segment.flags]
    return [
        claim(
            f"The firewall forgets the flow after {p['idle_timeout']:g} s of silence and tells no one.",
            f"防火墙在沉默 {p['idle_timeout']:g} 秒后遗忘该流，且不通知任何一方。",
            t_exp is not None and not quiet,
            f"flow forgotten at {fmt_time(t_exp)}; segments delivered meanwhile: {len(quiet)}",
        ),
        claim(
            "Both ends still believe in the connection: each is ESTABLISHED when it next sends.",
            "两端仍然相信连接存在：再次发送时双方都是 ESTABLISHED。",
            not changes,
            f"state changes before {t_send:g} s other than the handshake: {len(changes)}",
        ),
        claim(
            "A's next send is dropped silently and retransmitted into the void with backoff until A gives up "
            "(ETIMEDOUT).",
            "A 的下一次发送被悄悄丢弃，并以退避不断重传到虚空中，直到 A 放弃（ETIMEDOUT）。",
            len(a_drops) >= 2 and a_err is not None,
            f"{len(a_drops)} of A's segments dropped by the firewall; ETIMEDOUT at {fmt_time(a_err.t if a_err else None)}",
        ),
        claim(
            "B's push meets the same fate: both ends are half-open until their own timers give up.",
            "B 的推送遭遇同样的命运：两端都处于半开状态，直到各自的计时器放弃。",
            len(b_drops) >= 2 and b_err is not None and not rsts,
            f"{len(b_drops)} of B's segments dropped; ETIMEDOUT at {fmt_time(b_err.t if b_err else None)}; "
            f"RSTs sent by anyone: {len(rsts)}",
        ),
    ]


def _mb_narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    expired = v.get("expired", [])
    if _mb_survives(p):
        probes = _probes(run, "A")
        en = (
            f"A stateful firewall between A and B forgets flows idle for {p['idle_timeout']:g} s. A has keepalive "
            f"at {p['keepalive_time']:g} s, below that: {len(probes)} probes and their ACKs keep the firewall's entry "
            f"fresh, so at {p['send_at']:g} s A's request and B's push pass as if nothing happened. Rule: keepalive "
            f"(or an application ping) shorter than the shortest idle timeout on the path."
        )
        zh = (
            f"A 与 B 之间的状态防火墙会遗忘空闲 {p['idle_timeout']:g} 秒的流。A 的 keepalive 为 {p['keepalive_time']:g} 秒，"
            f"小于该值：{len(probes)} 个探测及其 ACK 让防火墙条目保持新鲜，所以 {p['send_at']:g} 秒时 A 的请求和 B 的推送"
            f"照常通过。规则：keepalive（或应用层 ping）要短于路径上最短的空闲超时。"
        )
        return en, zh
    if p["on_expired"] == "rst":
        a_rst, b_rst = _err(run, "A", "ECONNRESET"), _err(run, "B", "ECONNRESET")
        en = (
            f"This box ({p['idle_timeout']:g} s idle timeout) answers packets of a forgotten flow with a RST, as an "
            f"AWS Network Load Balancer does. The flow expires at {fmt_time(expired[0] if expired else None)}; A sends "
            f"at {p['send_at']:g} s and gets ECONNRESET at {fmt_time(a_rst.t if a_rst else None)}, B's push gets "
            f"ECONNRESET at {fmt_time(b_rst.t if b_rst else None)}. The connection is still lost, but nobody waits "
            f"15 minutes to find out."
        )
        zh = (
            f"这个中间设备（空闲超时 {p['idle_timeout']:g} 秒）对已遗忘流的报文回复 RST，就像 AWS 网络负载均衡器那样。"
            f"流在 {fmt_time(expired[0] if expired else None)} 过期；A 在 {p['send_at']:g} 秒发送，在 "
            f"{fmt_time(a_rst.t if a_rst else None)} 得到 ECONNRESET，B 的推送在 {fmt_time(b_rst.t if b_rst else None)} 得到 "
            f"ECONNRESET。连接依然丢失，但没有人需要等 15 分钟才发现。"
        )
        return en, zh
    a_err, b_err = _err(run, "A", "ETIMEDOUT"), _err(run, "B", "ETIMEDOUT")
    ka = (
        f" A's keepalive ({p['keepalive_time']:g} s) is longer than the firewall's timeout, so it does not help."
        if p["keepalive"]
        else ""
    )
    ka_zh = (
        f"A 的 keepalive（{p['keepalive_time']:g} 秒）长于防火墙超时，所以无济于事。"
        if p["keepalive"]
        else ""
    )
    en = (
        f"A stateful firewall that drops silently (conntrack with an INVALID drop rule, a cloud VPC firewall; here "
        f"{p['idle_timeout']:g} s) sits between "
        f"A and B. After a request and a response the connection is idle; at {fmt_time(expired[0] if expired else None)} "
        f"the firewall drops its entry without a word.{ka} At {p['send_at']:g} s A sends: the packet matches no "
        f"state and is dropped, as are all {v.get('dropped')} packets that follow from either side. Both ends are "
        f"half-open and keep retransmitting; A gives up at {fmt_time(a_err.t if a_err else None)} and B at "
        f"{fmt_time(b_err.t if b_err else None)} (tcp_retries2). Nobody ever sees a RST."
    )
    zh = (
        f"A 与 B 之间有一个静默丢包的状态防火墙（带 INVALID 丢弃规则的 conntrack、云 VPC 防火墙；这里为 {p['idle_timeout']:g} 秒）。一次请求和响应后连接空闲；"
        f"{fmt_time(expired[0] if expired else None)} 时防火墙悄悄删除了它的条目。{ka_zh}{p['send_at']:g} 秒时 A 发送数据：报文匹配不到"
        f"状态而被丢弃，此后双方共 {v.get('dropped')} 个报文都被丢弃。两端都处于半开状态并不断重传；A 在 "
        f"{fmt_time(a_err.t if a_err else None)}、B 在 {fmt_time(b_err.t if b_err else None)} 放弃（tcp_retries2）。从头到尾没有人看到 RST。"
    )
    return en, zh


register(
    Scenario(
        id="middlebox-idle-timeout",
        title="A firewall forgets an idle flow",
        title_zh="防火墙遗忘空闲的流",
        claim="A stateful firewall/NAT drops idle flows silently: both ends half-open, the next send retransmits into "
        "the void; keepalive below the middlebox timeout keeps the flow alive.",
        claim_zh="状态防火墙/NAT 悄悄丢弃空闲流：两端半开，下一次发送重传到虚空中；短于中间设备超时的 keepalive 能让流保持存活。",
        params={
            "idle_timeout": Param(
                350.0,
                "middlebox idle timeout (s); AWS NLB / NAT gateway 350, GCP VPC firewall 600",
                "中间设备空闲超时（秒）；AWS NLB / NAT 网关 350，GCP VPC 防火墙 600",
                unit="s",
                lo=0.01,
                hi=86_400.0,
            ),
            "on_expired": Param(
                "drop",
                "what the box does with a packet of a forgotten flow: drop (silently: conntrack "
                "INVALID, cloud firewalls) or rst (answer RST, like an AWS NLB)",
                "中间设备如何处理已遗忘流的报文：drop（静默丢弃：conntrack INVALID、云防火墙）或 rst（回复 RST，如 AWS NLB）",
                choices=("drop", "rst"),
            ),
            "keepalive": Param(False, "SO_KEEPALIVE on A", "A 是否开启 SO_KEEPALIVE"),
            **KA_PARAMS,
            "send_at": Param(
                500.0,
                "when A sends again (B pushes 10 s later) (s)",
                "A 何时再次发送（B 在 10 秒后推送）（秒）",
                unit="s",
                lo=0.0,
                hi=604_800.0,
            ),
        },
        simulate=_mb_simulate,
        build=_mb_build,
        lab=True,
        check=_mb_check,
        narrate=_mb_narrate,
        tags=("liveness", "middlebox"),
    )
)


# ============================================================================================================
# rst-on-timeout
# ============================================================================================================
def _rt_build(p: P) -> Script:
    """The story as a script (the lab runs it): the server writes the response once the request is in and closes
    (RST or FIN) send_timeout later; the client that stops reading is the world's own (the simulator's
    StalledReader, the lab agent told to stop reading)."""
    _rt_validate(p)
    t_resp = 0.5 + 2 * p["delay"]
    end = Abort if p["close"] == "rst" else Close
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80, on_eof="close"),
        Send(0.5, "A", 100),
        Send(t_resp, "B", p["response"], sock="s"),
        end(t_resp + p["send_timeout"], "B", sock="s"),
    )
    dur = p["resume_at"] + 5.0 + (p["time_wait"] + 5.0 if p["close"] == "fin" else 0.0)
    cfg = {"time_wait": p["time_wait"]}
    return Script(_hosts(cfg, cfg), steps, LinkSpec(delay=p["delay"]), duration=dur)


def _rt_validate(p: P) -> None:
    if p["close"] not in ("rst", "fin"):
        raise UsageError("--set close= must be rst (reset_timedout_connection on) or fin")
    if not 1.0 <= p["send_timeout"] < p["resume_at"] or p["response"] <= 70000:
        raise UsageError(
            "need 1 <= send_timeout < resume_at and response > 70000 bytes (more than the client window)"
        )


def _rt_simulate(p: P, seed: int) -> Run:
    from tcpwise.sim.heartbeat import SendTimeoutServer, StalledReader

    _rt_validate(p)
    steps = (Listen(0.0, "B", 80), Connect(0.0, "A", "B", 80, on_eof="close"), Send(0.5, "A", 100))
    dur = p["resume_at"] + 5.0 + (p["time_wait"] + 5.0 if p["close"] == "fin" else 0.0)
    cfg = {"time_wait": p["time_wait"]}
    script = Script(_hosts(cfg, cfg), steps, LinkSpec(delay=p["delay"]), duration=dur)
    actors: dict[str, Any] = {}

    def setup(sim: Any) -> None:
        actors["server"] = SendTimeoutServer(
            sim, sim.hosts["B"], p["response"], p["send_timeout"], reset=p["close"] == "rst"
        ).attach()
        actors["reader"] = StalledReader(sim, sim.hosts["A"], p["resume_at"]).attach()

    sim, run = run_script(script, seed, scenario="rst-on-timeout", params=p, setup=setup)
    sv = actors["server"]
    run.summary["values"] = {
        "written": sv.written,
        "queued_at_close": sv.unsent_at_close,
        "closed_at": sv.closed_at,
        "client_read": len(sim.hosts["A"].received.get("c", b"")),
    }
    return run


def _rt_check(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    zero = [e for e in q.recvs(run, "B") if e.segment is not None and e.segment.win == 0]
    queued, written, read = v.get("queued_at_close"), v.get("written"), v.get("client_read")
    checks = [
        claim(
            "The client stops reading: its window falls to zero and the server cannot send the rest of the "
            "response.",
            "客户端停止读取：接收窗口降为零，服务端无法发出响应的剩余部分。",
            bool(zero) and (queued or 0) > 0,
            f"first zero window at {fmt_time(zero[0].t if zero else None)}; {queued} of {written} bytes still "
            f"queued at the server's timeout",
        )
    ]
    tw_b = q.time_in_state(run, "B", "TIME_WAIT")
    pb = q.state_path(run, "B")
    if p["close"] == "rst":
        rst = [e for e in q.sends(run, "B") if e.segment is not None and "R" in e.segment.flags]
        err = _err(run, "A", "ECONNRESET")
        checks += [
            claim(
                f"After send_timeout ({p['send_timeout']:g} s) the server closes with RST (SO_LINGER {{1, 0}}): "
                "straight to CLOSED, no TIME_WAIT on the server.",
                f"send_timeout（{p['send_timeout']:g} 秒）后服务端以 RST 关闭（SO_LINGER {{1, 0}}）：直接进入 CLOSED，服务端没有 TIME_WAIT。",
                bool(rst) and "TIME_WAIT" not in pb and pb[-2:] == ["ESTABLISHED", "CLOSED"],
                " -> ".join(pb),
            ),
            claim(
                "The bytes still queued in the server's send buffer are thrown away.",
                "仍在服务端发送缓冲区中排队的字节被丢弃。",
                queued is not None
                and read is not None
                and written is not None
                and read + queued == written
                and queued > 0,
                f"written {written}, client got {read}, discarded {queued}",
            ),
            claim(
                "The client sees ECONNRESET and ends up with fewer bytes than the server wrote.",
                "客户端看到 ECONNRESET，最终拿到的字节少于服务端写入的。",
                err is not None and read is not None and written is not None and read < written,
                f"{event_text(err) if err else 'no error'}; read {read} of {written}",
            ),
        ]
    else:
        checks += [
            claim(
                "With a graceful close() the FIN waits behind the queued data: when the client reads again it gets "
                "every byte, then EOF.",
                "正常 close() 时 FIN 排在缓冲数据之后：客户端恢复读取后拿到全部字节，然后是 EOF。",
                read == written and bool(q.apps(run, "A", AppCall.EOF)),
                f"read {read} of {written}",
            ),
            claim(
                f"The server closed first, so it holds TIME_WAIT ({p['time_wait']:g} s).",
                f"服务端先关闭，所以它持有 TIME_WAIT（{p['time_wait']:g} 秒）。",
                tw_b is not None and abs(tw_b - p["time_wait"]) < EPS,
                f"B in TIME_WAIT for {tw_b if tw_b is None else round(tw_b, 6)} s",
            ),
        ]
    return checks


def _rt_narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    queued, written, read = v.get("queued_at_close"), v.get("written"), v.get("client_read")
    base_en = (
        f"The server writes a {written}-byte response; the client's application stops reading, its "
        f"receive buffer fills and its window drops to zero. At {fmt_time(v.get('closed_at'))}, "
        f"{p['send_timeout']:g} s without progress (nginx send_timeout), {queued} bytes are still in the "
        f"server's send buffer. "
    )
    base_zh = (
        f"服务端写入 {written} 字节的响应；客户端应用停止读取，接收缓冲区被填满，窗口降为零。{fmt_time(v.get('closed_at'))} 时，"
        f"已经 {p['send_timeout']:g} 秒没有进展（nginx send_timeout），服务端发送缓冲区中仍有 {queued} 字节。"
    )
    if p["close"] == "rst":
        en = base_en + (
            f"With reset_timedout_connection on, nginx closes with SO_LINGER {{1, 0}}: one RST, the socket "
            f"is gone at once — no FIN_WAIT, no TIME_WAIT, no orphan probing a zero window — but those "
            f"{queued} bytes are discarded. The client gets ECONNRESET; when it reads again it finds only "
            f"the {read} bytes that had reached its buffer."
        )
        zh = base_zh + (
            f"开启 reset_timedout_connection 时，nginx 以 SO_LINGER {{1, 0}} 关闭：一个 RST，套接字立即消失——没有 "
            f"FIN_WAIT、没有 TIME_WAIT、没有孤儿连接去探测零窗口——但那 {queued} 字节被丢弃。客户端得到 ECONNRESET；"
            f"它恢复读取时只找到已进入缓冲区的 {read} 字节。"
        )
    else:
        en = base_en + (
            f"A plain close() queues the FIN behind them. When the client reads again at "
            f"{p['resume_at']:g} s the rest flows, all {read} bytes arrive, then EOF; the server, the "
            f"active closer, then holds TIME_WAIT for {p['time_wait']:g} s."
        )
        zh = base_zh + (
            f"普通的 close() 把 FIN 排在它们后面。客户端在 {p['resume_at']:g} 秒恢复读取后，剩余数据继续发送，"
            f"全部 {read} 字节到达，然后是 EOF；作为主动关闭方的服务端随后持有 TIME_WAIT {p['time_wait']:g} 秒。"
        )
    return en, zh


register(
    Scenario(
        id="rst-on-timeout",
        title="nginx reset_timedout_connection",
        title_zh="nginx reset_timedout_connection",
        claim="The idle/send timeout closes with RST: no TIME_WAIT on the server, but unsent data is discarded (shown); "
        "a graceful FIN delivers everything and leaves TIME_WAIT on the server.",
        claim_zh="超时以 RST 关闭：服务端没有 TIME_WAIT，但未发送的数据被丢弃（逐项展示）；正常 FIN 关闭会送达全部数据，并在服务端留下 TIME_WAIT。",
        params={
            "close": Param(
                "rst",
                "rst = reset_timedout_connection on (SO_LINGER {1,0}); fin = graceful close()",
                "rst = 开启 reset_timedout_connection（SO_LINGER {1,0}）；fin = 正常 close()",
                choices=("rst", "fin"),
            ),
            "send_timeout": Param(
                60.0,
                "nginx send_timeout: no progress for this long closes (s; nginx default 60)",
                "nginx send_timeout：超过这么久没有进展就关闭（秒；nginx 默认 60）",
                unit="s",
                lo=0.1,
                hi=3600.0,
            ),
            "response": Param(
                100_000,
                "bytes of the server's response",
                "服务端响应的字节数",
                unit="bytes",
                lo=1,
                hi=10_000_000,
            ),
            "resume_at": Param(
                90.0,
                "when the client's application reads again (s)",
                "客户端应用何时恢复读取（秒）",
                unit="s",
                lo=0.0,
                hi=86_400.0,
            ),
            "time_wait": TW_PARAM,
        },
        simulate=_rt_simulate,
        build=_rt_build,
        lab=True,
        check=_rt_check,
        narrate=_rt_narrate,
        tags=("close", "liveness"),
    )
)

"""The foundation scenarios: opening and closing a connection, and what TIME_WAIT is for.

Each scenario is a script of timed steps between client A (198.18.0.1) and server B (198.18.1.1) plus checks
that read the recorded events. Claims cite RFC 9293 (§3.5 opening, §3.6 closing, §3.10.7.4 TIME_WAIT). Every
number in a narrative is read from the run.
"""

from __future__ import annotations

from typing import Any

from tcpwise.events import Check, Run
from tcpwise.i18n import event_text
from tcpwise.scenarios import query as q
from tcpwise.scenarios.base import Param, Scenario, claim, register
from tcpwise.scenarios.fmt import fmt_num, fmt_time
from tcpwise.script import (
    Close,
    Connect,
    DropNext,
    HostSpec,
    LinkSpec,
    Listen,
    Script,
    Send,
    Shutdown,
)
from tcpwise.vocab import AppCall
from tcpwise.wire.seq import seq_add

P = dict[str, Any]
A_ADDR = "198.18.0.1"
B_ADDR = "198.18.1.1"

TW_PARAM = Param(
    60.0,
    "TIME_WAIT length in seconds (Linux: TCP_TIMEWAIT_LEN = 60, compiled in; model only)",
    "TIME_WAIT 时长（秒；Linux 固定 60 秒，编译期常量，仅模型可改）",
    unit="s",
    lo=0.0,
    hi=3600.0,
)


def hosts(p: P, a: dict[str, Any] | None = None, b: dict[str, Any] | None = None) -> tuple[HostSpec, ...]:
    common: dict[str, Any] = {k: p[k] for k in ("time_wait", "fin_timeout") if k in p}
    return (
        HostSpec("A", A_ADDR, "client", {**common, **(a or {})}),
        HostSpec("B", B_ADDR, "server", {**common, **(b or {})}),
    )


def link(p: P) -> LinkSpec:
    return LinkSpec(delay=p["delay"])


def _seg_line(ev: Any, isn_self: int | None, isn_peer: int | None) -> str:
    s = ev.segment
    return f"{s.flags} seq={q.rel(s.seq, isn_self)} ack={q.rel(s.ack, isn_peer) if 'A' in s.flags else '-'}"


def _tol(run: Run) -> float:
    """How close two instants must be to count as 'the same': exact in the model; on the kernel a state is seen
    up to one sock_diag poll after its cause (docs/lab.md)."""
    return 1e-6 if run.world == "sim" else 0.05


def _tw_ok(run: Run, measured: float | None, want: float) -> bool:
    """TIME_WAIT length: exact in the model; Linux's timer wheel fires a 60 s timer up to ~1 s late."""
    if measured is None:
        return False
    return abs(measured - want) < 1e-6 if run.world == "sim" else want - 0.05 <= measured <= want + 1.5


def _tw_check(run: Run, tw: float | None, want: float) -> Check:
    """TIME_WAIT's length on the active closer A; a lab run that stops before it ends has not observed it."""
    en = f"TIME_WAIT lasts {want:g} s (2*MSL; Linux fixes 60 s) on the active closer A."
    zh = f"主动关闭方 A 的 TIME_WAIT 持续 {want:g} 秒（2MSL；Linux 固定 60 秒）。"
    if tw is None and run.world == "lab":
        why = "not observed: the lab run stopped before TIME_WAIT ended (tcpwise lab run --full)"
        return Check(en, False, zh, why, observed=False)
    return claim(
        en,
        zh,
        _tw_ok(run, tw, want),
        f"measured {round(tw, 3)}" if tw is not None else "never left TIME_WAIT",
    )


# ============================================================================================================
# handshake
# ============================================================================================================
def _handshake_build(p: P) -> Script:
    return Script(hosts(p), (Listen(0.0, "B", 80), Connect(0.0, "A", "B", 80)), link(p), duration=1.0)


def _handshake_check(run: Run, p: P) -> list[Check]:
    sa, sb = q.sends(run, "A"), q.sends(run, "B")
    syn = sa[0].segment if sa else None
    synack = sb[0].segment if sb else None
    ack = sa[1].segment if len(sa) > 1 else None
    j = syn.seq if syn else None
    k = synack.seq if synack else None
    return [
        claim(
            "A opens with a SYN carrying its initial sequence number J and no ACK.",
            "A 先发 SYN，携带初始序列号 J，不带 ACK。",
            syn is not None and syn.flags == "S",
            f"first segment from A: {syn.flags if syn else None} seq={j}",
        ),
        claim(
            "B answers SYN-ACK with its own ISN K and ack = J+1.",
            "B 回 SYN-ACK：自己的初始序列号 K，ack = J+1。",
            synack is not None and j is not None and synack.flags == "SA" and synack.ack == seq_add(j, 1),
            f"SA seq={k} ack={synack.ack if synack else None}, J+1={None if j is None else seq_add(j, 1)}",
        ),
        claim(
            "A completes with ACK: seq = J+1, ack = K+1.",
            "A 再回 ACK：seq = J+1，ack = K+1。",
            ack is not None
            and k is not None
            and j is not None
            and ack.flags == "A"
            and ack.ack == seq_add(k, 1)
            and ack.seq == seq_add(j, 1),
            f"{ack.flags if ack else None} seq={ack.seq if ack else None} ack={ack.ack if ack else None}",
        ),
        claim(
            "A goes SYN_SENT -> ESTABLISHED.",
            "A 的状态：SYN_SENT -> ESTABLISHED。",
            q.state_path(run, "A") == ["SYN_SENT", "ESTABLISHED"],
            " -> ".join(q.state_path(run, "A")),
        ),
        claim(
            "B goes LISTEN -> SYN_RCVD -> ESTABLISHED.",
            "B 的状态：LISTEN -> SYN_RCVD -> ESTABLISHED。",
            q.state_path(run, "B", start="LISTEN") == ["LISTEN", "SYN_RCVD", "ESTABLISHED"],
            " -> ".join(q.state_path(run, "B", start="LISTEN")),
        ),
        claim(
            "Three segments open the connection, no more.",
            "建立连接恰好三个报文段。",
            len(q.sends(run)) == 3,
            f"{len(q.sends(run))} segments",
        ),
    ]


def _handshake_narrate(run: Run, p: P) -> tuple[str, str]:
    j, k = q.isn_of(run, "A"), q.isn_of(run, "B")
    ta, tb = q.first_time_in(run, "A", "ESTABLISHED"), q.first_time_in(run, "B", "ESTABLISHED")
    en = (
        f"A sends SYN with ISN J={j}; B replies SYN-ACK with ISN K={k}, ack=J+1; A's ACK (ack=K+1) completes it. "
        f"A is ESTABLISHED after one round trip ({fmt_time(ta)}), B half a round trip later ({fmt_time(tb)}): the "
        f"client may send data before the server has seen the third segment."
    )
    zh = (
        f"A 发送 SYN，初始序列号 J={j}；B 回 SYN-ACK，初始序列号 K={k}，ack=J+1；A 回 ACK（ack=K+1）完成握手。"
        f"A 在一个往返后进入 ESTABLISHED（{fmt_time(ta)}），B 再晚半个往返（{fmt_time(tb)}）：客户端可以在服务端收到第三个报文之前就发送数据。"
    )
    return en, zh


register(
    Scenario(
        id="handshake",
        title="Three-way handshake",
        title_zh="三次握手",
        claim="SYN seq=J; SYN-ACK seq=K ack=J+1; ACK ack=K+1. A: SYN_SENT->ESTABLISHED, B: LISTEN->SYN_RCVD->ESTABLISHED.",
        claim_zh="SYN seq=J；SYN-ACK seq=K ack=J+1；ACK ack=K+1。A：SYN_SENT->ESTABLISHED，B：LISTEN->SYN_RCVD->ESTABLISHED。",
        params={},
        build=_handshake_build,
        check=_handshake_check,
        narrate=_handshake_narrate,
        lab=True,
        tags=("open",),
    )
)


# ============================================================================================================
# simultaneous-open
# ============================================================================================================
def _simopen_build(p: P) -> Script:
    return Script(
        hosts(p),
        (Connect(0.0, "A", "B", 6000, sport=5000), Connect(0.0, "B", "A", 5000, sport=6000)),
        link(p),
        duration=1.0,
    )


def _simopen_check(run: Run, p: P) -> list[Check]:
    want = ["SYN_SENT", "SYN_RCVD", "ESTABLISHED"]
    pa, pb = q.state_path(run, "A"), q.state_path(run, "B")
    flags = q.flags_seq(q.sends(run))
    return [
        claim(
            "A goes SYN_SENT -> SYN_RCVD -> ESTABLISHED.",
            "A：SYN_SENT -> SYN_RCVD -> ESTABLISHED。",
            pa == want,
            " -> ".join(pa),
        ),
        claim(
            "B goes SYN_SENT -> SYN_RCVD -> ESTABLISHED.",
            "B：SYN_SENT -> SYN_RCVD -> ESTABLISHED。",
            pb == want,
            " -> ".join(pb),
        ),
        claim(
            "Two SYNs cross, then two SYN-ACKs cross (the four segments of RFC 793 Figure 8); Linux then ACKs "
            "each SYN-ACK, six segments in all.",
            "两个 SYN 交叉，然后两个 SYN-ACK 交叉（RFC 793 图 8 的四个报文段）；Linux 随后各自确认对方的 SYN-ACK，共六个报文段。",
            sorted(flags) == ["A", "A", "S", "S", "SA", "SA"] and flags[:2] == ["S", "S"],
            " ".join(flags),
        ),
    ]


def _simopen_narrate(run: Run, p: P) -> tuple[str, str]:
    t = q.first_time_in(run, "A", "ESTABLISHED")
    en = (
        "A and B connect to each other at the same instant with fixed ports. Each SYN reaches a socket in SYN_SENT, "
        f"which moves to SYN_RCVD and answers SYN-ACK; each SYN-ACK then completes the open. Both are ESTABLISHED at "
        f"{fmt_time(t)}: one connection, not two. Linux acknowledges each SYN-ACK as well, so {len(q.sends(run))} "
        "segments cross where RFC 793's figure draws four."
    )
    zh = (
        "A 和 B 在同一时刻用固定端口互相连接。每个 SYN 到达处于 SYN_SENT 的套接字，它转入 SYN_RCVD 并回复 SYN-ACK；"
        f"随后每个 SYN-ACK 完成打开。双方在 {fmt_time(t)} 进入 ESTABLISHED：只有一条连接，不是两条。Linux 还会确认每个 SYN-ACK，"
        f"所以共有 {len(q.sends(run))} 个报文段，而 RFC 793 的图中只画了四个。"
    )
    return en, zh


register(
    Scenario(
        id="simultaneous-open",
        title="Simultaneous open",
        title_zh="同时打开",
        claim="Both send SYN: SYN_SENT->SYN_RCVD->ESTABLISHED on both sides; 4 segments (SYNs, SYN-ACKs) plus, on "
        "Linux, an ACK from each side.",
        claim_zh="双方同时发送 SYN：两端都经历 SYN_SENT->SYN_RCVD->ESTABLISHED；4 个报文段（SYN、SYN-ACK），Linux 上双方还各回一个 ACK。",
        params={},
        build=_simopen_build,
        check=_simopen_check,
        narrate=_simopen_narrate,
        lab=True,
        tags=("open",),
    )
)


# ============================================================================================================
# close and close-three-segments
# ============================================================================================================
def _close_build(p: P) -> Script:
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80),
        Close(1.0, "A"),
        Close(1.0 + p["server_close_after"], "B", sock="s"),
    )
    return Script(hosts(p), steps, link(p), duration=2.0 + p["server_close_after"] + p["time_wait"])


def _teardown(run: Run, t0: float) -> list[Any]:
    return [e for e in q.sends(run) if e.t >= t0 - 1e-9]


def _close_checks_common(run: Run, p: P) -> tuple[list[Check], dict[str, Any]]:
    ja, kb = q.isn_of(run, "A"), q.isn_of(run, "B")
    fin_a = next((e for e in q.sends(run, "A") if "F" in e.segment.flags), None)
    fin_b = next((e for e in q.sends(run, "B") if "F" in e.segment.flags), None)
    u = fin_a.segment.seq if fin_a else None
    w = fin_b.segment.seq if fin_b else None
    ack_u = next(
        (e for e in q.sends(run, "B") if e.segment.ack == seq_add(u or 0, 1) and "A" in e.segment.flags),
        None,
    )
    ack_w = next(
        (e for e in q.sends(run, "A") if fin_b and e.t >= fin_b.t and e.segment.ack == seq_add(w or 0, 1)),
        None,
    )
    tw = q.time_in_state(run, "A", "TIME_WAIT")
    t_tw = q.first_time_in(run, "A", "TIME_WAIT")
    t_fin_b_rcv = next((e.t for e in q.recvs(run, "A") if "F" in e.segment.flags), None)
    t_lastack = q.first_time_in(run, "B", "LAST_ACK")
    checks = [
        claim(
            "A's FIN has seq=u; B acknowledges it with ack=u+1.",
            "A 的 FIN seq=u；B 以 ack=u+1 确认。",
            fin_a is not None and ack_u is not None,
            f"u={q.rel(u, ja) if u is not None else None} (relative), ack=u+1 sent by B: {ack_u is not None}",
        ),
        claim(
            "B's FIN has seq=w; A acknowledges it with ack=w+1.",
            "B 的 FIN seq=w；A 以 ack=w+1 确认。",
            fin_b is not None and ack_w is not None,
            f"w={q.rel(w, kb) if w is not None else None} (relative), ack=w+1 sent by A: {ack_w is not None}",
        ),
        claim(
            "A enters TIME_WAIT only when B's FIN arrives, not when B enters LAST_ACK.",
            "A 只有在收到 B 的 FIN 时才进入 TIME_WAIT，而不是在 B 进入 LAST_ACK 时。",
            t_tw is not None
            and t_fin_b_rcv is not None
            and abs(t_tw - t_fin_b_rcv) < _tol(run)
            and t_lastack is not None
            and t_tw > t_lastack,
            f"B LAST_ACK at {fmt_time(t_lastack)}, B's FIN reaches A at {fmt_time(t_fin_b_rcv)}, A TIME_WAIT at {fmt_time(t_tw)}",
        ),
        _tw_check(run, tw, p["time_wait"]),
    ]
    return checks, {"u": u, "w": w, "tw": tw, "fin_a": fin_a, "fin_b": fin_b}


def _close_check(run: Run, p: P) -> list[Check]:
    checks, v = _close_checks_common(run, p)
    pa, pb = q.state_path(run, "A"), q.state_path(run, "B")
    tear = _teardown(run, 1.0)
    checks = [
        claim(
            "A: ESTABLISHED -> FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT -> CLOSED.",
            "A：ESTABLISHED -> FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT -> CLOSED。",
            pa[1:] == ["ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"],
            " -> ".join(pa),
        ),
        claim(
            "B: ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> CLOSED.",
            "B：ESTABLISHED -> CLOSE_WAIT -> LAST_ACK -> CLOSED。",
            q.state_path(run, "B")[1:] == ["ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"],
            " -> ".join(pb),
        ),
        claim(
            "Four segments close the connection: FIN, ACK, FIN, ACK.",
            "关闭用四个报文段：FIN、ACK、FIN、ACK。",
            q.flags_seq(tear) == ["FA", "A", "FA", "A"],
            " ".join(q.flags_seq(tear)),
        ),
    ] + checks
    return checks


def _close_narrate(run: Run, p: P) -> tuple[str, str]:
    tw = q.time_in_state(run, "A", "TIME_WAIT")
    t2 = q.time_in_state(run, "B", "CLOSE_WAIT")
    # A lab run shorter than TIME_WAIT does not see it end: say so instead of "n/a s".
    stay_en = (
        f"stays {fmt_num(tw)} s" if tw is not None else "stays until its timer fires (past this run's end)"
    )
    stay_zh = f"停留 {fmt_num(tw)} 秒" if tw is not None else "一直停留到定时器到期（超出本次运行的时长）"
    en = (
        f"A calls close(): FIN. B's kernel ACKs at once and B sits in CLOSE_WAIT for {fmt_time(t2)} until its application "
        f"calls close() — this is the state a server that forgets to close() piles up. B's FIN moves B to LAST_ACK; "
        f"when it reaches A, A enters TIME_WAIT, ACKs, and {stay_en} before the 4-tuple is free again. "
        f"Four segments, because each direction is closed on its own."
    )
    zh = (
        f"A 调用 close()：发出 FIN。B 的内核立即回 ACK，B 在 CLOSE_WAIT 停留 {fmt_num(t2, '.3f')} 秒，直到应用调用 close()——"
        f"忘记 close() 的服务端堆积的正是这个状态。B 的 FIN 使 B 进入 LAST_ACK；它到达 A 时，A 进入 TIME_WAIT 并回 ACK，"
        f"{stay_zh}后四元组才可再用。之所以四次，是因为两个方向各自关闭。"
    )
    return en, zh


_CLOSE_PARAMS = {
    "time_wait": TW_PARAM,
    "server_close_after": Param(
        0.5,
        "seconds B's application waits after EOF before close()",
        "B 的应用读到 EOF 后多久才调用 close()（秒）",
        unit="s",
        lo=0.0,
        hi=3600.0,
    ),
}

register(
    Scenario(
        id="close",
        title="Four-way teardown",
        title_zh="四次挥手",
        claim="A FIN_WAIT_1->FIN_WAIT_2->TIME_WAIT->CLOSED after 2*MSL; B CLOSE_WAIT->LAST_ACK->CLOSED; seq/ack u+1, w+1.",
        claim_zh="A：FIN_WAIT_1->FIN_WAIT_2->TIME_WAIT->2MSL 后 CLOSED；B：CLOSE_WAIT->LAST_ACK->CLOSED；确认号 u+1、w+1。",
        params=_CLOSE_PARAMS,
        build=_close_build,
        check=_close_check,
        narrate=_close_narrate,
        lab=True,
        tags=("close",),
    )
)


def _close3_build(p: P) -> Script:
    steps = (Listen(0.0, "B", 80, on_eof="close"), Connect(0.0, "A", "B", 80), Close(1.0, "A"))
    return Script(hosts(p), steps, link(p), duration=2.0 + p["time_wait"])


def _close3_check(run: Run, p: P) -> list[Check]:
    checks, v = _close_checks_common(run, p)
    tear = _teardown(run, 1.0)
    fin_b = v["fin_b"]
    u = v["u"]
    t_cw = q.first_time_in(run, "B", "CLOSE_WAIT")
    t_la = q.first_time_in(run, "B", "LAST_ACK")
    return [
        claim(
            "Three segments close the connection: FIN, FIN+ACK, ACK.",
            "关闭只用了三个报文段：FIN、FIN+ACK、ACK。",
            q.flags_seq(tear) == ["FA", "FA", "A"],
            " ".join(q.flags_seq(tear)),
        ),
        claim(
            "B's FIN carries the ACK of A's FIN (ack=u+1): the second and third of the four are merged.",
            "B 的 FIN 同时确认了 A 的 FIN（ack=u+1）：四次中的第二、第三个报文合并了。",
            fin_b is not None and u is not None and fin_b.segment.ack == seq_add(u, 1),
            f"B's FIN: {fin_b.segment.flags if fin_b else None} ack=u+1: {fin_b is not None and u is not None and fin_b.segment.ack == seq_add(u, 1)}",
        ),
        claim(
            "B passes CLOSE_WAIT -> LAST_ACK in the same instant (its application closed on EOF).",
            "B 在同一时刻经过 CLOSE_WAIT -> LAST_ACK（应用读到 EOF 立即关闭）。",
            t_cw is not None and t_la is not None and abs(t_la - t_cw) < _tol(run),
            f"CLOSE_WAIT {fmt_time(t_cw)}, LAST_ACK {fmt_time(t_la)}",
        ),
    ] + checks[2:]


def _close3_narrate(run: Run, p: P) -> tuple[str, str]:
    en = (
        "B's application closes as soon as it reads EOF, so when the kernel is about to acknowledge A's FIN it already "
        "has a FIN of its own to send: one FIN+ACK segment does both jobs. The teardown takes three segments — what "
        "Linux captures usually show. The states are unchanged: B still passes CLOSE_WAIT, for zero seconds."
    )
    zh = (
        "B 的应用读到 EOF 立即关闭，因此内核在确认 A 的 FIN 时已经有自己的 FIN 要发：一个 FIN+ACK 报文同时完成两件事。"
        "挥手只用三个报文段——这正是 Linux 抓包中常见的样子。状态不变：B 仍然经过 CLOSE_WAIT，只是停留 0 秒。"
    )
    return en, zh


register(
    Scenario(
        id="close-three-segments",
        title="The four often become three",
        title_zh="四次挥手常常变成三次",
        claim="B closes at once: its FIN piggybacks on the ACK (FA), as Linux often does.",
        claim_zh="B 立即关闭：它的 FIN 搭载在 ACK 上（FA），Linux 常见如此。",
        params={"time_wait": TW_PARAM},
        build=_close3_build,
        check=_close3_check,
        narrate=_close3_narrate,
        lab=True,
        tags=("close",),
    )
)


# ============================================================================================================
# half-close
# ============================================================================================================
def _half_build(p: P) -> Script:
    n = p["bytes"]
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80),
        Send(0.5, "A", 100),
        Shutdown(1.0, "A"),
        Send(1.5, "B", n, sock="s"),
        Send(2.0, "B", n, sock="s"),
        Close(2.5, "B", sock="s"),
        Close(3.0, "A"),
    )
    return Script(hosts(p), steps, link(p), duration=4.0 + p["time_wait"])


def _half_check(run: Run, p: P) -> list[Check]:
    # Data B sent while in CLOSE_WAIT, data A received while in FIN_WAIT_2.
    def state_at(host: str, t: float) -> str | None:
        st = None
        for e in q.state_events(run, host):
            if e.t <= t + 1e-12:
                st = e.to_state
        return st

    b_sent = sum(e.segment.len for e in q.sends(run, "B") if state_at("B", e.t) == "CLOSE_WAIT")
    a_got = sum(e.segment.len for e in q.recvs(run, "A") if state_at("A", e.t) == "FIN_WAIT_2")
    reads = sum(e.nbytes or 0 for e in q.apps(run, "A", AppCall.RECV))
    pa = q.state_path(run, "A")
    return [
        claim(
            "After A's shutdown(SHUT_WR), B keeps sending data while in CLOSE_WAIT.",
            "A 调用 shutdown(SHUT_WR) 后，B 在 CLOSE_WAIT 中继续发送数据。",
            b_sent == 2 * p["bytes"],
            f"B sent {b_sent} bytes in CLOSE_WAIT",
        ),
        claim(
            "A still receives in FIN_WAIT_2, and its application reads every byte.",
            "A 在 FIN_WAIT_2 中仍能接收，应用读到全部字节。",
            a_got == 2 * p["bytes"] and reads == 2 * p["bytes"],
            f"A received {a_got} bytes in FIN_WAIT_2, read {reads}",
        ),
        claim(
            "A ends via TIME_WAIT, B via LAST_ACK: the two directions closed separately.",
            "A 经 TIME_WAIT 结束，B 经 LAST_ACK 结束：两个方向分别关闭。",
            "TIME_WAIT" in pa and "LAST_ACK" in q.state_path(run, "B"),
            " -> ".join(pa),
        ),
    ]


def _half_narrate(run: Run, p: P) -> tuple[str, str]:
    t = q.time_in_state(run, "A", "FIN_WAIT_2")
    en = (
        f"A sends its request and shuts down its sending side. Its FIN only says 'no more data from me': B, in "
        f"CLOSE_WAIT, sends {2 * p['bytes']} more bytes, which A receives during its {fmt_num(t, '.2f')} s in FIN_WAIT_2. Only "
        f"when B is done does it send its own FIN. That independence of the two directions is why closing takes "
        f"four segments."
    )
    zh = (
        f"A 发送请求后关闭自己的发送方向。它的 FIN 只表示“我不再发数据”：处于 CLOSE_WAIT 的 B 又发送了 {2 * p['bytes']} "
        f"字节，A 在 FIN_WAIT_2 的 {fmt_num(t, '.2f')} 秒内全部收到。B 发完后才发送自己的 FIN。两个方向相互独立，所以关闭需要四个报文段。"
    )
    return en, zh


register(
    Scenario(
        id="half-close",
        title="Half-close: why four segments",
        title_zh="半关闭：为什么是四次",
        claim="A shutdown(SHUT_WR); B keeps sending data in CLOSE_WAIT; A still receives in FIN_WAIT_2.",
        claim_zh="A 调用 shutdown(SHUT_WR)；B 在 CLOSE_WAIT 中继续发数据；A 在 FIN_WAIT_2 中仍能接收。",
        params={
            "time_wait": TW_PARAM,
            "bytes": Param(
                1000,
                "bytes B sends after A's FIN, twice",
                "A 的 FIN 之后 B 每次发送的字节数（两次）",
                unit="bytes",
                lo=1,
                hi=10_000_000,
            ),
        },
        build=_half_build,
        check=_half_check,
        narrate=_half_narrate,
        lab=True,
        tags=("close",),
    )
)


# ============================================================================================================
# simultaneous-close
# ============================================================================================================
def _simclose_build(p: P) -> Script:
    steps = (Listen(0.0, "B", 80), Connect(0.0, "A", "B", 80), Close(1.0, "A"), Close(1.0, "B", sock="s"))
    return Script(hosts(p), steps, link(p), duration=2.0 + p["time_wait"])


def _simclose_check(run: Run, p: P) -> list[Check]:
    want = ["FIN_WAIT_1", "CLOSING", "TIME_WAIT", "CLOSED"]
    pa, pb = q.state_path(run, "A"), q.state_path(run, "B")
    return [
        claim(
            "A: FIN_WAIT_1 -> CLOSING -> TIME_WAIT -> CLOSED.",
            "A：FIN_WAIT_1 -> CLOSING -> TIME_WAIT -> CLOSED。",
            pa[-4:] == want,
            " -> ".join(pa),
        ),
        claim(
            "B: FIN_WAIT_1 -> CLOSING -> TIME_WAIT -> CLOSED.",
            "B：FIN_WAIT_1 -> CLOSING -> TIME_WAIT -> CLOSED。",
            pb[-4:] == want,
            " -> ".join(pb),
        ),
        claim(
            "Both ends hold TIME_WAIT: each was an active closer.",
            "两端都进入 TIME_WAIT：双方都是主动关闭方。",
            q.time_in_state(run, "A", "TIME_WAIT") is not None
            and q.time_in_state(run, "B", "TIME_WAIT") is not None,
            f"A {q.time_in_state(run, 'A', 'TIME_WAIT')} s, B {q.time_in_state(run, 'B', 'TIME_WAIT')} s",
        ),
    ]


def _simclose_narrate(run: Run, p: P) -> tuple[str, str]:
    en = (
        "Both applications close at the same instant. Each FIN crosses the other on the wire, so each side receives "
        "a FIN while its own is unacknowledged: FIN_WAIT_1 -> CLOSING. The ACKs that follow move both to TIME_WAIT: "
        "there is no passive closer, so both hold TIME_WAIT."
    )
    zh = (
        "双方应用同时关闭。两个 FIN 在链路上交叉，各自在自己的 FIN 尚未被确认时收到对方的 FIN：FIN_WAIT_1 -> CLOSING。"
        "随后的 ACK 使双方进入 TIME_WAIT：没有被动关闭方，两端都持有 TIME_WAIT。"
    )
    return en, zh


register(
    Scenario(
        id="simultaneous-close",
        title="Simultaneous close",
        title_zh="同时关闭",
        claim="Both close: FIN_WAIT_1->CLOSING->TIME_WAIT on both sides.",
        claim_zh="双方同时关闭：两端都经历 FIN_WAIT_1->CLOSING->TIME_WAIT。",
        params={"time_wait": TW_PARAM},
        build=_simclose_build,
        check=_simclose_check,
        narrate=_simclose_narrate,
        lab=True,
        tags=("close",),
    )
)


# ============================================================================================================
# lost-last-ack
# ============================================================================================================
def _lla_build(p: P) -> Script:
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80),
        DropNext(0.5, "A", "B", flags="A", count=1),  # A's next pure ACK is the last ACK of the teardown
        Close(1.0, "A"),
        Close(1.5, "B", sock="s"),
    )
    return Script(hosts(p), steps, link(p), duration=3.0 + max(p["time_wait"], 0) + 2.0)


def _lla_check(run: Run, p: P) -> list[Check]:
    dropped = [e for e in q.drops(run, "A") if e.segment.flags == "A"]
    fins_b = [e for e in q.sends(run, "B") if "F" in e.segment.flags]
    retrans = len(fins_b) >= 2 and fins_b[0].segment.seq == fins_b[1].segment.seq
    gap = fins_b[1].t - fins_b[0].t if len(fins_b) >= 2 else None
    checks = [
        claim(
            "A's last ACK is lost on the way to B.",
            "A 的最后一个 ACK 在去往 B 的途中丢失。",
            len(dropped) == 1,
            f"{len(dropped)} dropped pure ACK(s) from A",
        ),
        claim(
            "B, in LAST_ACK, retransmits its FIN (same seq) after its retransmission timeout.",
            "处于 LAST_ACK 的 B 在重传超时后重传 FIN（序列号相同）。",
            retrans,
            f"FINs from B: {len(fins_b)}, interval {gap if gap is None else round(gap, 3)} s",
        ),
    ]
    if p["time_wait"] > 0:
        acks_in_tw = [
            e for e in q.sends(run, "A") if len(fins_b) >= 2 and e.t > fins_b[1].t and e.segment.flags == "A"
        ]
        t_tw = q.first_time_in(run, "A", "TIME_WAIT")
        tw = q.time_in_state(run, "A", "TIME_WAIT")
        second_fin_at_a = next(
            (
                e.t
                for e in q.recvs(run, "A")
                if "F" in e.segment.flags and len(fins_b) >= 2 and e.t > fins_b[1].t
            ),
            None,
        )
        restarted = (
            t_tw is not None
            and tw is not None
            and second_fin_at_a is not None
            and _tw_ok(run, (t_tw + tw) - second_fin_at_a, p["time_wait"])
        )
        pb = q.state_path(run, "B")
        checks += [
            claim(
                "A, still in TIME_WAIT, answers the retransmitted FIN with a new ACK.",
                "仍处于 TIME_WAIT 的 A 对重传的 FIN 再回一个 ACK。",
                len(acks_in_tw) >= 1,
                f"{len(acks_in_tw)} ACK(s) from A after the second FIN",
            ),
            claim(
                "A restarts its TIME_WAIT timer when the retransmitted FIN arrives.",
                "重传的 FIN 到达时，A 重新开始 TIME_WAIT 计时。",
                restarted,
                f"TIME_WAIT from {fmt_time(t_tw)} for {tw if tw is None else round(tw, 3)} s; second FIN arrived at {fmt_time(second_fin_at_a)}",
            ),
            claim(
                "B closes cleanly (LAST_ACK -> CLOSED by the ACK) with no error.",
                "B 正常关闭（收到 ACK：LAST_ACK -> CLOSED），没有错误。",
                pb[-2:] == ["LAST_ACK", "CLOSED"] and not q.errors(run, "B"),
                " -> ".join(pb),
            ),
        ]
    else:
        rst_to_b = [e for e in q.recvs(run, "B") if "R" in e.segment.flags]
        err = q.errors(run, "B", "ECONNRESET")
        checks += [
            claim(
                "With no TIME_WAIT, A has forgotten the connection and answers the retransmitted FIN with RST.",
                "没有 TIME_WAIT 时，A 已忘记该连接，对重传的 FIN 回 RST。",
                len(rst_to_b) >= 1,
                f"{len(rst_to_b)} RST(s) reached B",
            ),
            claim(
                "B's connection ends in a reset: the application sees ECONNRESET instead of a clean close.",
                "B 的连接以复位告终：应用看到 ECONNRESET，而不是正常关闭。",
                len(err) >= 1,
                event_text(err[0]) if err else "no error seen",
            ),
        ]
    return checks


def _lla_narrate(run: Run, p: P) -> tuple[str, str]:
    fins_b = [e for e in q.sends(run, "B") if "F" in e.segment.flags]
    gap = fins_b[1].t - fins_b[0].t if len(fins_b) >= 2 else float("nan")
    if p["time_wait"] > 0:
        en = (
            f"A's final ACK is lost. B cannot tell, so after {gap:.3f} s (its RTO) it sends the FIN again. A is still "
            f"in TIME_WAIT, so it still knows the connection: it ACKs again and restarts its {p['time_wait']:g} s timer. "
            f"B closes cleanly. This is TIME_WAIT's first purpose: be there to re-ACK the peer's FIN."
        )
        zh = (
            f"A 的最后一个 ACK 丢失。B 无从得知，{gap:.3f} 秒后（它的 RTO）重传 FIN。A 仍处于 TIME_WAIT，仍然记得这条连接："
            f"再次回 ACK，并重新开始 {p['time_wait']:g} 秒计时。B 正常关闭。这就是 TIME_WAIT 的第一个作用：留下来重新确认对方的 FIN。"
        )
    else:
        en = (
            f"Same loss, but A keeps no TIME_WAIT (a model-only setting: Linux cannot do this). When B's FIN is "
            f"retransmitted after {gap:.3f} s, A has no connection for it and answers RST. B's close ends in a reset "
            f"instead of a clean shutdown."
        )
        zh = (
            f"同样的丢包，但 A 不保留 TIME_WAIT（仅模型可设置，Linux 做不到）。{gap:.3f} 秒后 B 重传 FIN 时，A 已没有对应连接，"
            f"回复 RST。B 的关闭以复位告终，而不是正常结束。"
        )
    return en, zh


register(
    Scenario(
        id="lost-last-ack",
        title="TIME_WAIT purpose 1: the lost last ACK",
        title_zh="TIME_WAIT 作用一：最后的 ACK 丢失",
        claim="Final ACK dropped; B retransmits FIN after RTO; A in TIME_WAIT re-ACKs and restarts its timer; B closes "
        "cleanly. With TIME_WAIT=0: B gets RST, app sees an error.",
        claim_zh="最后的 ACK 丢失；B 超时重传 FIN；TIME_WAIT 中的 A 再次确认并重启计时；B 正常关闭。TIME_WAIT=0 时：B 收到 RST，应用看到错误。",
        params={"time_wait": TW_PARAM},
        build=_lla_build,
        check=_lla_check,
        narrate=_lla_narrate,
        lab=True,
        tags=("close", "time_wait"),
    )
)


# ============================================================================================================
# server-close
# ============================================================================================================
def _sclose_build(p: P) -> Script:
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80, on_eof="close"),
        Send(0.5, "A", 100),
        Send(0.7, "B", p["response_bytes"], sock="s"),
        Close(0.7, "B", sock="s"),
    )
    return Script(hosts(p), steps, link(p), duration=2.0 + p["time_wait"])


def _sclose_check(run: Run, p: P) -> list[Check]:
    tw_b = q.time_in_state(run, "B", "TIME_WAIT")
    pa = q.state_path(run, "A")
    return [
        claim(
            "The server B closed first, so TIME_WAIT is on the server.",
            "服务端 B 先关闭，所以 TIME_WAIT 在服务端。",
            tw_b is not None,
            f"B in TIME_WAIT for {tw_b} s",
        ),
        claim(
            "The client A never enters TIME_WAIT: it went CLOSE_WAIT -> LAST_ACK -> CLOSED.",
            "客户端 A 从未进入 TIME_WAIT：它经历 CLOSE_WAIT -> LAST_ACK -> CLOSED。",
            "TIME_WAIT" not in pa and pa[-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"],
            " -> ".join(pa),
        ),
    ]


def _sclose_narrate(run: Run, p: P) -> tuple[str, str]:
    tw = q.time_in_state(run, "B", "TIME_WAIT")
    en = (
        f"An HTTP/1.0-style exchange: the server answers with {p['response_bytes']} bytes and closes at once. The "
        f"active closer is the server, so the server holds TIME_WAIT ({fmt_num(tw)} s per connection) and the client passes "
        f"through CLOSE_WAIT. TIME_WAIT lives on whoever sends the first FIN, not on 'the client'."
    )
    zh = (
        f"类似 HTTP/1.0 的交互：服务端返回 {p['response_bytes']} 字节后立即关闭。主动关闭方是服务端，所以 TIME_WAIT 在服务端"
        f"（每条连接 {fmt_num(tw)} 秒），客户端经过 CLOSE_WAIT。TIME_WAIT 属于先发 FIN 的一方，而不是“客户端”。"
    )
    return en, zh


register(
    Scenario(
        id="server-close",
        title="TIME_WAIT lives on the active closer",
        title_zh="TIME_WAIT 在主动关闭方",
        claim="Server closes first (HTTP short connection, LB kick): TIME_WAIT on the server.",
        claim_zh="服务端先关闭（HTTP 短连接、负载均衡踢连接）：TIME_WAIT 出现在服务端。",
        params={
            "time_wait": TW_PARAM,
            "response_bytes": Param(
                500, "bytes of the server's response", "服务端响应字节数", unit="bytes", lo=1, hi=10_000_000
            ),
        },
        build=_sclose_build,
        check=_sclose_check,
        narrate=_sclose_narrate,
        lab=True,
        tags=("close", "time_wait"),
    )
)

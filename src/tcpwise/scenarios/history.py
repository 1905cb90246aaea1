"""Old segments from the past: why the handshake has three segments, and TIME_WAIT's second purpose.

Both scenarios need the network to keep one segment far longer than the rest — the delay box
(:class:`tcpwise.sim.middlebox.HoldBack`) — so they are ``simulate`` scenarios, not scripts the lab can run.

* ``why-three`` — RFC 9293 §3.5 ("Recovery from Old Duplicate SYN", Figure 9; Figure 8 in RFC 793): a SYN from
  an attempt the client gave up long ago reaches the server. With the three-way handshake the server only gets
  to SYN_RCVD; the client, which has no such connection, answers the SYN-ACK with a RST (§3.10.7.1) and the
  server drops the half-open entry (§3.10.7.4, RST in SYN-RECEIVED of a passive open: back to LISTEN). The
  ``handshake=2`` variant runs the same story against a two-way server (:class:`tcpwise.sim.twoway.TwoWayServer`)
  which accepts the ghost at once.
* ``old-duplicate`` — RFC 9293 §3.6.1 / §3.10.7.4: TIME-WAIT lasts 2*MSL so that "all segments of the old
  connection" have left the network before the 4-tuple can be reused. A data segment of an old incarnation
  is held back; with TIME_WAIT the new connect() on the same 4-tuple is refused until long after it has died,
  with TIME_WAIT too short (``--set time_wait=1``, model only) and no timestamps the old bytes are accepted
  into the new connection; with timestamps PAWS (RFC 7323 §5) throws them away.
"""

from __future__ import annotations

from typing import Any

from tcpwise.errors import UsageError
from tcpwise.events import Check, Event, Run
from tcpwise.scenarios import query as q
from tcpwise.scenarios.base import Param, Scenario, claim, register
from tcpwise.scenarios.basic import A_ADDR, B_ADDR, TW_PARAM
from tcpwise.scenarios.fmt import fmt_time
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
from tcpwise.sim.middlebox import HoldBack
from tcpwise.sim.network import Packet
from tcpwise.sim.runner import payload_bytes, run_script
from tcpwise.vocab import SYN, AppCall, EventKind
from tcpwise.wire.seq import seq_add

P = dict[str, Any]
CPORT = 40000  # the client binds a fixed port: the old and new connections share the 4-tuple

# The ISN clock of RFC 9293 §3.4.1 / RFC 6528 §3: M ticks every 4 microseconds (tcpwise.endpoint.isn). Linux
# ticks every 64 ns (secure_tcp_seq -> seq_scale), which makes the new ISN run away even faster.
ISN_TICKS_PER_S = 250_000
A_WINDOW = 1 << 20  # both hosts' receive buffer (window scaling on): the largest window either advertises


# ============================================================================================================
# why-three
# ============================================================================================================
def _why3_build(p: P) -> Script:
    """The three-way story as a script (the lab runs it; the delay box that holds the old SYN is each world's
    own: the simulator's HoldBack, a hold rule in the lab's delay line). handshake=2 is model-only."""
    if p["handshake"] != 3:
        raise UsageError("handshake=2 is a model-only counterfactual (no kernel opens on a SYN alone)")
    return _why3_script(p)[0]


def _why3_script(p: P) -> tuple[Script, float]:
    if p["handshake"] not in (2, 3):
        raise UsageError("--set handshake= must be 3 (TCP) or 2 (the counterfactual two-way server)")
    if not 0 <= p["delay"] <= 0.3:
        raise UsageError("why-three needs 0 <= delay <= 0.3 s (a round trip below the 1 s initial RTO)")
    if p["old_syn_at"] <= 0.6:
        raise UsageError("--set old_syn_at= must be later than 0.6 s (after the client has given up)")
    if p["client"] not in ("connecting", "gone"):
        raise UsageError(
            "--set client= must be connecting (RFC 9293 Figure 9: A is in SYN_SENT again) or gone"
        )
    t_old = p["old_syn_at"]
    base: tuple[Any, ...] = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80, sport=CPORT),
        Close(0.5, "A"),
    )  # connect() timeout: the application gives up; the SYN stays in flight
    if p["client"] == "connecting":
        # RFC 9293 §3.5 Figure 9: A is opening a new connection (new ISN) when the old SYN reaches B. A's new SYN
        # is lost once, so the old one arrives first, as in the figure; A retransmits it one RTO later.
        t_new = t_old
        steps = base + (
            DropNext(t_old - 1e-3, "A", "B", flags="S"),
            Connect(t_new, "A", "B", 80, sport=CPORT),
        )
    else:
        t_new = t_old + 1.0
        steps = base + (Connect(t_new, "A", "B", 80, sport=CPORT),)
    hosts = (HostSpec("A", A_ADDR, "client"), HostSpec("B", B_ADDR, "server"))
    return Script(hosts, steps, LinkSpec(delay=p["delay"]), duration=t_old + 3.0), t_old


def _why3_simulate(p: P, seed: int) -> Run:
    script, t_old = _why3_script(p)
    box: list[HoldBack] = []
    ghost: list[Any] = []

    def setup(sim: Any) -> None:
        def first_syn(pkt: Packet) -> bool:
            return pkt.seg.flags == SYN

        hb = HoldBack(sim, first_syn, t_old)
        sim.channel("A", "B").elements.append((hb, "fwd"))
        box.append(hb)
        if p["handshake"] == 2:
            from tcpwise.sim.twoway import TwoWayServer

            ghost.append(TwoWayServer(sim.hosts["B"], 80, greeting=b"220 b.example ESMTP ready\r\n").attach())

    sim, run = run_script(script, seed, scenario="why-three", params=p, setup=setup)
    hb = box[0]
    lst = sim.hosts["B"].stack.listeners.get(80)
    run.summary["values"] = {
        "old_syn_seq": hb.held.seg.seq if hb.held else None,
        "held_at": hb.held_at,
        "delivered_at": hb.delivered_at,
        "syn_queue_at_end": len(lst.syn_queue) if lst else None,
        "ghosts": sum(1 for t, irs, _ in ghost[0].opened if hb.held and irs == hb.held.seg.seq)
        if ghost
        else 0,
    }
    return run


def _why3_facts(run: Run) -> dict[str, Any]:
    v = q.values(run)
    j_old = v.get("old_syn_seq")
    t_del = v.get("delivered_at") or 0.0
    b_sends = [e for e in q.sends(run, "B") if e.t >= t_del - 1e-9]
    synack = next(
        (e for e in b_sends if e.segment.flags == "SA" and e.segment.ack == seq_add(j_old or 0, 1)), None
    )
    k = synack.segment.seq if synack else None
    rst = next((e for e in q.sends(run, "A") if synack and e.t >= synack.t and "R" in e.segment.flags), None)
    # B's state events for the 4-tuple, from the old SYN's arrival until the next SYN_RCVD (the real connection)
    b_states = [e for e in q.state_events(run, "B") if e.t >= t_del - 1e-9]
    ghost_path: list[str] = []
    for i, e in enumerate(b_states):
        if i > 0 and e.to_state == "SYN_RCVD":
            break
        if not ghost_path:
            ghost_path.append(e.from_state or "")
        ghost_path.append(e.to_state or "")
    ghost_end = next((e.t for e in b_states if e.to_state == "CLOSED"), None)
    t_est = next((e.t for e in b_states[: len(ghost_path) - 1] if e.to_state == "ESTABLISHED"), None)
    acked_k = [
        e
        for e in q.sends(run, "A")
        if k is not None and "A" in e.segment.flags and e.segment.ack == seq_add(k, 1)
    ]
    new_syns = [
        e
        for e in q.sends(run, "A")
        if e.segment is not None and e.segment.flags == "S" and e.t >= t_del - 1e-9 and e.segment.seq != j_old
    ]
    j_new = new_syns[0].segment.seq if new_syns else None
    a_est = [t for t in q.entered(run, "A", "ESTABLISHED") if t > t_del]
    ghost_bytes = sum(e.segment.len for e in b_sends if ghost_end is None or e.t <= ghost_end)
    return {
        "j_old": j_old,
        "k": k,
        "synack": synack,
        "rst": rst,
        "path": ghost_path,
        "ghost_end": ghost_end,
        "t_est": t_est,
        "acked_k": acked_k,
        "j_new": j_new,
        "a_est": a_est,
        "t_del": t_del,
        "ghost_bytes": ghost_bytes,
        "v": v,
    }


def _why3_check(run: Run, p: P) -> list[Check]:
    f = _why3_facts(run)
    v = f["v"]
    j_old, k, rst = f["j_old"], f["k"], f["rst"]
    checks = [
        claim(
            "A delayed duplicate of an old SYN (from an attempt A gave up at 0.5 s) reaches B much later.",
            "一个旧的重复 SYN（A 在 0.5 秒时已放弃的那次连接尝试）很久之后才到达 B。",
            j_old is not None
            and f["t_del"] >= p["old_syn_at"] - 1e-9
            and q.apps(run, "A", AppCall.CLOSE) != [],
            f"SYN seq={j_old} held at {fmt_time(v.get('held_at'))}, delivered at {fmt_time(v.get('delivered_at'))}",
        ),
        claim(
            "B answers the old SYN with a SYN-ACK: its own ISN K and ack = J_old + 1.",
            "B 用 SYN-ACK 回应这个旧 SYN：自己的初始序列号 K，ack = J_old + 1。",
            f["synack"] is not None,
            f"SA seq={k} ack={None if j_old is None else seq_add(j_old, 1)}",
        ),
    ]
    if p["handshake"] == 3:
        rst_ok = rst is not None and rst.segment.seq == seq_add(j_old or 0, 1)
        if p["client"] == "connecting":
            a_states = [e for e in q.state_events(run, "A") if rst is not None and f["t_del"] <= e.t <= rst.t]
            rst_claim = claim(
                "A, in SYN_SENT with its new ISN, finds the SYN-ACK's ACK field (J_old+1) unacceptable and answers "
                "RST with seq = that ACK field, staying in SYN_SENT (RFC 9293 §3.10.7.3, Figure 9).",
                "处于 SYN_SENT、使用新 ISN 的 A 认为 SYN-ACK 的确认号（J_old+1）不可接受，回复 seq 等于该确认号的 RST，"
                "自己仍停留在 SYN_SENT（RFC 9293 §3.10.7.3，图 9）。",
                rst_ok and f["j_new"] is not None and [e.to_state for e in a_states] == ["SYN_SENT"],
                f"{rst.segment.flags if rst and rst.segment else None} seq={rst.segment.seq if rst and rst.segment else None}; "
                f"A's ISN J_new={f['j_new']}",
            )
        else:
            rst_claim = claim(
                "A has no such connection: it answers the SYN-ACK with RST, seq = its ACK field (RFC 9293 §3.10.7.1).",
                "A 没有这条连接：它以 RST 回应 SYN-ACK，seq 等于对方的确认号（RFC 9293 §3.10.7.1）。",
                rst_ok,
                f"{rst.segment.flags if rst and rst.segment else None} "
                f"seq={rst.segment.seq if rst and rst.segment else None}",
            )
        checks += [
            rst_claim,
            claim(
                "B drops the bogus half-connection: LISTEN -> SYN_RCVD -> CLOSED (back to LISTEN), never "
                "ESTABLISHED.",
                "B 丢弃这个伪造的半连接：LISTEN -> SYN_RCVD -> CLOSED（回到 LISTEN），从未进入 ESTABLISHED。",
                f["path"] == ["LISTEN", "SYN_RCVD", "CLOSED"],
                " -> ".join(f["path"]),
            ),
            claim(
                "No server resources are kept: the application accepts nothing from the old SYN and the SYN "
                "queue is empty again.",
                "服务端没有保留任何资源：应用没有 accept 到旧 SYN 的连接，SYN 队列重新为空。",
                f["t_est"] is None
                and v.get("syn_queue_at_end") == 0
                and not [
                    e
                    for e in q.apps(run, "B", AppCall.ACCEPT)
                    if e.t < (f["ghost_end"] if f["ghost_end"] is not None else f["t_del"] + 1.0)
                ],
                f"accept() calls for the ghost: 0 expected; SYN queue at end: {v.get('syn_queue_at_end')}",
            ),
            claim(
                "A's real connection then opens normally with a new ISN (J_new ≠ J_old).",
                "随后 A 的真正连接以新的初始序列号正常建立（J_new ≠ J_old）。",
                bool(f["a_est"]) and f["j_new"] is not None and f["j_new"] != j_old,
                f"J_new={f['j_new']}, A ESTABLISHED at {fmt_time(f['a_est'][0] if f['a_est'] else None)}",
            ),
        ]
    else:
        life = (
            (f["ghost_end"] - f["t_est"]) if f["ghost_end"] is not None and f["t_est"] is not None else None
        )
        checks += [
            claim(
                "The two-way server opens a ghost connection on the old SYN alone: ESTABLISHED at once.",
                "两次握手的服务端仅凭旧 SYN 就打开了一条幽灵连接：立即进入 ESTABLISHED。",
                f["t_est"] is not None and abs(f["t_est"] - f["t_del"]) < 1e-9,
                " -> ".join(f["path"]),
            ),
            claim(
                "The ghost wastes server state: the application accepted it and sent its greeting to nobody.",
                "幽灵连接浪费了服务端资源：应用 accept 了它，并向不存在的对端发送了问候。",
                v.get("ghosts", 0) >= 1 and f["ghost_bytes"] > 0,
                f"ghost connections accepted: {v.get('ghosts')}, bytes sent to it: {f['ghost_bytes']}, "
                f"lived {life if life is None else round(life, 3)} s until A's RST happened to kill it",
            ),
            claim(
                "B's ISN K was never confirmed: no segment from A acknowledges K+1 for the ghost.",
                "B 的初始序列号 K 从未被确认：A 没有任何报文确认 K+1。",
                k is not None and not f["acked_k"],
                f"segments from A with ack=K+1: {len(f['acked_k'])}",
            ),
        ]
    return checks


def _why3_narrate(run: Run, p: P) -> tuple[str, str]:
    f = _why3_facts(run)
    v = f["v"]
    j_old, k = f["j_old"], f["k"]
    t_del = v.get("delivered_at") or 0.0
    if p["handshake"] == 3:
        who = (
            "A, by now in SYN_SENT with a new ISN, sees an ACK for a SYN it never sent in this connection and "
            "answers RST"
            if p["client"] == "connecting"
            else "A has no such connection and answers RST"
        )
        who_zh = (
            "此时 A 正以新的 ISN 处于 SYN_SENT，看到的是对它在本连接中从未发送过的 SYN 的确认，于是回复 RST"
            if p["client"] == "connecting"
            else "A 没有这条连接，回复 RST"
        )
        en = (
            f"A's first SYN (seq {j_old}) gets stuck in the network; A's application gives up at 0.5 s. At "
            f"{t_del:.3f} s the old SYN reaches B, which cannot tell it from a fresh one: it goes to SYN_RCVD and "
            f"answers SYN-ACK seq={k} ack={None if j_old is None else seq_add(j_old, 1)}. {who}; B drops the entry — LISTEN -> SYN_RCVD -> CLOSED, nothing accepted, "
            f"SYN queue {v.get('syn_queue_at_end')}. That third segment is the client's veto: the server commits "
            f"nothing until the client confirms K+1. A's real connection (ISN {f['j_new']}) then opens normally."
        )
        zh = (
            f"A 的第一个 SYN（seq {j_old}）滞留在网络中；A 的应用在 0.5 秒时放弃。{t_del:.3f} 秒时这个旧 SYN 到达 B，"
            f"B 无法把它和新的 SYN 区分开：进入 SYN_RCVD 并回复 SYN-ACK seq={k} ack="
            f"{None if j_old is None else seq_add(j_old, 1)}。{who_zh}；B 删除该条目——"
            f"LISTEN -> SYN_RCVD -> CLOSED，没有 accept 任何连接，SYN 队列为 {v.get('syn_queue_at_end')}。"
            f"第三个报文就是客户端的否决权：在客户端确认 K+1 之前服务端不作任何承诺。随后 A 的真正连接（ISN {f['j_new']}）正常建立。"
        )
    else:
        en = (
            f"The same old SYN (seq {j_old}) reaches a two-way server at {t_del:.3f} s. It opens the connection "
            f"at once: ESTABLISHED, accept(), and a greeting of {f['ghost_bytes']} bytes sent to a client that "
            f"never asked — server state and work for a ghost. Its ISN K={k} is never acknowledged by A "
            f"({len(f['acked_k'])} segments with ack=K+1), so nothing ever proved A saw it. Here A is alive and "
            f"its RST kills the ghost; a client that was gone would leave it to the server's timeouts."
        )
        zh = (
            f"同一个旧 SYN（seq {j_old}）在 {t_del:.3f} 秒到达一个两次握手的服务端。它立即打开连接：ESTABLISHED、accept()，"
            f"并向一个从未请求的客户端发送了 {f['ghost_bytes']} 字节的问候——为幽灵连接付出了状态和工作。它的初始序列号 K={k} "
            f"从未被 A 确认（ack=K+1 的报文有 {len(f['acked_k'])} 个），没有任何证据表明 A 见过它。这里 A 还活着，"
            f"它的 RST 杀死了幽灵连接；如果客户端已经不在，幽灵连接只能等服务端超时。"
        )
    return en, zh


register(
    Scenario(
        id="why-three",
        title="Why three segments, not two",
        title_zh="为什么是三次握手而不是两次",
        claim="RFC 9293 old-duplicate-SYN case: a delayed old SYN arrives; with 3-way the client's RST aborts the bogus "
        "half; a 2-way variant of the model opens a ghost connection and wastes server state; 2-way leaves B's "
        "ISN unconfirmed.",
        claim_zh="RFC 9293 的旧重复 SYN 情形：一个延迟的旧 SYN 到达；三次握手时客户端的 RST 终止伪造的半连接；"
        "两次握手的模型变体会打开一条幽灵连接、浪费服务端资源，而且 B 的初始序列号从未被确认。",
        params={
            "handshake": Param(
                3,
                "3 = TCP; 2 = a counterfactual two-way server (the SYN alone opens the connection)",
                "3 = TCP；2 = 假想的两次握手服务端（仅凭 SYN 就打开连接）",
                choices=(2, 3),
            ),
            "client": Param(
                "connecting",
                "what A is doing when the old SYN arrives: connecting (RFC 9293 Figure 9: "
                "SYN_SENT with a new ISN) or gone (the attempt was abandoned, nothing open)",
                "旧 SYN 到达时 A 在做什么：connecting（RFC 9293 图 9：以新的 ISN 处于 SYN_SENT）或 gone（已放弃，没有打开的连接）",
                choices=("connecting", "gone"),
            ),
            "old_syn_at": Param(
                5.0,
                "when the delayed old SYN is released towards B (seconds)",
                "延迟的旧 SYN 何时被放行到 B（秒）",
                unit="s",
                lo=0.0,
                hi=3600.0,
            ),
        },
        simulate=_why3_simulate,
        build=_why3_build,
        lab=True,
        check=_why3_check,
        narrate=_why3_narrate,
        tags=("open", "history"),
    )
)


# ============================================================================================================
# old-duplicate
# ============================================================================================================
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _new_payload(n: int) -> bytes:
    return bytes(_UPPER[i % 26] for i in range(n))


def _od_simulate(p: P, seed: int) -> Run:
    d = p["delay"]
    t2 = p["reconnect_at"]
    if p["time_wait"] < 0 or t2 <= 1.0 or d <= 0 or d > 0.1:
        raise UsageError("old-duplicate needs time_wait >= 0, reconnect_at > 1 s and 0 < delay <= 0.1")
    distance = int(t2 * ISN_TICKS_PER_S)  # how far A's ISN clock moves between the two connect() calls
    target = distance + p["land_at"]  # old-stream offset that falls land_at bytes into the new window
    if p["old_bytes"] < target + 1460:
        raise UsageError(
            f"--set old_bytes= must be at least {target + 1460} so that the old stream reaches the "
            f"new incarnation's ISN (clock distance {distance})"
        )
    if not 0 <= p["old_down"] <= distance:
        raise UsageError(f"--set old_down= must be between 0 and {distance} (the ISN clock distance)")
    if not 0 <= p["land_at"] < 60000 or p["new_bytes"] <= p["land_at"] + 1460:
        raise UsageError("need 0 <= land_at < 60000 and new_bytes > land_at + 1460")
    cfg = {
        "time_wait": p["time_wait"],
        "timestamps": p["timestamps"],
        "wscale": 7,
        "rcv_buf": A_WINDOW,
        "snd_buf": max(1 << 20, p["old_bytes"], p["old_down"]),
    }  # send() takes each transfer in one call
    hosts = (HostSpec("A", A_ADDR, "client", cfg), HostSpec("B", B_ADDR, "server", cfg))
    new_data = _new_payload(p["new_bytes"])
    # The old connection downloads and uploads at once, then A half-closes first (shutdown: FIN after its
    # upload) and close()s when B's FIN arrives: A is the active closer and holds TIME_WAIT.
    steps = (
        Listen(0.0, "B", 80, on_eof="close"),
        Connect(0.0, "A", "B", 80, sport=CPORT, on_eof="close"),
        Send(4 * d, "B", p["old_down"], sock="s"),  # B's sequence numbers move on too
        Send(4 * d, "A", p["old_bytes"]),
        Shutdown(4 * d, "A"),
        Connect(t2, "A", "B", 80, sport=CPORT),
    )
    script = Script(hosts, steps, LinkSpec(delay=d), duration=t2 + 2.0)
    box: list[HoldBack] = []

    def setup(sim: Any) -> None:
        isn: list[int] = []

        def old_segment(pkt: Packet) -> bool:
            seg = pkt.seg
            if seg.flags & SYN:
                isn.append(seg.seq)
                return False
            if not isn or not seg.payload:
                return False
            off = q.rel(seg.seq, isn[0]) - 1
            return bool(off <= target < off + len(seg.payload))

        hb = HoldBack(sim, old_segment, t2 + 4 * d)  # arrives after the new connection is up at B
        sim.channel("A", "B").elements.append((hb, "fwd"))
        box.append(hb)
        sim.at(t2 + 6 * d, _send_new, sim)

    def _send_new(sim: Any) -> None:
        # The application writes on the new connection only if connect() succeeded (the socket is a new one).
        a = sim.hosts["A"]
        ep = a.socks.get("c")
        if ep is None or ep.state.value != "ESTABLISHED":
            return
        n = ep.send(new_data, sim.now)
        a.app(AppCall.SEND, ep, nbytes=n)
        a.after_call()

    sim, run = run_script(script, seed, scenario="old-duplicate", params=p, record_payload=True, setup=setup)
    hb = box[0]
    b = sim.hosts["B"]
    new_label = next((lab for lab in b.socks if lab != "s"), None)
    got = bytes(b.received.get(new_label, b"")) if new_label else b""
    old_got = bytes(b.received.get("s", b""))
    held = hb.held.seg if hb.held else None
    syns = [e.segment.seq for e in q.sends(run, "A") if e.segment.flags == "S"]
    j1 = syns[0] if syns else None
    j2 = next((s for s in syns if s != j1), None)
    synacks = [e.segment.seq for e in q.sends(run, "B") if e.segment.flags == "SA"]
    k2 = synacks[1] if len(synacks) > 1 else None
    diff = [i for i in range(min(len(got), len(new_data))) if got[i] != new_data[i]]
    vals: dict[str, Any] = {
        "j_old": j1,
        "j_new": j2,
        "isn_distance": None if j1 is None or j2 is None else q.rel(j2, j1),
        "held_seq": held.seq if held else None,
        "held_len": len(held.payload) if held else 0,
        "held_off_old": None if held is None or j1 is None else q.rel(held.seq, j1) - 1,
        "held_off_new": None if held is None or j2 is None else q.rel(held.seq, j2) - 1,
        "held_ts": list(held.timestamps) if held is not None and held.timestamps else None,
        "held_ack_behind": None if held is None or k2 is None else q.rel(k2 + 1, held.ack),
        "old_down": p["old_down"],
        "held_at": hb.held_at,
        "delivered_at": hb.delivered_at,
        "old_bytes_sent": p["old_bytes"],
        "old_bytes_received": len(old_got),
        "old_intact": old_got == payload_bytes(p["old_bytes"])
        and bytes(sim.hosts["A"].received.get("c", b""))[: p["old_down"]] == payload_bytes(p["old_down"]),
        "new_sent": len(new_data),
        "new_received": len(got),
        "corrupted": len(diff),
        "first_bad": diff[0] if diff else None,
        "last_bad": diff[-1] if diff else None,
        "got_excerpt": got[diff[0] : diff[0] + 16].decode("ascii", "replace") if diff else "",
        "sent_excerpt": new_data[diff[0] : diff[0] + 16].decode("ascii", "replace") if diff else "",
        "reconnect_error": sim.hosts["A"].errors.get("c"),
    }
    run.summary["values"] = vals
    run.events = _prune(run.events, vals, t2)
    return run


def _prune(events: list[Event], vals: dict[str, Any], t_end: float) -> list[Event]:
    """Keep the story, not the hundreds of segments of the bulk transfer: handshakes, FINs/RSTs, the first two
    data segments, the held segment (its send, its hold, its late delivery) and its retransmission, and
    everything from the reconnect on. A note says how many events were left out."""
    held = vals["held_seq"]
    t_data = min((e.t for e in events if e.kind == "send" and e.segment and e.segment.len > 0), default=t_end)
    first: list[int] = []
    kept: list[Event] = []
    left_out = 0
    note_at: float | None = None
    for e in events:
        seg = e.segment
        if seg is None and t_data <= e.t < t_end and e.call is AppCall.RECV and e.nbytes is not None:
            left_out += 1  # the server application's reads during the bulk transfer
            continue
        if seg is None or e.t < t_data or e.t >= t_end or set(seg.flags) & {"S", "F", "R"}:
            kept.append(e)
            continue
        if seg.len > 0 and seg.src == A_ADDR:
            if seg.seq == held:
                kept.append(e)
                continue
            if len(first) < 2 and e.kind == "send" and seg.seq not in first:
                first.append(seg.seq)
            if seg.seq in first:
                kept.append(e)
                continue
        left_out += 1
        if note_at is None:
            note_at = e.t
    if left_out and note_at is not None:
        note = Event(
            note_at,
            "",
            EventKind.NOTE,
            text=f"... {left_out} events of the {vals['old_bytes_sent']}-byte bulk "
            "transfer (data, ACKs, reads) are not shown ...",
            text_zh=f"……{vals['old_bytes_sent']} 字节批量传输中的 {left_out} 个事件（数据、ACK、读取）未画出……",
        )
        idx = next((i for i, e in enumerate(kept) if e.t > note_at), len(kept))
        kept.insert(idx, note)
    return kept


def _od_check(run: Run, p: P) -> list[Check]:
    v = q.values(run)
    held_ok = v.get("held_seq") is not None and v.get("delivered_at") is not None
    checks = [
        claim(
            "A data segment of the old incarnation (same 4-tuple, fixed client port) is held in the network and "
            "arrives after A tried to open a new connection.",
            "旧连接（同一四元组，客户端固定端口）的一个数据报文滞留在网络中，在 A 尝试建立新连接之后才到达。",
            held_ok and v["delivered_at"] > p["reconnect_at"],
            f"held seq={v.get('held_seq')} ({v.get('held_len')} bytes at old offset {v.get('held_off_old')}), "
            f"delivered at {fmt_time(v.get('delivered_at'))}, reconnect at {p['reconnect_at']:g} s",
        ),
        claim(
            "The old connection itself lost nothing: A retransmitted the segment and B got every byte.",
            "旧连接本身没有丢数据：A 重传了该报文，B 收到了全部字节。",
            bool(v.get("old_intact")),
            f"{v.get('old_bytes_received')} of {v.get('old_bytes_sent')} bytes, intact",
        ),
    ]
    a_tw = q.time_in_state(run, "A", "TIME_WAIT")
    if v.get("reconnect_error"):
        checks += [
            claim(
                "While A holds TIME_WAIT the same 4-tuple cannot be opened again (Linux: bind() to the port fails "
                "with EADDRINUSE; with SO_REUSEADDR connect() fails with EADDRNOTAVAIL).",
                "A 处于 TIME_WAIT 期间，同一四元组无法再次打开（Linux：bind() 该端口返回 EADDRINUSE；设置 SO_REUSEADDR "
                "后 connect() 返回 EADDRNOTAVAIL）。",
                q.first_time_in(run, "A", "TIME_WAIT") is not None
                and any(e.call is AppCall.CONNECT for e in q.errors(run, "A")),
                f"connect() at {p['reconnect_at']:g} s: {v.get('reconnect_error')}; A in TIME_WAIT since "
                f"{fmt_time(q.first_time_in(run, 'A', 'TIME_WAIT'))} for {p['time_wait']:g} s",
            ),
            claim(
                "So the old segment finds no connection and is discarded: B answers it with a RST that A's "
                "TIME_WAIT ignores, and no application reads it.",
                "因此旧报文找不到连接而被丢弃：B 回以 RST，A 的 TIME_WAIT 忽略它，没有应用读到这些字节。",
                v.get("new_received") == 0
                and any(
                    "R" in e.segment.flags
                    for e in q.sends(run, "B")
                    if e.t >= (v.get("delivered_at") or 0) - 1e-9
                ),
                f"bytes read by a new connection: {v.get('new_received')}",
            ),
        ]
        return checks
    landed = v.get("held_off_new")
    checks.append(
        claim(
            f"TIME_WAIT ({p['time_wait']:g} s) ended before the reconnect, so the same 4-tuple is open again; A's "
            "clock-driven ISN moved only a little, and the old segment's sequence number falls inside the new window.",
            f"TIME_WAIT（{p['time_wait']:g} 秒）在重连之前已结束，同一四元组再次打开；A 基于时钟的 ISN 只前进了一点，"
            "旧报文的序列号落在新连接的接收窗口内。",
            a_tw is not None and landed is not None and 0 <= landed < 65535,
            f"ISN J_old={v.get('j_old')}, J_new={v.get('j_new')} (distance {v.get('isn_distance')}); the old segment "
            f"lands {landed} bytes into the new stream",
        )
    )
    behind = v.get("held_ack_behind")
    if not p["timestamps"] and behind is not None and behind > A_WINDOW:
        checks.append(
            claim(
                "But its ACK field lags B's new send sequence by more than the largest window A advertised, so RFC 5961 "
                "§5.2 drops it (Linux: tcp_ack 'too old ACK'): no corruption this time.",
                "但它的确认号落后 B 新连接的发送序列超过了 A 通告过的最大窗口，因此被 RFC 5961 §5.2 丢弃（Linux：tcp_ack "
                "的 too old ACK）：这次没有损坏。",
                v.get("corrupted") == 0 and v.get("new_received") == v.get("new_sent"),
                f"ACK field {behind} behind, window {A_WINDOW}; {v.get('corrupted')} bytes differ",
            )
        )
    elif p["timestamps"]:
        ts = v.get("held_ts")
        checks.append(
            claim(
                "With timestamps PAWS (RFC 7323 §5) rejects the old segment: its TSval is older than the new "
                "connection's, so B's application reads exactly what A sent.",
                "启用时间戳时，PAWS（RFC 7323 §5）拒绝旧报文：它的 TSval 比新连接的旧，B 的应用读到的正是 A 发送的内容。",
                v.get("corrupted") == 0 and v.get("new_received") == v.get("new_sent") and ts is not None,
                f"old TSval={ts[0] if ts else None}; {v.get('new_received')} of {v.get('new_sent')} bytes read, "
                f"{v.get('corrupted')} differ",
            )
        )
    else:
        checks.append(
            claim(
                "Without timestamps B accepts the old bytes into the new connection: B's application reads data A "
                "never sent in it (the real bytes arrive later and are discarded as duplicates).",
                "没有时间戳时，B 把旧字节收进了新连接：B 的应用读到 A 在这条连接里从未发送的数据（真正的字节随后到达，被当作重复丢弃）。",
                (v.get("corrupted") or 0) > 0 and v.get("new_received") == v.get("new_sent"),
                f"{v.get('corrupted')} of {v.get('new_received')} bytes differ, offsets {v.get('first_bad')}.."
                f"{v.get('last_bad')}: got {v.get('got_excerpt')!r}, sent {v.get('sent_excerpt')!r}",
            )
        )
    return checks


def _od_narrate(run: Run, p: P) -> tuple[str, str]:
    v = q.values(run)
    base_en = (
        f"A downloads {v.get('old_down')} bytes, uploads {v.get('old_bytes_sent')} bytes from fixed port {CPORT} and closes. One segment "
        f"(old offset {v.get('held_off_old')}, {v.get('held_len')} bytes) is held in the network until "
        f"{fmt_time(v.get('delivered_at'))}; A retransmits it, so the old connection completes intact. "
    )
    base_zh = (
        f"A 从固定端口 {CPORT} 下载 {v.get('old_down')} 字节、上传 {v.get('old_bytes_sent')} 字节后关闭。其中一个报文（旧流偏移 {v.get('held_off_old')}，"
        f"{v.get('held_len')} 字节）滞留在网络中直到 {fmt_time(v.get('delivered_at'))}；A 重传了它，所以旧连接完整结束。"
    )
    if v.get("reconnect_error"):
        en = base_en + (
            f"At {p['reconnect_at']:g} s A tries the same 4-tuple again, but it is still in TIME_WAIT "
            f"({p['time_wait']:g} s): connect() fails ({v.get('reconnect_error')}). The old segment "
            f"reaches a B with no connection, draws a RST that A's TIME_WAIT ignores, and dies — "
            f"TIME_WAIT's second purpose: let old duplicates expire before the tuple is reused."
        )
        zh = base_zh + (
            f"{p['reconnect_at']:g} 秒时 A 再次使用同一四元组，但它仍处于 TIME_WAIT（{p['time_wait']:g} 秒）："
            f"connect() 失败（{v.get('reconnect_error')}）。旧报文到达时 B 上没有连接，B 回 RST，A 的 TIME_WAIT "
            f"忽略它，旧报文就此消亡——这是 TIME_WAIT 的第二个作用：让旧的重复报文在四元组重用之前过期。"
        )
        return en, zh
    mid_en = (
        f"TIME_WAIT is only {p['time_wait']:g} s (model only; Linux fixes 60 s), so at {p['reconnect_at']:g} s "
        f"A reopens the same 4-tuple. Its ISN comes from the RFC 6528 clock (4 µs ticks): {v.get('j_new')} is "
        f"only {v.get('isn_distance')} past the old {v.get('j_old')} — and the old connection sent more than that, "
        f"so its sequence numbers ran ahead of the clock. The held segment lands {v.get('held_off_new')} bytes "
        f"into the new window, and its ACK field, {v.get('held_ack_behind')} behind B's new send sequence (B's "
        f"ISN moved too, but the old connection had downloaded {v.get('old_down')} bytes), is within the 1 MB "
        f"window A advertises, so RFC 5961 §5.2's ACK check lets it through. "
    )
    mid_zh = (
        f"TIME_WAIT 只有 {p['time_wait']:g} 秒（仅模型可设；Linux 固定 60 秒），所以 {p['reconnect_at']:g} 秒时 A "
        f"重新打开同一四元组。它的 ISN 来自 RFC 6528 时钟（每 4 微秒加一）：{v.get('j_new')} 只比旧的 {v.get('j_old')} "
        f"多 {v.get('isn_distance')}——而旧连接发送的数据比这更多，它的序列号跑到了时钟前面。滞留的报文落在新窗口内第 "
        f"{v.get('held_off_new')} 字节处；它的确认号比 B 新连接的发送序列落后 {v.get('held_ack_behind')}（B 的 ISN 也前进了，"
        f"但旧连接先下载了 {v.get('old_down')} 字节），仍在 A 通告的 1 MB 窗口之内，所以 RFC 5961 §5.2 的 ACK 检查放行了它。"
    )
    behind = v.get("held_ack_behind")
    if not p["timestamps"] and behind is not None and behind > A_WINDOW:
        en = (
            base_en
            + mid_en.split(", and its ACK field")[0]
            + (
                f". But its ACK field is {behind} behind B's new send sequence — more than the {A_WINDOW}-byte window A "
                f"ever advertised — so RFC 5961 §5.2's ACK check drops it and B reads the {v.get('new_received')} bytes A "
                f"sent, unchanged. (With old_down closer to the ISN distance the ACK field would pass and the bytes "
                f"would be corrupted.)"
            )
        )
        zh = (
            base_zh
            + mid_zh.split("；它的确认号")[0]
            + (
                f"。但它的确认号比 B 新连接的发送序列落后 {behind}——超过了 A 通告过的 {A_WINDOW} 字节窗口——所以 RFC 5961 §5.2 "
                f"的 ACK 检查丢弃了它，B 原样读到 A 发送的 {v.get('new_received')} 字节。（若 old_down 更接近 ISN 距离，确认号就会通过，"
                f"数据就会损坏。）"
            )
        )
        return en, zh
    if p["timestamps"]:
        en = (
            base_en
            + mid_en
            + (
                "With timestamps on, its TSval is older than anything the new connection has seen: "
                f"PAWS drops it, and B reads the {v.get('new_received')} bytes A sent, unchanged."
            )
        )
        zh = (
            base_zh
            + mid_zh
            + (
                f"启用时间戳时，它的 TSval 比新连接见过的都旧：PAWS 丢弃它，B 原样读到 A 发送的 "
                f"{v.get('new_received')} 字节。"
            )
        )
    else:
        en = (
            base_en
            + mid_en
            + (
                f"With timestamps off nothing can tell it is old: B buffers it, and when the new "
                f"data reaches it, B's application reads {v.get('corrupted')} bytes of the old "
                f"upload at offsets {v.get('first_bad')}..{v.get('last_bad')} — "
                f"{v.get('got_excerpt')!r} where A sent {v.get('sent_excerpt')!r}. The checksums "
                f"are valid; the corruption is silent."
            )
        )
        zh = (
            base_zh
            + mid_zh
            + (
                f"关闭时间戳后，没有任何办法识别它是旧报文：B 把它缓存起来，等新数据到达时，B 的应用在偏移 "
                f"{v.get('first_bad')}..{v.get('last_bad')} 读到了 {v.get('corrupted')} 字节的旧上传数据——"
                f"读到 {v.get('got_excerpt')!r}，而 A 发送的是 {v.get('sent_excerpt')!r}。校验和全部正确，数据悄无声息地损坏了。"
            )
        )
    return en, zh


register(
    Scenario(
        id="old-duplicate",
        title="TIME_WAIT purpose 2: old duplicates",
        title_zh="TIME_WAIT 作用二：旧的重复报文",
        claim="A delayed data segment of the old incarnation (same 4-tuple) arrives; with TIME_WAIT it is discarded; "
        "with TIME_WAIT too short it is accepted into the new connection (corruption shown byte by byte); "
        "timestamps (PAWS) would catch it.",
        claim_zh="旧连接（同一四元组）的一个延迟数据报文到达；有 TIME_WAIT 时它被丢弃；TIME_WAIT 太短时它被收进新连接"
        "（逐字节展示损坏）；时间戳（PAWS）可以识别它。",
        params={
            "time_wait": TW_PARAM,
            "timestamps": Param(
                False,
                "net.ipv4.tcp_timestamps (Linux default 1; off here so that only TIME_WAIT "
                "protects the new connection — set 1 to see PAWS catch the old segment)",
                "net.ipv4.tcp_timestamps（Linux 默认 1；这里关闭，只让 TIME_WAIT 保护新连接——设为 1 可看到 PAWS 拦截旧报文）",
            ),
            "reconnect_at": Param(
                3.0,
                "when A connect()s again from the same port (seconds)",
                "A 何时从同一端口再次 connect()（秒）",
                unit="s",
                lo=0.0,
                hi=3600.0,
            ),
            "old_bytes": Param(
                800_000,
                "bytes of the old connection's upload (must outrun the ISN clock)",
                "旧连接上传的字节数（必须跑赢 ISN 时钟）",
                unit="bytes",
                lo=1,
                hi=50_000_000,
            ),
            "old_down": Param(
                700_000,
                "bytes B sends to A on the old connection first (moves B's sequence numbers "
                "along; RFC 5961 §5.2 drops a segment whose ACK field is too far behind)",
                "旧连接中 B 先发给 A 的字节数（推动 B 的序列号；RFC 5961 §5.2 会丢弃确认号落后太多的报文）",
                unit="bytes",
                lo=0,
                hi=50_000_000,
            ),
            "land_at": Param(
                2000,
                "where in the new stream the held segment should land (bytes)",
                "滞留报文应落在新数据流中的位置（字节）",
                unit="bytes",
                lo=0,
                hi=60_000,
            ),
            "new_bytes": Param(
                4000,
                "bytes A sends on the new connection",
                "A 在新连接上发送的字节数",
                unit="bytes",
                lo=1,
                hi=10_000_000,
            ),
        },
        simulate=_od_simulate,
        check=_od_check,
        narrate=_od_narrate,
        record_payload=True,
        tags=("close", "time_wait", "history"),
    )
)

"""Segment-level stories: what the kernel does with windows, stray ACKs and a lost FIN, segment by segment.

These four scenarios exist to be compared with the kernel (``tcpwise lab conform``): each pins a place where the
model's "linux" profile once told a different story from Linux, and each claim is one the RFC text alone would get
wrong.

* ``window-scaling``      — a bulk transfer to a receiver with a 256 KiB buffer: the SYNs offer window scale 7
  (Linux derives it from the largest receive buffer) and every later window field means field × 128 bytes;
* ``read-window-update``  — a receiver that reads late: after a read Linux sends a window update only when what is
  left of the window it advertised had fallen to half its clamp or less (tcp_cleanup_rbuf), not whenever the window
  opened by an MSS (RFC 9293 §3.8.6.2.2): two reads, no update;
* ``ack-unsent-data``     — a segment that acknowledges data never sent: RFC 9293 §3.10.7.4 answers with an ACK and
  drops it, text and all — and so does Linux 6.18, measured (older kernels' tcp_ack discarded it silently);
* ``lost-fin``            — a lone FIN lost on the way: Linux probes it once (tail loss probe, RFC 8985) before the
  RTO backs off.

Where a story needs more than script steps (a reader that pauses, a segment nobody sent), the scenario's own
``simulate`` adds it in the model and the lab adds the same in the kernel run (tcpwise.lab.playbook).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.events import Check, Run
from tcpwise.scenarios import query as q
from tcpwise.scenarios.base import Param, Scenario, claim, register
from tcpwise.scenarios.basic import A_ADDR, B_ADDR
from tcpwise.scenarios.fmt import fmt_time
from tcpwise.script import Close, Connect, Heal, HostSpec, LinkSpec, Listen, Partition, Script, Send
from tcpwise.sim.runner import run_script
from tcpwise.vocab import AppCall, AppWhy

P = dict[str, Any]
EPS = 1e-6


def _near(run: Run, got: float, want: float) -> bool:
    """Equal in the model; on the kernel within the timer wheel's rounding and the lab's delay line."""
    return abs(got - want) < (EPS if run.world == "sim" else 0.13 * abs(want) + 0.03)


def _hosts(a: dict[str, Any] | None = None, b: dict[str, Any] | None = None) -> tuple[HostSpec, ...]:
    return (HostSpec("A", A_ADDR, "client", dict(a or {})), HostSpec("B", B_ADDR, "server", dict(b or {})))


def _opt(ev: Any, key: str) -> Any:
    return (ev.segment.opts or {}).get(key) if ev is not None and ev.segment is not None else None


# ============================================================================================================
# window-scaling
# ============================================================================================================
def _ws_build(p: P) -> Script:
    if not 65536 < p["rcv_buf"] <= 1 << 30:
        raise UsageError(
            "rcv_buf must be above 65536 (the point is a window only scaling can express) and <= 1 GiB"
        )
    if not 1 <= p["segments"] <= 16:
        raise UsageError(
            "segments must be 1..16 (a receiver ACKs each of them at once: Linux's quick-ACK mode)"
        )
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80),
        Send(0.5, "A", p["segments"] * 1448),
        Close(1.5, "A"),
    )
    return Script(_hosts(b={"rcv_buf": p["rcv_buf"]}), steps, LinkSpec(delay=p["delay"]), duration=2.5)


def _ws_check(run: Run, p: P) -> list[Check]:
    syn = next((e for e in q.sends(run, "A") if e.segment.flags == "S"), None)
    synack = next((e for e in q.sends(run, "B") if e.segment.flags == "SA"), None)
    ws_a, ws_b = _opt(syn, "ws"), _opt(synack, "ws")
    acks = [e for e in q.sends(run, "B") if e.segment.flags == "A" and e.t > 0.5]
    scaled = [e.segment.win << (ws_b or 0) for e in acks]
    data = [e for e in q.sends(run, "A") if e.segment.len > 0]
    first = [e for e in data if e.t < data[0].t + 0.01] if data else []
    return [
        claim(
            "Both SYNs offer window scaling, with the shift Linux derives from the largest receive buffer "
            "(7 for tcp_rmem's default maximum of 6 MiB).",
            "双方的 SYN 都提供窗口缩放，移位值由最大接收缓冲区推出（tcp_rmem 默认最大 6 MiB 时为 7）。",
            ws_a == 7 and ws_b == 7,
            f"A offers ws={ws_a}, B offers ws={ws_b}",
        ),
        claim(
            f"B's windows are field × 128 bytes: with a {p['rcv_buf'] // 1024} KiB buffer they exceed the 65,535 "
            "bytes a 16-bit field could say alone.",
            f"B 的窗口是字段值 × 128 字节：缓冲区为 {p['rcv_buf'] // 1024} KiB 时，超过 16 位字段单独能表达的 65535 字节。",
            bool(scaled) and min(scaled) > 65535 and all(e.segment.win < 65535 for e in acks),
            f"window fields {sorted({e.segment.win for e in acks})[:4]} -> {min(scaled, default=0)} bytes and up",
        ),
        claim(
            "The sender is limited by its congestion window, not the receiver's: ten segments in the first "
            "flight (the initial window), the rest when they are acknowledged.",
            "发送方受拥塞窗口而非接收窗口限制：第一轮发出十个报文段（初始窗口），其余在确认后发出。",
            len(first) == min(10, p["segments"]) and len(data) >= p["segments"],
            f"{len(first)} segments in the first flight, {len(data)} in all",
        ),
    ]


def _ws_narrate(run: Run, p: P) -> tuple[str, str]:
    synack = next((e for e in q.sends(run, "B") if e.segment.flags == "SA"), None)
    ws_b = _opt(synack, "ws") or 0
    acks = [e for e in q.sends(run, "B") if e.segment.flags == "A" and e.t > 0.5]
    w = acks[0].segment.win if acks else 0
    en = (
        f"A and B offer window scaling in their SYNs (shift {ws_b}). B's receive buffer is "
        f"{p['rcv_buf'] // 1024} KiB, so its ACKs carry window fields like {w}, meaning {w << ws_b} bytes; a peer "
        f"that ignored the option would read them as {w} bytes and send almost nothing. A sends "
        f"{p['segments']} segments: ten at once (its initial congestion window), the rest as the ACKs come back."
    )
    zh = (
        f"A 和 B 在 SYN 中都提供窗口缩放（移位 {ws_b}）。B 的接收缓冲区为 {p['rcv_buf'] // 1024} KiB，所以它的 ACK 中窗口字段如 {w}，"
        f"表示 {w << ws_b} 字节；忽略该选项的对端会把它读成 {w} 字节，几乎发不出数据。A 发送 {p['segments']} 个报文段："
        "先一次发十个（初始拥塞窗口），其余随 ACK 返回再发。"
    )
    return en, zh


register(
    Scenario(
        id="window-scaling",
        title="Window scaling in a bulk transfer",
        title_zh="批量传输中的窗口缩放",
        claim="SYNs offer wscale 7 (from the largest receive buffer); a window field means field x 128 bytes: a "
        "256 KiB receiver advertises ~262 KB in a 16-bit field.",
        claim_zh="SYN 提供 wscale 7（由最大接收缓冲区推出）；窗口字段表示 字段值 x 128 字节：256 KiB 的接收方在 16 位字段里通告约 262 KB。",
        params={
            "rcv_buf": Param(
                262144,
                "B's receive window space in bytes",
                "B 的接收窗口空间（字节）",
                unit="B",
                lo=65537,
                hi=1 << 30,
            ),
            "segments": Param(16, "full segments A sends", "A 发送的满载报文段数", lo=1, hi=16),
        },
        build=_ws_build,
        check=_ws_check,
        narrate=_ws_narrate,
        lab=True,
        tags=("segments", "window"),
    )
)


# ============================================================================================================
# read-window-update
# ============================================================================================================
def read_times(p: P) -> tuple[float, float, float, float]:
    """(first burst, first read, second burst, second read)."""
    return 0.5, 1.0, 1.5, 2.0


def _rw_build(p: P) -> Script:
    if not 8192 <= p["rcv_buf"] <= 1 << 20:
        raise UsageError("rcv_buf must be 8192..1048576 bytes")
    if not 1448 <= p["small"] <= p["large"] < min(p["rcv_buf"] // 2, 8 * 1448 + 1):
        raise UsageError(
            "need 1448 <= small <= large < rcv_buf/2, large at most 8 segments (11584 bytes: each is ACKed at "
            "once, within Linux's quick-ACK budget)"
        )
    t1, _r1, t2, _r2 = read_times(p)
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80),
        Send(t1, "A", p["small"]),
        Send(t2, "A", p["large"]),
    )
    return Script(_hosts(b={"rcv_buf": p["rcv_buf"]}), steps, LinkSpec(delay=p["delay"]), duration=2.5)


def reader_setup(p: P) -> Any:
    """The model's reader: B's application reads only at the two read times (the lab pauses its agent)."""
    _t1, r1, _t2, r2 = read_times(p)

    def setup(sim: Any) -> None:
        host = sim.hosts["B"]

        def stop_reading(h: Any, ep: Any, ev: Any, now: float) -> None:
            if ep.passive and h.label_of(ep) == "s":
                h.policy.setdefault("s", {})["auto_read"] = False

        def read(t: float) -> None:
            ep = host.socks.get("s")
            if ep is None:
                return
            data = ep.recv()
            host.app(AppCall.RECV, ep, nbytes=len(data), why=AppWhy.RESUME_READING)
            host.after_call()

        host.reactions.append(stop_reading)
        sim.at(r1, read, r1)
        sim.at(r2, read, r2)

    return setup


def _rw_simulate(p: P, seed: int) -> Run:
    _, run = run_script(_rw_build(p), seed, scenario="read-window-update", params=p, setup=reader_setup(p))
    return run


def _rw_after(run: Run, t: float) -> list[Any]:
    """B's segments in the half round trip after a read at ``t`` (nothing else could make B send then)."""
    return [e for e in q.sends(run, "B") if t - 1e-9 <= e.t <= t + 0.04]


def _rw_check(run: Run, p: P) -> list[Check]:
    _t1, r1, _t2, r2 = read_times(p)
    reads = [e for e in q.apps(run, "B", AppCall.RECV) if e.nbytes]
    first, second = _rw_after(run, r1), _rw_after(run, r2)
    mss = 1448
    return [
        claim(
            f"After reading {p['small']:,} bytes ({p['small'] // mss} MSS) B sends no window update: what is left "
            "of the window it advertised is still more than half the window (Linux tcp_cleanup_rbuf), where RFC "
            "9293 §3.8.6.2.2 updates as soon as the window has opened by an MSS.",
            f"读取 {p['small']:,} 字节（{p['small'] // mss} 个 MSS）后 B 不发窗口更新：已通告窗口的剩余部分仍超过一半"
            "（Linux tcp_cleanup_rbuf）；按 RFC 9293 §3.8.6.2.2，窗口打开一个 MSS 就应更新。",
            len(reads) >= 1 and not first,
            f"segments from B within 40 ms of the read at {r1:g} s: {len(first)}",
        ),
        claim(
            f"The same after reading {p['large']:,} bytes ({p['large'] // mss} MSS): the peer learns of the open "
            "window only from B's next ACK.",
            f"读取 {p['large']:,} 字节（{p['large'] // mss} 个 MSS）后同样如此：对端只能从 B 的下一个 ACK 得知窗口已打开。",
            len(reads) >= 2 and not second,
            f"segments from B within 40 ms of the read at {r2:g} s: {len(second)}",
        ),
    ]


def _rw_narrate(run: Run, p: P) -> tuple[str, str]:
    _t1, r1, _t2, r2 = read_times(p)
    en = (
        f"B's application reads only at {r1:g} s and {r2:g} s; meanwhile A's {p['small']:,} and then "
        f"{p['large']:,} bytes shrink B's {p['rcv_buf'] // 1024} KiB window, each segment ACKed with the smaller "
        "window. Each read opens the window by several MSS, and the RFC's receiver rule would announce that at "
        "once; Linux does not: it sends a window update after a read only when what is left of the advertised "
        "window has fallen to half or less, which never happens here."
    )
    zh = (
        f"B 的应用只在 {r1:g} 秒和 {r2:g} 秒读取；其间 A 的 {p['small']:,} 字节和随后的 {p['large']:,} 字节使 B 的 "
        f"{p['rcv_buf'] // 1024} KiB 窗口缩小，每个报文段都以更小的窗口被确认。每次读取都让窗口打开好几个 MSS，按 RFC 的接收方规则"
        "应立即通告；Linux 不会：只有已通告窗口的剩余部分降到一半或更少时，读取之后才发送窗口更新，而这里从未发生。"
    )
    return en, zh


register(
    Scenario(
        id="read-window-update",
        title="Window updates after a read",
        title_zh="读取之后的窗口更新",
        claim="A read that opens the window by several MSS sends no window update while what is left of the "
        "advertised window is above half (Linux tcp_cleanup_rbuf); RFC 9293 §3.8.6.2.2 would update at one MSS.",
        claim_zh="读取让窗口打开好几个 MSS，但只要已通告窗口的剩余部分仍超过一半就不发窗口更新（Linux tcp_cleanup_rbuf）；"
        "RFC 9293 §3.8.6.2.2 打开一个 MSS 就会更新。",
        params={
            "rcv_buf": Param(
                32768,
                "B's receive window space (bytes)",
                "B 的接收窗口空间（字节）",
                unit="B",
                lo=8192,
                hi=1 << 20,
            ),
            "small": Param(
                8688, "bytes before the first read", "第一次读取前的字节数", unit="B", lo=1448, hi=11584
            ),
            "large": Param(
                11584, "bytes before the second read", "第二次读取前的字节数", unit="B", lo=1448, hi=11584
            ),
        },
        build=_rw_build,
        simulate=_rw_simulate,
        check=_rw_check,
        narrate=_rw_narrate,
        lab=True,
        tags=("segments", "window"),
    )
)


# ============================================================================================================
# ack-unsent-data
# ============================================================================================================
INJECT_AT = 1.0  # when the stray segment reaches B


def _au_build(p: P) -> Script:
    if not 1 <= p["beyond"] <= 1 << 20:
        raise UsageError("beyond must be 1..1048576 bytes")
    steps = (
        Listen(0.0, "B", 80),
        Connect(0.0, "A", "B", 80),
        Send(0.5, "A", 100),
        Send(0.6, "B", 100, sock="s"),
        Send(1.5, "A", 100),
    )
    return Script(_hosts(), steps, LinkSpec(delay=p["delay"]), duration=2.5)


def stray_ack_setup(p: P) -> Any:
    """The model's stray segment: A's 4-tuple, A's next sequence number, 10 bytes, an ACK of ``beyond`` bytes B
    never sent, A's timestamps (so PAWS lets it pass) — delivered to B as if from the network."""

    def setup(sim: Any) -> None:
        def inject(t: float) -> None:
            from tcpwise.sim.network import Packet
            from tcpwise.vocab import ACK, PSH
            from tcpwise.wire.segment import NopOption, TcpSegment, TimestampsOption
            from tcpwise.wire.seq import seq_add

            a, b = sim.hosts["A"].socks.get("c"), sim.hosts["B"].socks.get("s")
            if a is None or b is None:
                return
            # TSval: the latest one of A's that B holds (TS.Recent), so PAWS lets the segment through.
            opts = (NopOption(), NopOption(), TimestampsOption(b.ts_recent, a.ts_recent)) if a.ts_ok else ()
            seg = TcpSegment(
                a.lport, a.rport, a.snd_max, seq_add(b.snd_max, p["beyond"]), ACK | PSH, 502, opts, b"x" * 10
            )
            sim.hosts["B"].deliver(Packet(a.laddr, a.raddr, seg, "A"), t)

        sim.at(INJECT_AT, inject, INJECT_AT)

    return setup


def _au_simulate(p: P, seed: int) -> Run:
    _, run = run_script(_au_build(p), seed, scenario="ack-unsent-data", params=p, setup=stray_ack_setup(p))
    return run


def _au_check(run: Run, p: P) -> list[Check]:
    stray = next((e for e in q.recvs(run, "B") if INJECT_AT - 0.1 <= e.t <= INJECT_AT + 0.1), None)
    rcv_nxt = stray.segment.seq if stray is not None else -1
    answer = [e for e in q.sends(run, "B") if stray is not None and stray.t <= e.t <= stray.t + 0.2]
    later = [e for e in q.recvs(run, "B") if e.t > 1.5 and e.segment.len > 0]
    acked = [e for e in q.sends(run, "B") if e.t > 1.5 and e.segment.flags == "A"]
    return [
        claim(
            f"A segment in A's name arrives at B acknowledging {p['beyond']} bytes B never sent.",
            f"一个冒充 A 的报文段到达 B，确认了 B 从未发送的 {p['beyond']} 字节。",
            stray is not None,
            f"stray segment at {fmt_time(stray.t if stray else None)}",
        ),
        claim(
            "B drops it, data and all, and answers with an ACK of what it really has (RFC 9293 §3.10.7.4; Linux "
            "6.18 does the same — older kernels stayed silent).",
            "B 丢弃它（连同数据），并回一个确认其真实接收位置的 ACK（RFC 9293 §3.10.7.4；Linux 6.18 相同——旧内核不回应）。",
            stray is not None
            and len(answer) == 1
            and answer[0].segment.flags == "A"
            and answer[0].segment.ack == rcv_nxt,
            "segments from B in the 200 ms after it: "
            + (
                " ".join(
                    f"{e.segment.flags} ack=RCV.NXT{'' if e.segment.ack == rcv_nxt else '?'}" for e in answer
                )
                or "none"
            ),
        ),
        claim(
            "The connection is unharmed: A's next data is acknowledged as usual.",
            "连接不受影响：A 随后的数据照常被确认。",
            bool(later) and bool(acked),
            f"A's later segments reaching B: {len(later)}, B's ACKs: {len(acked)}",
        ),
    ]


def _au_narrate(run: Run, p: P) -> tuple[str, str]:
    en = (
        f"A and B exchange a request and a response. At {INJECT_AT:g} s a segment with A's addresses and ports, "
        f"A's next sequence number and 10 bytes arrives at B — but it acknowledges {p['beyond']} bytes B never "
        "sent (a blind injection, or a confused middlebox). B drops it, its 10 bytes included, and answers with "
        "an ACK of what it really has, as RFC 9293 says — Linux 6.18 too, where older kernels kept silent. A's "
        "next real data goes through."
    )
    zh = (
        f"A 和 B 交换一次请求和响应。{INJECT_AT:g} 秒时，一个带着 A 的地址、端口和下一个序列号、载荷 10 字节的报文段到达 B——"
        f"但它确认了 B 从未发送的 {p['beyond']} 字节（盲注入，或出错的中间设备）。B 丢弃它（包括 10 字节数据），"
        "并回一个确认其真实接收位置的 ACK，正如 RFC 9293 所说——Linux 6.18 也如此，旧内核则不回应。A 之后的真实数据正常通过。"
    )
    return en, zh


register(
    Scenario(
        id="ack-unsent-data",
        title="An ACK of data never sent",
        title_zh="确认从未发送的数据",
        claim="A segment that acknowledges unsent data is dropped with its text and answered with an ACK (RFC 9293 "
        "§3.10.7.4; measured: Linux 6.18 too); the connection carries on.",
        claim_zh="确认未发送数据的报文段连同数据被丢弃，并以 ACK 回应（RFC 9293 §3.10.7.4；实测 Linux 6.18 也如此）；连接照常继续。",
        params={
            "beyond": Param(
                1000,
                "how far beyond B's SND.NXT the stray ACK reaches (bytes)",
                "越界字节数",
                unit="B",
                lo=1,
                hi=1 << 20,
            )
        },
        build=_au_build,
        simulate=_au_simulate,
        check=_au_check,
        narrate=_au_narrate,
        lab=True,
        tags=("segments", "rfc5961"),
    )
)


# ============================================================================================================
# lost-fin
# ============================================================================================================
def _lf_build(p: P) -> Script:
    if not 0.5 <= p["heal_after"] <= 30:
        raise UsageError("heal_after must be 0.5..30 s")
    steps = (
        Listen(0.0, "B", 80, on_eof="close"),
        Connect(0.0, "A", "B", 80),
        Partition(0.9, "A", "B"),
        Close(1.0, "A"),
        Heal(1.0 + p["heal_after"], "A", "B"),
    )
    return Script(_hosts(), steps, LinkSpec(delay=p["delay"]), duration=1.0 + p["heal_after"] + 4.0)


def _lf_check(run: Run, p: P) -> list[Check]:
    fins = [e for e in q.sends(run, "A") if "F" in e.segment.flags]
    gaps = [round(b.t - a.t, 6) for a, b in pairwise(fins)]
    srtt = 2 * p["delay"]
    rto = srtt + 0.2  # Linux: SRTT + max(4 RTTVAR, TCP_RTO_MIN) after one sample
    probe = min(2 * srtt + 0.2, rto)
    return [
        claim(
            "A's FIN is the only segment in flight and it is lost: A sends it again first as a tail loss probe, "
            "min(2 SRTT + 200 ms, RTO) after it (RFC 8985; Linux tcp_schedule_loss_probe).",
            "A 的 FIN 是唯一在途的报文段且丢失：A 先以尾部丢失探测重发它，时间为 min(2 SRTT + 200 毫秒, RTO) 之后（RFC 8985）。",
            bool(gaps) and _near(run, gaps[0], probe),
            f"FINs sent at {', '.join(f'{e.t:.3f}' for e in fins)}; first gap {gaps[0] if gaps else None} s, "
            f"expected {probe:g} s",
        ),
        claim(
            "Then the retransmission timer backs off from the probe: RTO, 2 RTO, 4 RTO ...",
            "随后重传计时器从探测起退避：RTO、2 RTO、4 RTO ……",
            len(gaps) >= 3 and all(_near(run, g, rto * (1 << i)) for i, g in enumerate(gaps[1:3])),
            f"gaps after the probe: {', '.join(f'{g:g}' for g in gaps[1:4])} s (RTO {rto:g} s)",
        ),
        claim(
            "Once the path heals the next retransmission gets through and the close completes.",
            "路径恢复后，下一次重传送达，关闭过程完成。",
            "TIME_WAIT" in q.state_path(run, "A"),
            " -> ".join(q.state_path(run, "A")),
        ),
    ]


def _lf_narrate(run: Run, p: P) -> tuple[str, str]:
    fins = [e.t for e in q.sends(run, "A") if "F" in e.segment.flags]
    shown = ", ".join(f"{t:.2f}" for t in fins)
    en = (
        f"A's path to B breaks at 0.9 s and A closes at 1 s: its FIN, the only segment in flight, is lost. Linux "
        f"does not wait a full RTO and back off at once: it sends the FIN again as a tail loss probe, then starts "
        f"the usual backoff. FINs at {shown} s; the path heals after {p['heal_after']:g} s and the close completes."
    )
    zh = (
        f"0.9 秒时 A 到 B 的路径中断，A 在 1 秒关闭：唯一在途的 FIN 丢失。Linux 不是等满一个 RTO 就开始退避，而是先以尾部丢失探测重发 FIN，"
        f"再开始通常的退避。FIN 发送于 {shown} 秒；{p['heal_after']:g} 秒后路径恢复，关闭完成。"
    )
    return en, zh


register(
    Scenario(
        id="lost-fin",
        title="A lost FIN's retransmission times",
        title_zh="丢失的 FIN 的重传时间",
        claim="A lone lost FIN is probed once (RFC 8985 tail loss probe, min(2 SRTT + 200 ms, RTO)) before the RTO "
        "backs off: 0.3, 0.3, 0.6, 1.2 s on a 100 ms RTT.",
        claim_zh="唯一丢失的 FIN 先被探测一次（RFC 8985 尾部丢失探测，min(2 SRTT + 200 毫秒, RTO)），然后 RTO 才退避：在 100 毫秒"
        "往返时间下为 0.3、0.3、0.6、1.2 秒。",
        params={
            "heal_after": Param(
                2.3,
                "seconds after the close when the path heals",
                "关闭后多少秒路径恢复",
                unit="s",
                lo=0.5,
                hi=30.0,
            )
        },
        build=_lf_build,
        check=_lf_check,
        narrate=_lf_narrate,
        lab=True,
        tags=("segments", "close", "retransmission"),
    )
)

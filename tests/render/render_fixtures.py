"""Hand-built runs for the renderer tests: a realistic four-way close with a handshake, data, a lost final ACK,
an RTO retransmission and a 60 s TIME_WAIT (hosts A 198.18.0.1 client, B 198.18.1.1 server, 10 ms one way)."""

from __future__ import annotations

from tcpwise.events import Check, Event, Host, Run, SegmentInfo

A, B = "198.18.0.1", "198.18.1.1"
J, K = 1_000_000, 3_000_000_000  # the two ISNs; K is close to the 2**32 wrap on purpose
CONN_A = "A:40000>B:80"
CONN_B = "B:80<A:40000"


def seg(frm: str, flags: str, seq: int, ack: int, ln: int = 0, win: int = 65535, **kw: object) -> SegmentInfo:
    if frm == "A":
        return SegmentInfo(A, B, 40000, 80, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, ln, win, **kw)  # type: ignore[arg-type]
    return SegmentInfo(B, A, 80, 40000, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, ln, win, **kw)  # type: ignore[arg-type]


def close_run(*, fail: bool = False) -> Run:
    ev: list[Event] = []

    def send(t: float, frm: str, s: SegmentInfo, lost: bool = False) -> None:
        to = "B" if frm == "A" else "A"
        ev.append(Event(t, frm, "send", segment=s))
        if lost:
            ev.append(Event(t, frm, "drop", segment=s, reason="loss"))
        else:
            ev.append(Event(round(t + 0.01, 6), to, "recv", segment=s))

    def state(t: float, h: str, a: str, b: str) -> None:
        ev.append(Event(t, h, "state", from_state=a, to_state=b))

    ev.append(Event(0.0, "B", "app", call="listen", port=80, backlog=128))
    state(0.0, "B", "CLOSED", "LISTEN")
    ev.append(Event(0.0, "A", "app", call="connect"))
    state(0.0, "A", "CLOSED", "SYN_SENT")
    send(0.0, "A", seg("A", "S", J, 0, opts={"mss": 1460, "ws": 7, "sackok": True, "ts": [1, 0]}))
    state(0.01, "B", "LISTEN", "SYN_RCVD")
    send(0.01, "B", seg("B", "SA", K, J + 1, win=65160, opts={"mss": 1460}))
    state(0.02, "A", "SYN_SENT", "ESTABLISHED")
    send(0.02, "A", seg("A", "A", J + 1, K + 1))
    state(0.03, "B", "SYN_RCVD", "ESTABLISHED")
    ev.append(Event(0.1, "A", "app", call="send", nbytes=100))
    send(0.1, "A", seg("A", "PA", J + 1, K + 1, 100, payload="ab" * 100))
    send(0.11, "B", seg("B", "A", K + 1, J + 101, win=65060))
    ev.append(Event(0.2, "A", "app", call="close"))
    state(0.2, "A", "ESTABLISHED", "FIN_WAIT_1")
    send(0.2, "A", seg("A", "FA", J + 101, K + 1))
    state(0.21, "B", "ESTABLISHED", "CLOSE_WAIT")
    send(0.21, "B", seg("B", "A", K + 1, J + 102))
    state(0.22, "A", "FIN_WAIT_1", "FIN_WAIT_2")
    ev.append(Event(0.3, "B", "app", call="close"))
    state(0.3, "B", "CLOSE_WAIT", "LAST_ACK")
    send(0.3, "B", seg("B", "FA", K + 1, J + 102))
    state(0.31, "A", "FIN_WAIT_2", "TIME_WAIT")
    send(0.31, "A", seg("A", "A", J + 102, K + 2), lost=True)
    ev.append(Event(0.51, "B", "timer", timer="rto"))
    send(0.51, "B", seg("B", "FA", K + 1, J + 102))
    ev.append(
        Event(0.52, "A", "note", text="TIME_WAIT re-ACKs the retransmitted FIN and restarts its 60 s timer")
    )
    send(0.52, "A", seg("A", "A", J + 102, K + 2))
    state(0.53, "B", "LAST_ACK", "CLOSED")
    ev.append(Event(60.52, "A", "timer", timer="time_wait"))
    state(60.52, "A", "TIME_WAIT", "CLOSED")
    ev.sort(key=lambda e: e.t)  # stable: same-time events keep their order
    checks = [
        Check(
            "A enters TIME_WAIT only after B's FIN arrives",
            True,
            claim_zh="A 只有在收到 B 的 FIN 之后才进入 TIME_WAIT",
            detail="FIN at 0.310 s, TIME_WAIT at 0.310 s",
        ),
        Check(
            "TIME_WAIT lasts 60 s after the last FIN",
            not fail,
            claim_zh="TIME_WAIT 在最后一个 FIN 之后持续 60 秒",
            detail="measured 60.000 s",
        ),
    ]
    return Run(
        scenario="close",
        title="Four-way teardown",
        world="sim",
        seed=1,
        params={"delay": 0.01, "time_wait": 60.0, "drop_last_ack": True},
        hosts=[Host("A", A, "client"), Host("B", B, "server")],
        events=ev,
        checks=checks,
        summary={
            "text": "A closes first; B's FIN is acknowledged by A, the ACK is lost, B retransmits after 200 ms "
            "and A, still in TIME_WAIT, answers again. A leaves TIME_WAIT 60.0 s later.",
            "text_zh": "A 先关闭；A 对 B 的 FIN 的确认丢失，B 在 200 毫秒后重传，仍处于 TIME_WAIT 的 A 再次确认。"
            "60.0 秒后 A 离开 TIME_WAIT。",
            "values": {"time_wait_s": 60.0, "rto_s": 0.2},
        },
    )


def series_run() -> Run:
    t = [float(i) for i in range(0, 121)]
    tw = [min(i, 60) * 10000.0 for i in range(0, 121)]
    ports = [min(28232.0, v) for v in tw]
    failed = [max(0.0, v - 28232.0) for v in tw]
    return Run(
        scenario="timewait-pileup",
        title="TIME_WAIT pile-up",
        world="sim",
        seed=1,
        params={"rate": 10000, "duration": 120},
        hosts=[Host("A", A, "client"), Host("B", B, "server")],
        checks=[Check("~rate*60 sockets in TIME_WAIT", True, detail="600000 at t=60")],
        summary={"text": "TIME_WAIT climbs to 600000.", "values": {"tw_max": 600000}},
        series={"t": t, "TIME_WAIT": tw, "ports_in_use": ports, "failed_connects": failed},
    )

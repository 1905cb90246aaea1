"""Findings on hand-built snapshots (no kernel): thresholds, severities, evidence, advice correctness, zh."""

from __future__ import annotations

import re
import socket

import pytest

from tcpwise.doctor import advice, findings
from tcpwise.doctor.collect import Snapshot
from tcpwise.linux.netlink import PORT_SWAP, Sock, TcpInfo
from tcpwise.linux.procfs import ProcInfo

SYSCTLS = {
    "net.ipv4.ip_local_port_range": "32768 60999",
    "net.ipv4.tcp_tw_reuse": "2",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_syncookies": "1",
    "net.core.somaxconn": "4096",
    "net.ipv4.tcp_max_orphans": "1000",
    "net.ipv4.tcp_abort_on_overflow": "0",
}


def ip(a: str) -> bytes:
    return socket.inet_aton(a).ljust(16, b"\0")


def sock(
    state: int,
    sport: int,
    dport: int,
    src="10.0.0.1",
    dst="10.0.0.2",
    *,
    timer=0,
    retrans=0,
    rq=0,
    wq=0,
    inode=0,
    info: TcpInfo | None = None,
) -> Sock:
    # Sock keeps the ports as read in host order; PORT_SWAP is its own inverse.
    return Sock(
        2,
        state,
        timer,
        retrans,
        PORT_SWAP[sport],
        PORT_SWAP[dport],
        ip(src),
        ip(dst),
        0,
        rq,
        wq,
        0,
        inode,
        info,
        None,
    )


def snap(
    socks: list[Sock], procs: dict[int, ProcInfo] | None = None, sysctls=None, counters=None, sockstat=None
) -> Snapshot:
    procs = procs or {}
    owners: dict[int, list[int]] = {}
    for pid, p in procs.items():
        for ino in p.inodes:
            owners.setdefault(ino, []).append(pid)
    return Snapshot(
        socks=socks,
        procs=procs,
        owners=owners,
        counters=counters or {},
        sockstat=sockstat or {},
        sysctls={**SYSCTLS, **(sysctls or {})},
        taken=100.0,
        by_inode={s.inode: s for s in socks if s.inode},
    )


def ids(found) -> list[tuple[str, str, int | None]]:
    return [(f.id, f.severity, f.pid) for f in found]


def test_quiet_host_has_no_findings():
    s = snap(
        [sock(10, 80, 0, inode=1, wq=128), sock(1, 80, 5000, inode=2)],
        {7: ProcInfo(7, "srv", 10, 1024, [1, 2])},
    )
    assert findings.analyze(s) == []


def test_close_wait_threshold_and_crit_by_fd_share():
    cw = [sock(8, 80, 40000 + i, inode=100 + i) for i in range(12)]
    s = snap(cw, {5: ProcInfo(5, "leaky", 40, 1024, [c.inode for c in cw])})
    assert ids(findings.analyze(s)) == [("close-wait-leak", "warn", 5)]
    s2 = snap(cw, {5: ProcInfo(5, "leaky", 40, 40, [c.inode for c in cw])})  # 12 >= 25% of 40
    assert ids(findings.analyze(s2))[0] == ("close-wait-leak", "crit", 5)
    s3 = snap(cw[:9], {5: ProcInfo(5, "leaky", 40, 1024, [c.inode for c in cw[:9]])})
    assert findings.analyze(s3) == []


def test_timewait_only_counts_client_side_ports():
    tw_client = [sock(6, 33000 + i, 443, dst="10.9.9.9") for i in range(9000)]  # 32% of 28232
    tw_server = [sock(6, 443, 33000 + i) for i in range(20000)]  # our port 443: server side, not ports
    f = findings.analyze(snap(tw_client + tw_server))
    assert ids(f) == [("timewait-ports", "warn", None)]
    assert f[0].evidence["dst"] == "10.9.9.9:443" and f[0].evidence["time_wait"] == 9000
    assert findings.analyze(snap(tw_client[:5000])) == []


def test_accept_queue_full_vs_counters_only():
    lst = sock(10, 8080, 0, rq=129, wq=128, inode=9)
    f = findings.analyze(
        snap([lst], {3: ProcInfo(3, "web", 20, 1024, [9])}, counters={"TcpExt.ListenOverflows": 5})
    )
    assert ids(f) == [("accept-queue-overflow", "crit", 3)]
    f2 = findings.analyze(snap([sock(10, 8080, 0, rq=0, wq=128)], counters={"TcpExt.ListenOverflows": 5}))
    assert ids(f2) == [("accept-queue-overflow", "info", None)]


def test_syn_flood_matches_wildcard_listener():
    lst = sock(10, 80, 0, src="0.0.0.0", dst="0.0.0.0", wq=64, inode=4)
    half = [sock(12, 80, 1000 + i, src="10.0.0.1", dst=f"10.1.{i // 250}.{i % 250}") for i in range(64)]
    f = findings.analyze(
        snap([lst, *half], {11: ProcInfo(11, "nginx", 30, 4096, [4])}, counters={"TcpExt.SyncookiesSent": 12})
    )
    assert ids(f) == [("syn-flood", "crit", 11)]
    assert f[0].evidence["syn_queue_limit"] == 64 and "12 SYN cookies" in f[0].message
    assert findings.analyze(snap([lst, *half[:20]], {11: ProcInfo(11, "nginx", 30, 4096, [4])})) == []


def test_orphans_and_fd_headroom():
    f = findings.analyze(snap([], sockstat={"orphan": 950}))
    assert ids(f) == [("orphans", "crit", None)]
    assert "FIN_WAIT_2" in f[0].advice and "tcp_fin_timeout" in f[0].advice
    f2 = findings.analyze(snap([], {8: ProcInfo(8, "busy", 850, 1000, [])}))
    assert ids(f2) == [("fd-headroom", "warn", 8)]


def test_sysctl_audit_items():
    f = findings.analyze(
        snap(
            [],
            sysctls={
                "net.ipv4.tcp_syncookies": "0",
                "net.ipv4.tcp_tw_reuse": "1",
                "net.ipv4.tcp_timestamps": "0",
                "net.core.somaxconn": "128",
                "net.ipv4.ip_local_port_range": "50000 51000",
                "net.ipv4.tcp_abort_on_overflow": "1",
            },
            counters={"TcpExt.TCPTimeWaitOverflow": 3},
        )
    )
    msgs = " | ".join(x.message for x in f if x.id == "sysctl-audit")
    for needle in (
        "tcp_syncookies=0",
        "no effect because net.ipv4.tcp_timestamps=0",
        "overflowed 3 times",
        "somaxconn=128",
        "1001 ephemeral ports",
        "tcp_abort_on_overflow=1",
    ):
        assert needle in msgs
    assert [x.severity for x in f] == sorted(
        (x.severity for x in f), key=lambda s: -findings.severity_rank(s)
    )


def test_no_keepalive_and_retransmitting_and_zero_window():
    idle = TcpInfo(0, 0, 0, 200000, 0, 900_000, 0, 900_000, 900_000, 50, 0, 65535)
    busy = idle._replace(last_data_recv_ms=10)
    socks = [
        sock(1, 5000, 6379, inode=1, info=idle),
        sock(1, 5001, 6379, inode=2, info=busy),
        sock(1, 5002, 6379, inode=3, timer=2, info=idle),
        sock(1, 5003, 443, dst="10.7.7.7", timer=1, retrans=6, inode=4, info=idle._replace(unacked=3)),
        # a local zero-window pair: 21 sends to 22, which never reads
        sock(1, 7000, 7001, src="127.0.0.1", dst="127.0.0.1", timer=4, wq=5000, inode=21, info=idle),
        sock(1, 7001, 7000, src="127.0.0.1", dst="127.0.0.1", rq=400000, inode=22, info=idle),
    ]
    procs = {
        1: ProcInfo(1, "app", 10, 1024, [1, 2, 3, 4]),
        2: ProcInfo(2, "writer", 5, 1024, [21]),
        3: ProcInfo(3, "reader", 5, 1024, [22]),
    }
    f = findings.analyze(snap(socks, procs))
    nk = [x for x in f if x.id == "no-keepalive" and x.pid == 1][0]
    assert nk.evidence["idle_without_keepalive"] == 1 and nk.evidence["idle_with_keepalive"] == 1
    rt = [x for x in f if x.id == "retransmitting"][0]
    assert rt.pid == 1 and rt.evidence["dst"] == "10.7.7.7" and rt.evidence["max_retrans"] == 6
    zw = [x for x in f if x.id == "zero-window"][0]
    assert zw.pid == 3 and zw.evidence["sender_pids"] == [2] and zw.evidence["unread_bytes"] == 400000


def test_pid_filter_keeps_only_that_process():
    cw = [sock(8, 80, 40000 + i, inode=100 + i) for i in range(12)]
    s = snap(cw, {5: ProcInfo(5, "leaky", 40, 1024, [c.inode for c in cw])}, sockstat={"orphan": 990})
    assert ids(findings.analyze(s, pid=5)) == [("close-wait-leak", "warn", 5)]


def test_chinese_messages_and_advice():
    cw = [sock(8, 80, 40000 + i, inode=100 + i) for i in range(12)]
    f = findings.analyze(snap(cw, {5: ProcInfo(5, "leaky", 40, 1024, [c.inode for c in cw])}), lang="zh")
    assert "CLOSE_WAIT" in f[0].message and "对端已关闭" in f[0].message
    assert "close()" in f[0].advice and "修复应用" in f[0].advice


@pytest.mark.parametrize("lang", [0, 1])
def test_advice_never_recommends_folklore(lang):
    for key, texts in advice.ADVICE.items():
        text = texts[lang]
        # tw_recycle may only be named as removed / not a remedy.
        if "tw_recycle" in text:
            assert "removed" in text or "已删除" in text, key
        # tcp_fin_timeout is never offered as a TIME_WAIT remedy.
        if "tcp_fin_timeout" in text and "TIME_WAIT" in text:
            assert re.search(r"FIN_WAIT_2", text), key
    tw_en = advice.ADVICE["timewait-ports"][0]
    assert "outgoing" in tw_en and "tcp_timestamps=1" in tw_en and "SO_LINGER {1,0}" in tw_en
    assert "pooling" in tw_en and "keep-alive" in tw_en
    assert {k.split(".")[0] for k in advice.MESSAGES} >= set(findings.CHECK_IDS)


def test_syn_sent_is_not_half_open_and_follows_tcp_syn_retries():
    socks = [sock(2, 50000 + i, 9000, dst="10.5.5.5", timer=1, retrans=3, inode=60 + i) for i in range(4)]
    s = snap(socks, {8: ProcInfo(8, "client", 10, 1024, [60, 61, 62, 63])})
    f = findings.analyze(s)
    assert [x.id for x in f] == ["connect-retrying"]  # not "retransmitting"
    ev = f[0].evidence
    assert ev["tcp_syn_retries"] == 6 and ev["gives_up_after_s"] == 127.0 and ev["sockets"] == 4
    assert "not half-open" in f[0].message and "127 s" in f[0].message
    f8 = findings.analyze(snap(socks, sysctls={"net.ipv4.tcp_syn_retries": "8"}))
    assert f8[0].evidence["gives_up_after_s"] == 1 + 2 + 4 + 8 + 16 + 32 + 64 + 120 + 120


def test_syn_sent_toward_a_full_local_listener_links_both_findings():
    lst = sock(10, 8080, 0, src="127.0.0.1", dst="0.0.0.0", rq=2, wq=1, inode=9)
    waiting = [
        sock(2, 51000 + i, 8080, src="127.0.0.1", dst="127.0.0.1", timer=1, retrans=1, inode=70 + i)
        for i in range(3)
    ]
    procs = {3: ProcInfo(3, "web", 20, 1024, [9]), 4: ProcInfo(4, "bench", 9, 1024, [70, 71, 72])}
    f = {x.id: x for x in findings.analyze(snap([lst, *waiting], procs))}
    cr = f["connect-retrying"]
    assert (
        cr.pid == 4 and cr.evidence["listener_pid"] == 3 and cr.evidence["local_listener"] == "127.0.0.1:8080"
    )
    assert "accept queue is full" in cr.message
    aq = f["accept-queue-overflow"]
    assert aq.evidence["local_clients_retrying_syn"] == 3 and "connect-retrying" in aq.message


def test_a_wrong_syn_timeout_is_caught(monkeypatch):
    """The 127 s check can fail: plant a give-up formula without the doubling."""
    socks = [sock(2, 50000, 9000, dst="10.5.5.5", timer=1, retrans=3, inode=60)]
    monkeypatch.setattr(findings, "syn_give_up_s", lambda n: float(n + 1))
    assert findings.analyze(snap(socks))[0].evidence["gives_up_after_s"] != 127.0


@pytest.mark.parametrize(
    ("reuse", "dst", "needle"),
    [
        ("2", "127.0.0.1", "already lets connect() reuse"),
        ("2", "10.9.9.9", "loopback only"),
        ("1", "10.9.9.9", "already on"),
        ("0", "10.9.9.9", None),
    ],
)
def test_tw_reuse_advice_knows_the_current_value(reuse, dst, needle):
    tw = [sock(6, 33000 + i, 443, src=dst, dst=dst) for i in range(9000)]
    f = findings.analyze(snap(tw, sysctls={"net.ipv4.tcp_tw_reuse": reuse}))
    (x,) = [y for y in f if y.id == "timewait-ports"]
    if needle is None:
        assert x.advice == advice.ADVICE["timewait-ports"][0]
    else:
        assert x.advice.startswith("Here tcp_tw_reuse=") and needle in x.advice

"""The sock_diag decoder on golden bytes (no kernel), then against the live kernel on sockets we own."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from tcpwise.linux import netlink
from tcpwise.vocab import kernel_state_name

HDR = struct.Struct("=IHHII")
MSG = struct.Struct("=BBBB2s2s16s16sI8sIIIII")


def record(
    state: int,
    sport: int,
    dport: int,
    src: str = "127.0.0.1",
    dst: str = "127.0.0.2",
    *,
    family=2,
    timer=0,
    retrans=0,
    expires=0,
    rq=0,
    wq=0,
    uid=0,
    inode=0,
    attrs: bytes = b"",
) -> bytes:
    fam_len = 4 if family == 2 else 16
    s = socket.inet_pton(family, src).ljust(16, b"\0")
    d = socket.inet_pton(family, dst).ljust(16, b"\0")
    assert len(s) == 16 and fam_len
    body = MSG.pack(
        family,
        state,
        timer,
        retrans,
        struct.pack("!H", sport),
        struct.pack("!H", dport),
        s,
        d,
        0,
        b"\xa5" * 8,
        expires,
        rq,
        wq,
        uid,
        inode,
    )
    payload = body + attrs
    return HDR.pack(16 + len(payload), netlink.SOCK_DIAG_BY_FAMILY, 2, 1, 0) + payload


def attr(atype: int, payload: bytes) -> bytes:
    a = struct.pack("=HH", 4 + len(payload), atype) + payload
    return a + b"\0" * (-len(a) % 4)


def tcp_info(**fields: int) -> bytes:
    b = bytearray(248)  # a 5.x/6.x-sized struct tcp_info
    offs = {
        "retransmits": (2, "B"),
        "probes": (3, "B"),
        "backoff": (4, "B"),
        "rto": (8, "I"),
        "unacked": (24, "I"),
        "last_data_sent": (44, "I"),
        "last_ack_sent": (48, "I"),
        "last_data_recv": (52, "I"),
        "last_ack_recv": (56, "I"),
        "rtt": (68, "I"),
        "total_retrans": (100, "I"),
        "snd_wnd": (228, "I"),
    }
    for k, v in fields.items():
        off, fmt = offs[k]
        struct.pack_into("=" + fmt, b, off, v)
    return bytes(b)


DONE = HDR.pack(20, netlink.NLMSG_DONE, 2, 1, 0) + b"\0\0\0\0"


def parse(data: bytes, info=True) -> tuple[list[netlink.Sock], bool]:
    out: list[netlink.Sock] = []
    buf = bytearray(data)
    done = netlink._parse_into(buf, len(buf), out, info, False, [0, 0, None])
    return out, done


def test_golden_record_fields_and_byte_order():
    out, done = parse(
        record(1, 443, 51000, timer=1, retrans=3, expires=180, rq=7, wq=9, uid=1000, inode=4242) + DONE
    )
    assert done and len(out) == 1
    s = out[0]
    assert (s.family, s.state, s.timer, s.retrans) == (2, 1, 1, 3)
    assert (s.sport, s.dport) == (443, 51000)
    assert (s.expires_ms, s.rqueue, s.wqueue, s.uid, s.inode) == (180, 7, 9, 1000, 4242)
    assert netlink.format_addr(2, s.src) == "127.0.0.1" and netlink.format_addr(2, s.dst) == "127.0.0.2"
    assert s.info is None and kernel_state_name(s.state) == "ESTABLISHED"


def test_ipv6_and_new_syn_recv_maps_to_syn_rcvd():
    out, _ = parse(record(12, 80, 1234, "fd00::1", "fd00:1::1", family=10))
    assert netlink.format_addr(10, out[0].src) == "fd00::1"
    assert kernel_state_name(out[0].state) == "SYN_RCVD"


def test_tcp_info_found_by_walk_and_by_hint():
    shut = attr(8, b"\0")  # INET_DIAG_SHUTDOWN comes first, as the kernel sends it
    info = attr(
        netlink.INET_DIAG_INFO,
        tcp_info(last_data_recv=5000, last_data_sent=7000, unacked=2, snd_wnd=0, rtt=120, retransmits=4),
    )
    recs = record(1, 1, 2, attrs=shut + info) + record(1, 3, 4, attrs=shut + info) + record(6, 5, 6)
    out, _ = parse(recs + DONE)
    assert [s.sport for s in out] == [1, 3, 5]
    for s in out[:2]:  # first by walking, second through the cached offset
        assert s.info is not None
        assert (s.info.last_data_recv_ms, s.info.last_data_sent_ms, s.info.unacked) == (5000, 7000, 2)
        assert (s.info.snd_wnd, s.info.rtt_us, s.info.retransmits) == (0, 120, 4)
    assert out[2].info is None


def test_hint_miss_falls_back_to_walk():
    info = attr(netlink.INET_DIAG_INFO, tcp_info(last_data_recv=1))
    other = attr(21, b"\0" * 8)  # an extra attribute shifts INFO in the second record
    out, _ = parse(record(1, 1, 2, attrs=info) + record(1, 3, 4, attrs=other + info) + DONE)
    assert [s.info.last_data_recv_ms for s in out] == [1, 1]


def test_short_tcp_info_from_an_old_kernel():
    info = attr(netlink.INET_DIAG_INFO, tcp_info(last_data_recv=9)[:104])
    out, _ = parse(record(1, 1, 2, attrs=info) + DONE)
    assert out[0].info.last_data_recv_ms == 9 and out[0].info.snd_wnd == -1


def test_error_message_raises_with_errno():
    err = HDR.pack(36, netlink.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -13) + b"\0" * 16
    with pytest.raises(netlink.DiagError) as ei:
        parse(err)
    assert ei.value.errno == 13


def test_malformed_length_raises():
    with pytest.raises(netlink.DiagError):
        parse(HDR.pack(8, netlink.SOCK_DIAG_BY_FAMILY, 0, 1, 0) + b"\0" * 100)


def test_not_done_without_done_message():
    _, done = parse(record(10, 80, 0))
    assert not done


@pytest.mark.kernel
def test_live_dump_sees_our_listener_and_pair():
    ls = socket.socket()
    ls.bind(("127.0.0.51", 0))
    ls.listen(7)
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    try:
        socks = netlink.dump()
        port = ls.getsockname()[1]
        mine = [x for x in socks if netlink.format_addr(x.family, x.src) == "127.0.0.51" and x.sport == port]
        states = sorted(kernel_state_name(x.state) for x in mine)
        assert states == ["ESTABLISHED", "LISTEN"]
        lst = next(x for x in mine if x.state == 10)
        assert lst.wqueue == 7 and lst.rqueue == 0
        assert os.readlink(f"/proc/self/fd/{ls.fileno()}") == f"socket:[{lst.inode}]"
        est = next(x for x in mine if x.state == 1)
        assert est.info is not None and est.info.rtt_us > 0 and est.info.snd_wnd > 0
        assert os.readlink(f"/proc/self/fd/{s.fileno()}") == f"socket:[{est.inode}]"
        counts, listeners, _ = netlink.census()
        assert counts[10] >= 1 and any(x.sport == port for x in listeners)
    finally:
        for x in (c, s, ls):
            x.close()


class FakeDiagSocket:
    """Replays datagrams as a NETLINK_SOCK_DIAG socket would (one per recv)."""

    def __init__(self, datagrams: list[bytes]) -> None:
        self.datagrams = list(datagrams)

    def sendto(self, data: bytes, addr) -> int:
        return len(data)

    def recv_into(self, buf: bytearray) -> int:
        d = self.datagrams.pop(0)
        buf[: len(d)] = d
        return len(d)


def test_census_bulk_counting_matches_record_by_record():
    shut = attr(8, b"\0") + attr(21, b"\0" * 8)
    est = [record(1, 5000 + i, 80, attrs=shut) for i in range(300)]
    tw = [record(6, 6000 + i, 443) for i in range(50)]
    cw = [record(8, 7000 + i, 80, attrs=shut) for i in range(7)]
    lst = record(10, 80, 0, src="0.0.0.0", dst="0.0.0.0", rq=3, wq=128, attrs=shut)
    synr = [record(12, 80, 9000 + i, src="10.0.0.1", dst="10.9.0.1") for i in range(5)]
    # Interleave runs the way the kernel's hash walk does, split over two datagrams; IPv6 dump empty.
    d1 = b"".join(est[:100] + tw[:20] + [lst] + est[100:200] + cw + synr[:2])
    d2 = b"".join(synr[2:] + tw[20:] + est[200:]) + DONE
    fake = FakeDiagSocket([d1, d2, DONE])
    counts, listeners, syn = netlink.census(sock=fake)  # type: ignore[arg-type]
    ref, _ = parse(d1 + d2)
    for st in range(16):
        assert counts[st] == sum(1 for s in ref if s.state == st), st
    assert counts[1] == 300 and counts[6] == 50 and counts[8] == 7 and counts[12] == 5
    assert [(x.sport, x.rqueue, x.wqueue) for x in listeners] == [(80, 3, 128)]
    assert syn == {(2, socket.inet_aton("10.0.0.1").ljust(16, b"\0"), 80): 5}


@pytest.mark.kernel
def test_live_dump_ipv6_loopback():
    try:
        ls = socket.socket(socket.AF_INET6)
        ls.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    ls.listen(3)
    c = socket.create_connection(("::1", ls.getsockname()[1]))
    s, _ = ls.accept()
    try:
        port = ls.getsockname()[1]
        mine = [
            x
            for x in netlink.dump(families=(socket.AF_INET6,))
            if x.family == socket.AF_INET6
            and netlink.format_addr(x.family, x.src) == "::1"
            and port in (x.sport, x.dport)
        ]
        assert sorted(kernel_state_name(x.state) for x in mine) == ["ESTABLISHED", "ESTABLISHED", "LISTEN"]
        est = next(x for x in mine if x.state == 1 and x.sport == port)
        assert os.readlink(f"/proc/self/fd/{s.fileno()}") == f"socket:[{est.inode}]"
    finally:
        for x in (c, s, ls):
            x.close()


@pytest.mark.kernel
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespace)")
def test_lean_dump_agrees_with_full_dump():
    from collections import Counter

    from tcpwise.doctor.fixtures import CLIENTS, PAIRS, SERVER_NO_CLOSE, Child, Netns
    from tcpwise.linux import kernel

    with (
        Netns() as ns,
        Child(PAIRS, "127.0.0.1", 400, netns=ns.name),
        Child(SERVER_NO_CLOSE, "127.0.0.1", netns=ns.name) as srv,
        Child(CLIENTS, "127.0.0.1", srv.info["port"], 20, "close", netns=ns.name),
    ):
        import time

        time.sleep(0.3)
        with kernel.in_netns(ns.name):
            socks = [netlink.open_diag_socket() for _ in range(3)]
        try:
            full = netlink.dump(sock=socks[0])
            lean, counts, inode_state = netlink.dump_lean(socks[1], idle_ms=10**9)
            all_idle, _, _ = netlink.dump_lean(socks[2], idle_ms=0)
        finally:
            for s in socks:
                s.close()
        ref = Counter(x.state for x in full)
        assert counts == [ref.get(i, 0) for i in range(16)]
        assert inode_state == {x.inode: x.state for x in full if x.inode}
        boring = [
            x
            for x in full
            if x.state == 1
            and x.timer in (0, 2)
            and not x.rqueue
            and x.info is not None
            and x.info.snd_wnd != 0
        ]
        assert len(boring) >= 700  # the 800 idle pair sockets, read column-wise
        # Every interesting socket is decoded; boring ones only where a short run (end of a datagram, before
        # the layout hint is known) went through the record-by-record path.
        lean_inodes = {x.inode for x in lean}
        assert {x.inode for x in full} - {x.inode for x in boring} <= lean_inodes <= {x.inode for x in full}
        assert len(lean) < len(full) / 2
        assert sum(1 for x in lean if x.state == 8) == 20  # every CLOSE_WAIT decoded
        lean_by = {x.inode: x for x in lean if x.inode}
        for x in full:  # decoded records are identical to the full decoder's
            if x.inode in lean_by:
                y = lean_by[x.inode]
                assert y[:13] == x[:13] and (y.info is None) == (x.info is None)
        assert len(all_idle) == len(full)  # idle threshold 0: every ESTABLISHED socket is interesting

"""Scripts executed on the real kernel: state and flag sequences per host, faults, crash/reboot, pcap, IPv6.

Each run lasts 1-2.5 s of wall time (the lab's 50 ms link delay makes every state observable). The catalogue's
lab-capable scenarios (close-three-segments, half-close, simultaneous-close, ...) are run against the model in
test_lab_conform_kernel.py."""

from __future__ import annotations

import io
import os

import pytest

import tcpwise.script as S
from tcpwise.lab.conform import sequences

pytestmark = pytest.mark.kernel

H = (S.HostSpec("A", "198.18.0.1", "client"), S.HostSpec("B", "198.18.1.1", "server"))
HANDSHAKE = (S.Listen(0.0, "B"), S.Connect(0.1, "A", "B"))

ESTABLISH_A = ["SYN_SENT", "ESTABLISHED"]
ESTABLISH_B = ["LISTEN", "SYN_RCVD", "ESTABLISHED"]


def _run(steps: tuple[S.Step, ...], duration: float, **kw: object):  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from tcpwise.lab.executor import run_script

    return run_script(S.Script(H, steps, duration=duration), scenario="test", **kw)  # type: ignore[arg-type]


def test_close_four_way() -> None:
    run = _run(
        HANDSHAKE + (S.Send(0.5, "A", nbytes=100), S.Close(0.8, "A"), S.Close(1.2, "B", sock="s")), 1.7
    )
    assert run.world == "lab"
    assert sequences(run, "A") == (
        ESTABLISH_A + ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"],
        ["S", "A", "PA", "FA", "A"],
    )
    assert sequences(run, "B") == (ESTABLISH_B + ["CLOSE_WAIT", "LAST_ACK", "CLOSED"], ["SA", "A", "A", "FA"])
    calls = [e.call for e in run.events if e.kind == "app"]
    assert "connected" in calls and "eof" in calls
    # Every segment carries the schema fields; the capture saw both directions.
    segs = [e.segment for e in run.events if e.kind == "send"]
    assert segs[0] is not None and segs[0].src == "198.18.0.1" and segs[0].dport == 80


def test_lost_last_ack_fin_retransmitted_and_reacked() -> None:
    run = _run(
        HANDSHAKE + (S.Close(0.5, "A"), S.DropNext(0.55, "A", "B", "A"), S.Close(0.8, "B", sock="s")), 2.2
    )
    drops = [e for e in run.events if e.kind == "drop"]
    assert len(drops) == 1 and drops[0].segment is not None and drops[0].segment.flags == "A"
    assert sequences(run, "B") == (
        ESTABLISH_B + ["CLOSE_WAIT", "LAST_ACK", "CLOSED"],
        ["SA", "A", "FA", "FA"],
    )
    assert sequences(run, "A")[1] == ["S", "A", "FA", "A", "A"]  # A in TIME_WAIT ACKs the retransmitted FIN
    assert run.summary["values"]["nft_drops"]  # the nft counter saw it


def test_abort_sends_rst_and_skips_time_wait() -> None:
    run = _run(HANDSHAKE + (S.Abort(0.6, "A"),), 1.1)
    assert sequences(run, "A") == (ESTABLISH_A + ["CLOSED"], ["S", "A", "RA"])
    assert "TIME_WAIT" not in sequences(run, "B")[0]


def test_crash_then_reboot_answers_rst() -> None:
    run = _run(HANDSHAKE + (S.Crash(0.6, "B"), S.Reboot(0.9, "B"), S.Send(1.6, "A", nbytes=10)), 2.4)
    assert sequences(run, "B")[1] == ["SA", "R"]  # nothing from the dead host; RST from the new stack
    assert sequences(run, "A")[0] == ESTABLISH_A + ["CLOSED"]
    assert any(e.host == "A" and e.kind == "app" and e.errno == "ECONNRESET" for e in run.events)


def test_partition_retransmits_then_heals() -> None:
    run = _run(
        HANDSHAKE + (S.Partition(0.5, "B", "A"), S.Send(0.6, "A", nbytes=10), S.Heal(1.5, "B", "A")), 2.3
    )
    a_flags = sequences(run, "A")[1]
    assert a_flags[:3] == ["S", "A", "PA"] and a_flags.count("PA") >= 2  # retransmitted while B's ACKs die
    assert any(e.kind == "drop" and e.host == "B" for e in run.events)


def test_pcap_and_ipv6() -> None:
    buf = io.BytesIO()
    run = _run(HANDSHAKE + (S.Close(0.5, "A"), S.Close(0.5, "B", sock="s")), 1.0, ipv6=True, pcap=buf)
    assert run.hosts[0].addr == "fd00::1"
    assert sequences(run, "A")[0][:2] == ESTABLISH_A
    data = buf.getvalue()
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    assert run.summary["values"]["pcap_packets"] == len([e for e in run.events if e.kind == "send"])


def test_link_loss_by_numgen() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from tcpwise.lab.executor import run_script

    # loss = 1.0: every segment from A to B dies at R: A stays in SYN_SENT (0.5 would use numgen).
    script = S.Script(H, HANDSHAKE, link=S.LinkSpec(loss=1.0), duration=0.8)
    run = run_script(script)
    assert sequences(run, "A") == (["SYN_SENT"], ["S"])
    assert [e.segment.flags for e in run.events if e.kind == "drop" and e.segment] == ["S"]
    assert run.summary["values"]["nft_drops"]["loss-ab"] == 1


def test_fault_rules_in_the_router_table() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from tcpwise.lab.netns import Topology, sh
    from tcpwise.lab.nft import Faults

    with Topology(delay_line=False) as topo:
        f = Faults(topo.router_ns, topo.run_id)
        f.create()
        f.loss("l", "198.18.0.1", "198.18.1.1", 0.25)
        f.drop_next("d", "198.18.0.1", "198.18.1.1", "A", 3)
        f.partition("p", "198.18.1.1", "198.18.0.1")
        f.delete("p")
        out = sh("ip", "netns", "exec", topo.router_ns, "nft", "list", "table", "inet", f.table)
        assert "numgen random mod 1000000 < 250000" in out
        assert "tcp flags == ack limit rate 1/day burst 3 packets" in out
        assert '"p"' not in out and set(f.counters()) == {"l", "d"}
        f.destroy()
        assert f.table not in sh("ip", "netns", "exec", topo.router_ns, "nft", "list", "tables")


def test_duplicate_in_the_delay_line() -> None:
    # duplicate = 1.0: the delay line delivers every segment twice (a second copy U[0, delay) later).
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from tcpwise.lab.executor import run_script

    run = run_script(S.Script(H, HANDSHAKE, link=S.LinkSpec(duplicate=1.0), duration=0.8))
    recv_b = [e.segment.flags for e in run.events if e.kind == "recv" and e.host == "B" and e.segment]
    assert recv_b[:2] == ["S", "S"]
    assert (
        run.summary["values"]["packets_forwarded"] >= 2 * len([e for e in run.events if e.kind == "send"]) - 2
    )

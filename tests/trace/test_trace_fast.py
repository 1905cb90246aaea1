"""The fast tracker must write exactly what the reference tracker writes.

``Tracker(reference=True)`` is the kept slow path: every packet goes through ``_process``, the literal rule-by-rule
implementation, and nothing is held in compact form. The default tracker adds the hot path for in-order segments,
compact SYN-only connections (materialised by replaying them) and the specialised handlers. These tests run both on
the same captures — the real loopback capture, the mixed corner-case captures of the --jobs tests, a SYN flood with
retries and reused ports, and random conversations Hypothesis builds from every kind of segment (out of order,
duplicated, zero windows, bad checksums, snaplen cuts, long silences that fire Zeek's timers) — and require the
JSON of every connection, in order, to be byte-identical, at several batch sizes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_trace_jobs import _conv, _mixed
from tracecaps import Conv, write_pcap

from tcpwise.trace import tracker as tracker_mod
from tcpwise.trace.decode import AddrTable
from tcpwise.trace.output import conn_dict, conn_json, trace_file
from tcpwise.trace.tracker import Conn

REAL = str(Path(__file__).parent / "data" / "lo-small.pcap")


def _lines(path: str, reference: bool, batch: int, checksums: str = "auto") -> list[str]:
    a = AddrTable()
    out: list[str] = []

    def sink(c: Conn) -> None:
        line = conn_json(c, a.name, 1)
        if reference:  # the hand-written JSON is json.dumps of conn_dict, whatever the connection
            assert json.loads(line) == conn_dict(c, a.name, 1)
        out.append(line)

    trace_file(path, sink, a, batch=batch, reference=reference, checksums=checksums)
    return out


def same(path: str, batches: tuple[int, ...] = (7, 65536), checksums: str = "auto") -> int:
    """Same lines at each batch size (the order rows are written in depends on the batch boundaries: timers are
    swept at the end of each batch)."""
    n = 0
    for b in batches:
        want = _lines(path, True, b, checksums)
        assert _lines(path, False, b, checksums) == want, f"batch {b}"
        n = len(want)
    return n


def test_real_capture() -> None:
    assert same(REAL) == 6


def test_mixed_corner_cases(tmp_path) -> None:
    assert same(_mixed(tmp_path / "m.pcap", 400, 90, 3), (5, 61, 65536)) > 300


def test_each_corner_case_alone(tmp_path) -> None:
    rng = random.Random(11)
    for k in range(11):
        p = str(tmp_path / f"k{k}.pcap")
        write_pcap(p, _conv(rng, k, 1000).pkts)
        same(p, (1, 3, 65536))


@pytest.mark.parametrize("compact_after", [0, 1000, tracker_mod.COMPACT_AFTER])
def test_syn_flood_with_retries_and_reuse(tmp_path, monkeypatch, compact_after: int) -> None:
    """Compact SYN-only connections: retries inside and after the attempt delay, new ISNs, answers that promote
    them, bad-checksum SYNs, and the end of the capture with thousands still compact (compacting from the first
    open connection, from the 1000th, or only in a real flood)."""
    monkeypatch.setattr(tracker_mod, "COMPACT_AFTER", compact_after)
    p = flood_mix(tmp_path)
    assert same(p, (13, 500, 65536)) >= 3000
    assert same(p, (64,), checksums="ignore") >= 3000


# -- random conversations ----------------------------------------------------------------------------------------------
FLAGS = ["S", "SA", "A", "PA", "FA", "R", "RA", "FPA", "SF", "FR", "A", "PA", "PA"]
step = st.tuples(
    st.integers(0, 1),  # direction
    st.sampled_from(FLAGS),
    st.sampled_from([0, 0, 1, 10, 100]),  # payload
    st.sampled_from([0, 0, 0, -1, -10, 5, 1000]),  # sequence offset from the sender's next
    st.sampled_from([0, 0, 0, -1, 7]),  # acknowledgment offset from the peer's next
    st.sampled_from([65535, 65535, 0, 512]),  # window
    st.sampled_from([0.001, 0.001, 0.2, 6.0, 70.0, 400.0]),  # gap before it (timers: 5 s, 60 s, 300 s)
    st.sampled_from(["good"] * 8 + ["bad", "offload"]),
    st.booleans(),  # the capture missed it
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(step, min_size=1, max_size=30),
    pairs=st.integers(1, 3),
    seed=st.integers(0, 9),
    compact=st.booleans(),
)
def test_random_conversations(tmp_path, steps, pairs: int, seed: int, compact: bool) -> None:
    tracker_mod.COMPACT_AFTER, saved = (0 if compact else 20000), tracker_mod.COMPACT_AFTER
    try:
        _random_conversations(tmp_path, steps, pairs, seed)
    finally:
        tracker_mod.COMPACT_AFTER = saved


def _random_conversations(tmp_path, steps, pairs: int, seed: int) -> None:
    p = random_conversations_pcap(tmp_path, steps, pairs, seed)
    same(p, (1, 2, 65536))


def test_a_planted_fast_path_bug_turns_red(tmp_path, monkeypatch) -> None:
    """Plant a bug in a fast-path helper only (forget the retransmission letter): the comparison must fail."""
    real = tracker_mod.Tracker._data_fast

    def buggy(self, c, s, d, seq, pl, fl):  # type: ignore[no-untyped-def]
        saved = s.zrx_th
        real(self, c, s, d, seq, pl, fl)
        if s.zrx_th != saved and c.hist[-1] in "Tt":  # the letter was just added: take it back
            c.hist.pop()

    monkeypatch.setattr(tracker_mod.Tracker, "_data_fast", buggy)
    cv = Conv().handshake().c("PA", b"abcd").s("A")
    cv.c("PA", b"abcd", seq=cv.nxt[0] - 4)
    p = cv.write(str(tmp_path / "t.pcap"))
    with pytest.raises(AssertionError):
        same(p)


def flood_mix(tmp_path, answered: tuple[int, ...] = (3,)) -> str:
    """3,000 SYN-led attempts on 1,700 reused ports: retries inside and after the attempt delay, new ISNs, bad
    checksums, refusals, and (every ninth, at the offsets in ``answered``) handshakes that promote them."""
    rng = random.Random(4)
    pkts = []
    for i in range(3000):
        cv = Conv(cport=20000 + i % 1700, isn_c=rng.randrange(1 << 32), t0=1_700_000_000.0 + i * 0.004)
        k = i % 9
        cv.c("S", csum="bad" if k == 4 else "good")
        if k in (1, 2):
            cv.c("S", seq=cv.nxt[0] - 1, gap=1.0 if k == 1 else 6.0)
        if k in answered:
            cv.s("SA").c("A")
        if k == 5:
            cv.s("RA", seq=0)
        if k == 6:
            cv.nxt[0] = rng.randrange(1 << 32)
            cv.c("S", gap=0.5)
        pkts.extend(cv.pkts)
    pkts.sort(key=lambda p: p[0])
    p = str(tmp_path / "flood.pcap")
    write_pcap(p, pkts)
    return p


def random_conversations_pcap(tmp_path, steps, pairs: int, seed: int) -> str:
    """``pairs`` conversations on neighbouring ports, each made of Hypothesis's ``steps`` (see :data:`step`)."""
    rng = random.Random(seed)
    pkts = []
    for j in range(pairs):
        cv = Conv(cport=30000 + j, isn_c=rng.randrange(1 << 32), isn_s=rng.randrange(1 << 32),
                  t0=1_700_000_000.0 + j * 0.0003)  # fmt: skip
        for d, fl, n, so, ao, win, gap, csum, lost in steps:
            seq = (cv.nxt[d] + so) & 0xFFFFFFFF
            ack = (cv.nxt[1 - d] + ao) & 0xFFFFFFFF
            cv._pkt(d, fl, b"x" * n, seq=seq, ack=ack, win=win, gap=gap, csum=csum, keep=not lost)
            if so == 0:
                cv.nxt[d] = (seq + n + ("S" in fl) + ("F" in fl)) & 0xFFFFFFFF
        pkts.extend(cv.pkts)
    pkts.sort(key=lambda p: p[0])
    p = str(tmp_path / "r.pcap")
    write_pcap(p, pkts)
    return p

"""The native tracker fast path (``_ctrack.c``) must write exactly what the reference tracker writes.

The C side holds a connection from its first bare SYN while every packet is one a straight-line handler of
``Tracker._feed_fast`` takes, and hands it to the Python rules (materialized as a Conn) at the first one it does
not, or when a timer, a scan or the flush needs it. These tests run test_trace_fast's differential corpus with
the native path explicitly on and explicitly off, plus conversations built to leave the common life at every
point of it (each handover, each timer), and check that the native path really takes the common packets.
"""

from __future__ import annotations

import importlib
import random
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_trace_fast import REAL, _random_conversations, flood_mix, same, step
from test_trace_jobs import _conv, _mixed
from tracecaps import Conv, write_pcap

from tcpwise.trace import tracker as tracker_mod
from tcpwise.trace.decode import AddrTable
from tcpwise.trace.output import conn_json, trace_file
from tcpwise.trace.tracker import ZeekTimers
from tcpwise.wire import WindowScaleOption


def _built() -> ModuleType | None:
    try:
        return importlib.import_module("tcpwise.trace._ctrack")
    except ImportError:
        return None


CTRACK = _built()
pytestmark = pytest.mark.skipif(CTRACK is None, reason="the _ctrack extension is not built")
MODES = ["native", "python"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The default tracker with the native path on (whatever TCPWISE_NATIVE says) or off."""
    monkeypatch.setattr(tracker_mod, "_ctrack", CTRACK if request.param == "native" else None)
    return str(request.param)


class _Handed:
    """Counts the packets the C loop hands to Python (Tracker._native_one) and the decoded packets."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.handed = 0
        real = tracker_mod.Tracker._native_one

        def spy(tr: tracker_mod.Tracker, i: int) -> None:
            self.handed += 1
            real(tr, i)

        monkeypatch.setattr(tracker_mod.Tracker, "_native_one", spy)


def test_real_capture(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    h = _Handed(monkeypatch)
    assert same(REAL) == 6
    if mode == "native":
        assert h.handed < 10  # six clean connections: nearly every packet stays in C


def test_mixed_corner_cases(mode: str, tmp_path) -> None:
    assert same(_mixed(tmp_path / "m.pcap", 400, 90, 3), (5, 61, 65536)) > 300


def test_each_corner_case_alone(mode: str, tmp_path) -> None:
    rng = random.Random(11)
    for k in range(11):
        p = str(tmp_path / f"k{k}.pcap")
        write_pcap(p, _conv(rng, k, 1000).pkts)
        same(p, (1, 3, 65536))


@pytest.mark.parametrize("compact_after", [0, 1000, 2500])
def test_syn_flood_with_retries_and_reuse(mode: str, tmp_path, monkeypatch, compact_after: int) -> None:
    """As test_trace_fast's flood; at 2500 the natively held connections must count towards COMPACT_AFTER."""
    monkeypatch.setattr(tracker_mod, "COMPACT_AFTER", compact_after)
    p = flood_mix(tmp_path, answered=(3, 7))
    assert same(p, (13, 500, 65536)) >= 3000
    assert same(p, (64,), checksums="ignore") >= 3000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=30), pairs=st.integers(1, 3), seed=st.integers(0, 9))
@pytest.mark.parametrize("on", MODES)
def test_random_conversations(tmp_path, on: str, steps, pairs: int, seed: int) -> None:
    saved = tracker_mod._ctrack
    tracker_mod._ctrack = CTRACK if on == "native" else None
    try:
        _random_conversations(tmp_path, steps, pairs, seed)
    finally:
        tracker_mod._ctrack = saved


# -- the common life, left at every point --------------------------------------------------------------------------
# A connection's usual packets (handshake, data both ways, the two FINs and their ACKs), with one odd packet put
# in at a chosen point, silences that fire each Zeek timer, window-scale options, and port reuse across rows.
ODD = [
    ("c", "A", 0, {"win": 0}),  # zero window
    ("s", "PA", 10, {"seq_off": 5}),  # a hole
    ("c", "PA", 10, {"seq_off": -10}),  # a retransmission
    ("c", "A", 0, {"seq_off": -1}),  # keep-alive
    ("s", "A", 0, {"ack_off": 7}),  # acknowledges beyond what was seen
    ("c", "R", 0, {}),
    ("s", "RA", 0, {}),
    ("c", "S", 0, {"seq_off": -1}),  # the SYN again
    ("s", "SA", 0, {"seq_off": -1}),
    ("c", "FA", 0, {"seq_off": 3}),
    ("c", "A", 0, {"csum": "bad"}),
    ("s", "PA", 5, {"ecn": True}),
    ("c", "UA", 0, {}),
]
life = st.tuples(
    st.integers(0, 12),  # where the odd packet goes (beyond the end: none)
    st.integers(-1, len(ODD) - 1),  # which (-1: none)
    st.sampled_from([0.001, 0.001, 2.0, 6.0, 70.0, 400.0]),  # a silence ...
    st.integers(0, 12),  # ... before this step
    st.integers(0, 3),  # close: 0 client first, 1 server first, 2 simultaneous, 3 never
    st.booleans(),  # window-scale options on the SYNs
)


def _life(cv: Conv, spec: tuple[int, int, float, int, int, bool]) -> None:
    where, odd, silence, at, close, wscale = spec
    opts = (WindowScaleOption(shift=7),) if wscale else ()
    steps: list[tuple[str, str, int, dict]] = [
        ("c", "S", 0, {"opts": opts}),
        ("s", "SA", 0, {"opts": opts}),
        ("c", "A", 0, {}),
        ("c", "PA", 20, {}),
        ("s", "A", 0, {}),
        ("s", "PA", 100, {}),
        ("c", "A", 0, {}),
    ]
    if close == 0:
        steps += [("c", "FA", 0, {}), ("s", "A", 0, {}), ("s", "FA", 0, {}), ("c", "A", 0, {})]
    elif close == 1:
        steps += [("s", "FPA", 3, {}), ("c", "A", 0, {}), ("c", "FA", 0, {}), ("s", "A", 0, {})]
    elif close == 2:
        steps += [("c", "FA", 0, {}), ("s", "FA", 0, {"ack_off": -1}), ("c", "A", 0, {}), ("s", "A", 0, {})]
    if 0 <= odd and where <= len(steps):
        steps.insert(where, ODD[odd])
    for j, (who, fl, n, kw) in enumerate(steps):
        d = 0 if who == "c" else 1
        seq = (cv.nxt[d] + kw.get("seq_off", 0)) & 0xFFFFFFFF
        ack = (cv.nxt[1 - d] + kw.get("ack_off", 0)) & 0xFFFFFFFF
        fl2 = fl + ("E" if kw.get("ecn") else "")
        cv._pkt(d, fl2, b"y" * n, seq=seq, ack=ack, win=kw.get("win", 65535), gap=silence if j == at else None,
                csum=kw.get("csum", "good"), opts=kw.get("opts", ()))  # fmt: skip
        if "seq_off" not in kw:
            cv.nxt[d] = (seq + n + ("S" in fl) + ("F" in fl)) & 0xFFFFFFFF


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lives=st.lists(life, min_size=1, max_size=6), ports=st.integers(1, 3), seed=st.integers(0, 99))
def test_common_life_left_anywhere(tmp_path, lives, ports: int, seed: int) -> None:
    """Rows one after another on 1-3 ports (reused ports: reusing SYNs, recent rows), interleaved."""
    rng = random.Random(seed)
    pkts = []
    for j, spec in enumerate(lives):
        cv = Conv(cport=41000 + j % ports, isn_c=rng.randrange(1 << 32), isn_s=rng.randrange(1 << 32),
                  t0=1_700_000_000.0 + j * rng.choice([0.0005, 0.003, 3.0, 7.0]))  # fmt: skip
        _life(cv, spec)
        pkts.extend(cv.pkts)
    pkts.sort(key=lambda p: p[0])
    p = str(tmp_path / "l.pcap")
    write_pcap(p, pkts)
    saved = tracker_mod._ctrack
    tracker_mod._ctrack = CTRACK
    try:
        same(p, (1, 2, 5, 65536))
    finally:
        tracker_mod._ctrack = saved


def _many_short(path: str, n: int, ports: int) -> str:
    rng = random.Random(n)
    pkts = []
    for i in range(n):
        cv = Conv(cport=30000 + i % ports, isn_c=rng.randrange(1 << 32), isn_s=rng.randrange(1 << 32),
                  t0=1_700_000_000.0 + i * 0.01)  # fmt: skip
        cv.handshake().c("PA", b"q" * 30).s("A").s("PA", b"r" * 300).c("A")
        cv.c("FA").s("A").s("FA").c("A")
        pkts.extend(cv.pkts)
    pkts.sort(key=lambda p: p[0])
    write_pcap(path, pkts)
    return path


def test_the_common_life_stays_native(tmp_path, monkeypatch) -> None:
    """Many short connections on reused ports (each port reused after its row's close timer, and before it):
    the C loop takes every packet, and the rows are the reference's."""
    monkeypatch.setattr(tracker_mod, "_ctrack", CTRACK)
    h = _Handed(monkeypatch)
    p = _many_short(str(tmp_path / "s.pcap"), 3000, 200)
    assert same(p, (7, 1000, 65536)) == 3000
    assert h.handed == 0


@pytest.mark.parametrize("want", [1, 2, 150, 2999])
def test_wanted_connection(tmp_path, monkeypatch, want: int) -> None:
    """--conn N: Tracker.wanted is the same row either way (the native path leaves the wanted one to Python)."""
    p = _many_short(str(tmp_path / "s.pcap"), 3000, 200)
    got = []
    for ct in (CTRACK, None):
        monkeypatch.setattr(tracker_mod, "_ctrack", ct)
        a = AddrTable()
        res = trace_file(p, lambda c: None, a, want=want)
        assert res.wanted is not None
        got.append(conn_json(res.wanted, a.name, 1))
    assert got[0] == got[1]


def test_open_count_includes_native(tmp_path, monkeypatch) -> None:
    """peak_open counts the natively held connections as the Python path counts its own."""
    p = _many_short(str(tmp_path / "s.pcap"), 400, 400)
    peaks = []
    for ct in (CTRACK, None):
        monkeypatch.setattr(tracker_mod, "_ctrack", ct)
        peaks.append(trace_file(p, lambda c: None, AddrTable(), batch=50).peak_open)
    assert peaks[0] == peaks[1] > 1


def _rows(p: str, batch: int, timers: ZeekTimers, ref: bool) -> list[str]:
    a = AddrTable()
    out: list[str] = []
    trace_file(p, lambda c: out.append(conn_json(c, a.name, 1)), a, batch=batch, timers=timers, reference=ref)
    return out


@pytest.mark.parametrize(
    "timers",
    [
        ZeekTimers(attempt=0, close=0, reset=0, inactivity=0, handshake_inactivity=0),
        ZeekTimers(attempt=0.002, close=0.004, inactivity=0.05, handshake_inactivity=0.003),
        ZeekTimers(attempt=1.0, close=0.0, inactivity=2.5, handshake_inactivity=0.0),
    ],
)
def test_other_timers(tmp_path, monkeypatch, timers: ZeekTimers) -> None:
    """Timers off or short enough to fire inside the common life (between a SYN and its SYN+ACK, between the
    FINs, during the data): every row as the reference writes it, at several batch sizes."""
    rng = random.Random(5)
    pkts = []
    for i in range(300):
        cv = Conv(cport=33000 + i % 40, isn_c=rng.randrange(1 << 32), isn_s=rng.randrange(1 << 32),
                  t0=1_700_000_000.0 + i * 0.003, dt=rng.choice([0.0005, 0.001, 0.003]))  # fmt: skip
        _life(
            cv,
            (99, -1, rng.choice([0.001, 0.01, 3.0]), rng.randrange(12), rng.randrange(4), rng.random() < 0.5),
        )
        pkts.extend(cv.pkts)
    pkts.sort(key=lambda p: p[0])
    p = str(tmp_path / "t.pcap")
    write_pcap(p, pkts)
    for batch in (3, 50, 65536):
        rows = []
        for ref, ct in ((True, None), (False, CTRACK)):
            monkeypatch.setattr(tracker_mod, "_ctrack", ct)
            rows.append(_rows(p, batch, timers, ref))
        assert rows[0] == rows[1], f"batch {batch}"
        assert len(rows[0]) >= 300

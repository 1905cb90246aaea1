"""The native ``conn_json`` (``_rowjson.c``) must write exactly what the Python reference ``_conn_json_py`` writes.

Differential, byte for byte, with several salts and name functions: every connection of every capture the suite
has (tests/trace/data, every catalogue scenario exported as a pcap, the --jobs corner-case mix, a SYN flood,
Hypothesis' random conversations and mutated captures), plus connections whose attributes Hypothesis sets to
anything the types allow (huge ints, nan, odd strings, every story branch) -- where the native code must either
write the reference's line itself or hand the row to the reference, and raise what the reference raises. The
float formatters are also held against Python's own on arbitrary doubles.
"""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_trace_fast import random_conversations_pcap, step
from test_trace_fuzz import SEEDS, mutate, mutation
from test_trace_jobs import _mixed
from tracecaps import Conv, write_pcap

import tcpwise
from tcpwise.term import fmt_seconds
from tcpwise.trace import output
from tcpwise.trace.decode import AddrTable
from tcpwise.trace.output import _conn_json_py, trace_file
from tcpwise.trace.tracker import Conn, Side

try:
    from tcpwise.trace import _rowjson
except ImportError:  # built without a C compiler: the Python reference is all there is
    _rowjson = None  # type: ignore[assignment]

native = pytest.mark.skipif(_rowjson is None, reason="tcpwise.trace._rowjson is not built (no C compiler?)")

DATA = sorted((Path(__file__).parent / "data").glob("*"))
SALTS = (0, 1, 1_796_283_079_394_622, -7, 1 << 70)


def _wide_name(i: int) -> str:
    return f"hôte-{i}" if i % 2 else f"主机-{i}"  # Latin-1 (written natively) and wider (left to Python)


def _both(c: Conn, name: Callable[[int], str], salt: int) -> None:
    """Native and reference: the same line, or the same exception."""
    try:
        want: object = _conn_json_py(c, name, salt)
    except Exception as exc:  # noqa: BLE001 - whatever the reference raises, the native code must raise too
        want = type(exc)
    try:
        got: object = _rowjson.conn_json(c, name, salt)
    except Exception as exc:  # noqa: BLE001
        got = type(exc)
    assert got == want


def same_rows(path: str, batch: int = 65536, **kw: object) -> int:
    """Every connection of ``path``, compared as the sink receives it (with the tracker's names and each salt) and
    with other name functions. Returns the number of connections."""
    a = AddrTable()
    n = 0

    def sink(c: Conn) -> None:
        nonlocal n
        n += 1
        for salt in SALTS:
            assert _rowjson.conn_json(c, a.name, salt) == _conn_json_py(c, a.name, salt), (
                f"#{c.n} salt {salt}"
            )
        for name in (_wide_name, str, lambda i: i):
            _both(c, name, 3)  # type: ignore[arg-type]

    trace_file(path, sink, a, batch=batch, **kw)  # type: ignore[arg-type]
    return n


@native
@pytest.mark.parametrize("path", DATA, ids=lambda p: p.name)
def test_data_captures(path: Path) -> None:
    assert same_rows(str(path)) > 0


@native
def test_every_catalogue_scenario(tmp_path: Path) -> None:
    scenarios = pytest.importorskip("tcpwise.scenarios")
    from tcpwise.render import render

    total = 0
    cat = scenarios.catalogue()
    for sc in cat:
        p = tmp_path / f"{sc.id}.pcap"
        p.write_bytes(render(scenarios.run_scenario(sc.id), "pcap"))  # type: ignore[arg-type]
        total += same_rows(str(p))
    assert len(cat) > 10 and total >= len(cat)


@native
def test_corner_case_mix(tmp_path: Path) -> None:
    """The --jobs tests' mix: RSTs after data, refused, retried SYNs, mid-stream, half-close, zero windows, reuse,
    retransmissions and holes, IPv6; a small batch so Zeek's timers end rows too."""
    p = _mixed(tmp_path / "m.pcap", 600, 90, 5)
    assert same_rows(p, batch=61) > 500


@native
def test_syn_flood_and_rejects(tmp_path: Path) -> None:
    """S0 (with retries), REJ, RSTO/RSTR and reused ports: the rows a flood or a scan is made of."""
    rng = random.Random(9)
    pkts = []
    for i in range(1500):
        cv = Conv(cport=20000 + i % 700, isn_c=rng.randrange(1 << 32), t0=1_700_000_000.0 + i * 0.004)
        k = i % 6
        cv.c("S")
        if k == 1:
            cv.c("S", seq=cv.nxt[0] - 1, gap=1.0)
        elif k == 2:
            cv.s("RA", seq=0)
        elif k == 3:
            cv.s("SA").c("A").c("R")
        elif k == 4:
            cv.s("SA").c("A").c("PA", b"q" * 3000).s("R", gap=12.0)
        pkts.extend(cv.pkts)
    pkts.sort(key=lambda p: p[0])
    p = str(tmp_path / "flood.pcap")
    write_pcap(p, pkts)
    assert same_rows(p, batch=97) >= 1000


@native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=30), pairs=st.integers(1, 3), seed=st.integers(0, 9))
def test_random_conversations(tmp_path: Path, steps, pairs: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    """test_trace_fast's random conversations: any mix of segments, losses, bad checksums and timer gaps."""
    p = random_conversations_pcap(tmp_path, steps, pairs, seed)
    same_rows(p, batch=2)


@native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from([0, 1]), muts=st.lists(mutation, min_size=1, max_size=8))
def test_mutated_captures(tmp_path: Path, seed: int, muts) -> None:  # type: ignore[no-untyped-def]
    """test_trace_fuzz's mutated captures: whatever connections the damage leaves."""
    from tcpwise.errors import UsageError

    p = tmp_path / "m.cap"
    p.write_bytes(mutate(SEEDS[seed], muts))
    try:
        same_rows(str(p), batch=16)
    except UsageError:
        pass


# -- connections with arbitrary attributes: every branch, every type the slots may hold ------------------------------
_huge = st.integers(-(1 << 70), 1 << 70)  # beyond 64 bits: printed natively, computed with by Python
_ints = st.one_of(
    st.integers(0, 3), st.integers(0, 1 << 40), st.integers(0, 1 << 20), _huge.filter(lambda i: i % 4 == 0)
)
_small = st.one_of(st.just(0), st.integers(0, 12), _ints)
_floats = st.one_of(
    st.floats(1.7e9, 1.8e9),
    st.floats(-1e3, 1e3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(-0.0),
)
_time = st.one_of(st.none(), _floats)
_state = st.sampled_from([None, "", "CLOSED", "SYN_SENT", "ESTABLISHED", "TIME_WAIT", "FIN_WAIT_2", "état"])
_side_ix = st.one_of(st.none(), st.sampled_from([0, 1]))


@st.composite
def sides(draw: st.DrawFn) -> Side:
    s = Side()
    s.z = draw(st.integers(0, 6))
    s.pkts, s.ipbytes, s.missed = draw(_ints), draw(_ints), draw(_small)
    s.acc = draw(st.one_of(st.integers(0, 3), st.integers(0, 5_000_000), _ints))
    s.fin_cnt = draw(st.integers(0, 2))
    for a in ("rxmt", "ctl_rxmt", "ooo", "zw", "keepalive", "winprobe", "chk"):
        setattr(s, a, draw(st.one_of(st.just(0), _small)))
    s.win = draw(st.one_of(st.none(), st.integers(0, 65535), _ints))
    s.wsyn = draw(st.one_of(st.none(), st.integers(0, 65535)))
    s.wmax = draw(st.one_of(st.integers(0, 65535), _ints))
    s.wshift = draw(st.one_of(st.none(), st.integers(0, 14), st.integers(0, 80)))
    s.fin_end = draw(st.one_of(st.none(), st.integers(0, 1 << 32)))
    s.state = draw(_state)
    s.rst_t = draw(_time)
    s.rst_state = draw(_state)
    s.t_last = draw(_time)
    return s


@st.composite
def conns(draw: st.DrawFn) -> Conn:
    ep = st.integers(0, 1 << 40)  # (address id << 16) | port
    key = st.one_of(st.tuples(ep, ep).map(lambda t: t[0] << 64 | t[1]), st.integers(0, (1 << 128) - 1))
    c = Conn(draw(_ints), draw(key), draw(st.integers(0, 1)), draw(_floats))
    c.o, c.r = draw(sides()), draw(sides())
    c.sides = (c.o, c.r)
    c.last = draw(_floats)
    c.hist = draw(st.lists(st.sampled_from("ShADadFfRrTtWwGgCcIiQq^"), max_size=10))
    tstate = st.sampled_from(["CLOSED", "LISTEN", "SYN_RCVD", "TIME_WAIT", "ESTABLISHED", "état"])
    c.transitions = draw(st.lists(st.tuples(_floats, st.sampled_from([0, 1]), tstate, tstate), max_size=6))
    c.partial = draw(st.booleans())
    c.syn_t, c.syn_last_t, c.synack_t, c.ack_t = draw(_time), draw(_time), draw(_time), draw(_time)
    c.rst_by, c.first_fin = draw(_side_ix), draw(_side_ix)
    c.first_index, c.last_index = draw(_ints), draw(_ints)
    c.rst_silence = draw(st.one_of(_time, st.floats(0, 1e4)))
    c.rst_reply = draw(st.booleans())
    c.peer_bytes_at_fin = draw(_small)
    c.idle = draw(st.one_of(st.just(0.0), st.just(300.0), st.just(60), _floats))
    c.end = draw(st.sampled_from(["end of capture", "inactivity", "reuse", "attempt", "fin"]))
    c.prev_n = draw(st.one_of(st.none(), _ints))
    c.prev_end = draw(st.sampled_from([None, "inactivity", "reuse"]))
    return c


@native
@settings(max_examples=120, deadline=None)
@given(c=conns(), salt=st.integers(-(1 << 70), 1 << 70))
def test_any_connection(c: Conn, salt: int) -> None:
    for name in (lambda i: f"10.{i}", _wide_name):
        _both(c, name, salt)


@native
@settings(max_examples=120, deadline=None)
@given(c=conns())
def test_any_connection_realistic_times(c: Conn) -> None:
    """The same with a handshake and close in the usual range (the story's fmt_seconds branches: µs, ms, s, >100 s)."""
    t0 = 1_796_283_079.394622
    rng = random.Random(c.n)
    c.ts = t0
    c.syn_t = t0
    c.syn_last_t = t0 + rng.choice((0.0, 0.0, 1.0, 3.0))
    c.synack_t = c.syn_last_t + rng.choice((4e-6, 0.0123, 0.8, 1.5, 130.25))
    c.ack_t = rng.choice((None, c.synack_t + 5e-6))
    c.last = t0 + rng.uniform(0, 400)
    c.transitions = [(t0 + rng.uniform(0, 5), rng.randrange(2), "CLOSED", "SYN_SENT") for _ in range(3)]
    for s in c.sides:
        s.t_last = rng.choice((None, t0 + rng.uniform(0, 30)))
    _both(c, str, 1)  # type: ignore[arg-type]


# -- the formatters on their own -------------------------------------------------------------------------------------
_any_float = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(1e9, 2e9),
    st.floats(-1e4, 1e4),
    st.integers(-(10**9), 10**9).map(lambda k: (k + 0.5) / 10 ** (k % 8)),  # halfway cases
    st.integers(0, 1 << 40).map(lambda k: k / (1 << (k % 60))),  # dyadic: exact ties exist
)


@native
@settings(max_examples=3000, deadline=None)
@given(x=_any_float)
def test_float_formatters(x: float) -> None:
    for p in (0, 1, 2, 3, 6, 9, 15):
        assert _rowjson._format(x, p) == format(x, f".{p}f"), p
    assert _rowjson._format(x, -1) == repr(x)
    try:
        got = _rowjson._format(x, -2)
    except ValueError:  # inf and nan: the row goes to Python
        return
    assert got == fmt_seconds(x)


# -- plumbing --------------------------------------------------------------------------------------------------------
def _picked(env_value: str | None) -> str:
    env = dict(os.environ, PYTHONPATH=str(Path(tcpwise.__file__).parents[1]))
    env.pop("TCPWISE_NATIVE", None)
    if env_value is not None:
        env["TCPWISE_NATIVE"] = env_value
    code = "from tcpwise.trace import output as o; print(o.conn_json is o._conn_json_py)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout


def test_tcpwise_native_0_picks_python() -> None:
    assert _picked("0") == "True\n"


@native
def test_native_is_the_default() -> None:
    assert output.conn_json is _rowjson.conn_json
    assert _picked(None) == "False\n"
    assert _picked("1") == "False\n"


@native
def test_other_objects_go_to_python() -> None:
    """A Conn subclass (not the class whose slots were registered) is written by the reference."""

    class Sub(Conn):
        __slots__ = ()

    c = Sub(5, (7 << 80) | (9 << 16) | 80, 0, 1_700_000_000.25)
    assert _rowjson.conn_json(c, str, 1) == _conn_json_py(c, str, 1)
    assert _rowjson.conn_json(c, str) == _conn_json_py(c, str)  # type: ignore[arg-type]
    assert _rowjson.conn_json(c, name=str, salt=2) == _conn_json_py(c, str, 2)  # type: ignore[arg-type]


@native
def test_no_leak() -> None:
    """Reference counts of a row's objects and traced memory stay flat over many conversions."""
    a = AddrTable()
    rows: list[Conn] = []
    trace_file(str(DATA[0]), rows.append, a)
    c = max(rows, key=lambda r: len(r.transitions))
    host = a.name(c.orig_ep >> 16)
    # Objects of this row alone: interned strings and small ints are shared with whatever else the process holds.
    objs = [c, c.o, c.r, c.sides, c.transitions, c.hist, c.ts, c.last, c.syn_t, host, *c.transitions]
    gc.collect()
    gc.disable()  # no collection of other tests' garbage in between
    try:
        before = [sys.getrefcount(o) for o in objs]
        for _ in range(2000):
            _rowjson.conn_json(c, a.name, 1)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(50_000):
            _rowjson.conn_json(c, a.name, 1)
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        after = [sys.getrefcount(o) for o in objs]
    finally:
        gc.enable()
    assert after == before
    assert grown < 10_000, grown

"""Fuzz the reader and tracker with mutated real captures: the only allowed failure is a one-line UsageError."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tracecaps import Conv, eth, pcapng

from tcpwise.errors import UsageError
from tcpwise.trace.decode import AddrTable
from tcpwise.trace.output import conn_json, trace_file

REAL = (Path(__file__).parent / "data" / "lo-small.pcap").read_bytes()


def _pcapng_seed() -> bytes:
    import tempfile

    cv = Conv().handshake().c("PA", b"x" * 50).s("A").c("FA").s("FA").c("A")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.pcapng"
        pcapng(
            str(p),
            [(1, 9), (101, None)],
            [(i % 2, t, eth(b) if i % 2 == 0 else b) for i, (t, b) in enumerate(cv.pkts)],
        )
        return p.read_bytes()


SEEDS = [REAL, _pcapng_seed()]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("zero4"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("ff4"), st.integers(0, 1 << 20), st.just(0)),
)


def mutate(data: bytes, muts: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, pos, val in muts:
        if not b:
            break
        i = pos % len(b)
        if kind == "flip":
            b[i] ^= val
        elif kind == "cut":
            del b[i:]
        elif kind == "insert":
            b[i:i] = bytes([val])
        elif kind == "zero4":
            b[i : i + 4] = b"\0\0\0\0"[: len(b[i : i + 4])]
        else:
            b[i : i + 4] = b"\xff\xff\xff\xff"[: len(b[i : i + 4])]
    return bytes(b)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from([0, 1]), muts=st.lists(mutation, min_size=1, max_size=8))
def test_mutated_captures_never_raise_anything_but_usage_error(tmp_path, seed: int, muts) -> None:
    p = tmp_path / "m.cap"
    p.write_bytes(mutate(SEEDS[seed], muts))
    a = AddrTable()
    try:
        trace_file(str(p), lambda c: conn_json(c, a.name), a, batch=16)
    except UsageError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_after_a_pcap_header(tmp_path, data: bytes) -> None:
    p = tmp_path / "r.pcap"
    for lt in (1, 101, 113, 276, 0):
        hdr = bytes.fromhex("d4c3b2a1020004000000000000000000ffff0000") + lt.to_bytes(4, "little")
        p.write_bytes(hdr + data)
        try:
            trace_file(str(p), lambda c: None)
        except UsageError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.sampled_from([0, 1]),
    muts=st.lists(mutation, min_size=1, max_size=6),
    fmt=st.sampled_from(["zeek", "json", "table"]),
)
def test_cli_exit_code_is_0_or_2_never_a_traceback(tmp_path, capsys, seed: int, muts, fmt: str) -> None:
    from tcpwise.cli import main

    p = tmp_path / "m.cap"
    p.write_bytes(mutate(SEEDS[seed], muts))
    rc = main(["trace", str(p), "--format", fmt])
    err = capsys.readouterr().err
    assert rc in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err

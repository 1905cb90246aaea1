"""The native reader/decoder kernels (``_cdecode.c``) against the Python they replace, byte for byte."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_trace_fuzz import SEEDS, mutate, mutation

from tcpwise.errors import UsageError
from tcpwise.trace import decode, reader
from tcpwise.trace.decode import AddrTable
from tcpwise.trace.output import conn_json, trace_file
from tcpwise.trace.reader import MAX_CAPLEN, Capture

native = pytest.mark.skipif(decode.cdecode is None, reason="the _cdecode extension is not built")


def _python_sums(
    monkeypatch: pytest.MonkeyPatch, buf: np.ndarray, s: np.ndarray, ln: np.ndarray
) -> np.ndarray:
    with monkeypatch.context() as m:
        m.setattr(decode, "cdecode", None)
        return decode._segment_sums(buf, s, ln)


@native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=1, max_size=3000),
    rows=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3000)), max_size=40),
)
def test_segment_sums_equal_python(monkeypatch: pytest.MonkeyPatch, data: bytes, rows: list[tuple[int, int]]) -> None:  # fmt: skip
    buf = np.frombuffer(data, dtype=np.uint8)
    n = len(data)
    segs = [(a % n, min(b, n - a % n)) for a, b in rows]  # the decoder asks only for captured segments
    s = np.array([a for a, _ in segs], dtype=np.int64)
    ln = np.array([b for _, b in segs], dtype=np.int64)
    assert decode._segment_sums(buf, s, ln).tolist() == _python_sums(monkeypatch, buf, s, ln).tolist()


@native
@settings(max_examples=300, deadline=None)
@given(
    seed=st.sampled_from([0]),
    muts=st.lists(mutation, max_size=6),
    off=st.integers(0, 400),
    batch=st.integers(0, 70),
    big=st.booleans(),
)
def test_pcap_walk_equal_python(seed: int, muts: list[tuple[str, int, int]], off: int, batch: int, big: bool) -> None:  # fmt: skip
    data = mutate(SEEDS[seed], muts)
    endian = ">" if big else "<"
    caplen_at = struct.Struct(endian + "I").unpack_from
    ob, hb, nxt, bad = reader.cdecode.walk_pcap(data, off, len(data), batch, big, MAX_CAPLEN)
    offs, pnxt, pbad = Capture._walk_pcap(data, off, len(data), batch, caplen_at)
    assert (np.frombuffer(ob, dtype=np.int64).tolist(), nxt, bad) == (offs, pnxt, pbad)
    assert hb == b"".join(data[o : o + 16] for o in offs)


def _trace(path: str) -> tuple[list[str], str]:
    a = AddrTable()
    rows: list[str] = []
    try:
        r = trace_file(path, lambda c: rows.append(conn_json(c, a.name, 7)), addrs=a)
    except UsageError as exc:
        return rows, f"raised {exc}"
    return (
        rows,
        f"{r.error} {r.stats.warnings()} {r.stats.bad_checksums} {r.stats.offloaded} {r.packets_read}",
    )


@native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, len(SEEDS) - 1), muts=st.lists(mutation, max_size=5))
def test_whole_trace_equal_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, muts: list[tuple[str, int, int]]) -> None:  # fmt: skip
    p = tmp_path / "m.cap"
    p.write_bytes(mutate(SEEDS[seed], muts))
    fast = _trace(str(p))
    with monkeypatch.context() as m:
        m.setattr(decode, "cdecode", None)
        m.setattr(reader, "cdecode", None)
        slow = _trace(str(p))
    assert fast == slow


def test_switch_turns_native_code_off() -> None:
    code = "from tcpwise.trace import native, decode, reader; print(native.cdecode, decode.cdecode, reader.cdecode)"
    env = {"TCPWISE_NATIVE": "0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None", "None"]

"""procfs.run_peak: the peak-RSS measurement the trace memory tests and bench_trace rely on must see memory a child
really used (its own and its children's) and must not hang on a child that never ends."""

from __future__ import annotations

import time

import pytest

from tcpwise.linux.procfs import run_peak

HOG = """
import subprocess, sys, time

def own(args):
    blob = b"x" * (int(args[0]) << 20)  # written, so every page is resident
    return len(blob) & 0

def child(args):
    # the parent stays small; its child holds the memory for a while (sampled, not reported at exit)
    code = "import time; blob = b'x' * (%d << 20); time.sleep(0.5)" % int(args[0])
    return subprocess.call([sys.executable, "-c", code])

def forever(args):
    time.sleep(3600)
"""


@pytest.fixture
def hog(tmp_path, monkeypatch):
    (tmp_path / "peakhog.py").write_text(HOG)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return "peakhog"


def test_peak_sees_the_child_and_its_children(hog) -> None:
    small = run_peak(f"{hog}:own", ["1"])
    big = run_peak(f"{hog}:own", ["300"])
    grand = run_peak(f"{hog}:child", ["300"])
    assert small.returncode == big.returncode == grand.returncode == 0, (small, big, grand)
    assert small.peak_kb < 100 << 10, small
    assert big.peak_kb > 300 << 10, big  # a measurement that always said "small" would pass every budget
    assert grand.peak_kb > 300 << 10, grand
    assert "TCPWISE-VMHWM" not in big.stderr


def test_peak_kills_a_child_past_its_timeout(hog) -> None:
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        run_peak(f"{hog}:forever", [], timeout=1.0)
    assert time.monotonic() - t0 < 30

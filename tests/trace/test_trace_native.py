"""The native accelerators are built wherever they can be: setup.py marks them optional, so a C source that no
longer compiles would otherwise pass silently as the (correct but slower) pure-Python path."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import pytest

from tcpwise.trace import native

# The functions each extension must provide (the Python callers use these names).
EXPECTED = {"_cdecode": ("walk_pcap", "segment_sums"), "_ctrack": ("Fast",), "_rowjson": ("conn_json",)}


def test_every_module_setup_py_builds_is_checked() -> None:
    assert set(EXPECTED) == set(native.MODULES)


@pytest.mark.skipif(not native.enabled(), reason="TCPWISE_NATIVE=0")
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the pure-Python path is expected")
@pytest.mark.skipif(
    not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists(), reason="no Python headers"
)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_native_module_built_where_a_compiler_exists(name: str) -> None:
    mod = native.load(name)
    assert mod is not None, (
        f"tcpwise.trace.{name} did not build (reinstall: pip install -e . and read its output)"
    )
    for fn in EXPECTED[name]:
        assert callable(getattr(mod, fn, None)), f"{name}.{fn} is missing"

"""Suite-wide options and markers.

* ``--update-golden``: rewrite tests/golden/*.json from the current model instead of comparing (review the diff!).
* ``nobody``: a fixture for tests that drop to the unprivileged user (65534) with ``setpriv``.
* ``kernel`` tests need root, ``ip netns`` and ``nft``; ``browser`` tests need Debian's chromium. Where those are
  missing the tests are *skipped with the reason* locally — but under CI (``CI=true``) a missing capability is a
  failure, so a broken CI machine cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite golden traces instead of comparing"
    )


def _kernel_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} tool"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    in_ci = os.environ.get("CI") == "true"
    kernel_why = _kernel_missing()
    browser_why = None if shutil.which("chromium") else "needs chromium"
    for item in items:
        for marker, why in (("kernel", kernel_why), ("browser", browser_why)):
            if why and item.get_closest_marker(marker):
                if not in_ci:  # under CI the test runs and fails loudly instead
                    item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def nobody() -> Iterator[tuple[list[str], str]]:
    """``(argv prefix, PYTHONPATH)`` to run ``python -m tcpwise.cli ...`` as user 65534.

    What an unprivileged user needs to run tcpwise: the package in a directory anyone can read, and an interpreter
    anyone can execute. A checkout in a private directory (mode 700) and a virtualenv under /root are neither, so
    the package is copied to a world-readable temporary directory (outside pytest's tmp tree, which may sit under
    /root) and the system's Python 3.11+ is used: the paths these tests take (doctor --json, watch's fallback)
    need only the standard library."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop to nobody")
    py = shutil.which("python3", path="/usr/bin:/bin")
    if py is None:
        pytest.skip("no system python3 that an unprivileged user can execute")
    ver = subprocess.run(
        [py, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True, text=True
    )
    if ver.stdout.strip() != "True":
        pytest.skip("the system python3 is older than 3.11")
    import tcpwise

    tmp = tempfile.mkdtemp(prefix="tcpwise-nobody-")
    try:
        stage = os.path.join(tmp, "stage")
        shutil.copytree(os.path.dirname(tcpwise.__file__), os.path.join(stage, "tcpwise"))
        for d in (tmp, stage):
            os.chmod(d, 0o755)
        for root, dirs, files in os.walk(stage):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        yield ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", py], stage
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""Suite-wide options and markers.

* ``--update-golden``: rewrite tests/golden/*.json from the current model instead of comparing (review the diff!).
* ``kernel`` tests need root, ``ip netns`` and ``nft``; ``browser`` tests need Debian's chromium. Where those are
  missing the tests are *skipped with the reason* locally — but under CI (``CI=true``) a missing capability is a
  failure, so a broken CI machine cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil

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

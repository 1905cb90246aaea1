"""tcpwise.scenarios: the catalogue — every claim an executable, checked story (see docs/architecture.md).

Re-exports are lazy (PEP 562) so that the CLI can import ``tcpwise.scenarios.cli`` without loading the catalogue.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Param",
    "Scenario",
    "catalogue",
    "claim",
    "get_scenario",
    "parse_overrides",
    "register",
    "run_scenario",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'tcpwise.scenarios' has no attribute {name!r}")
    value = getattr(importlib.import_module("tcpwise.scenarios.base"), name)
    globals()[name] = value
    return value

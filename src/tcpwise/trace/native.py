"""The optional native accelerators of ``tcpwise trace``, or None where they are missing or turned off.

``setup.py`` builds them when a C compiler is present (they are optional: the install succeeds without one).
Each mirrors a pure-Python function that stays the reference — the tests hold the two equal on every capture
they have. ``TCPWISE_NATIVE=0`` in the environment makes every command use the Python versions (to compare, or
to rule the native code out when something looks wrong).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["MODULES", "cdecode", "enabled", "load"]

MODULES = ("_cdecode", "_ctrack", "_rowjson")  # what setup.py builds


def enabled() -> bool:
    return os.environ.get("TCPWISE_NATIVE", "1") != "0"


def load(name: str) -> ModuleType | None:
    """The extension module ``tcpwise.trace.<name>``, or None (not built, or TCPWISE_NATIVE=0)."""
    if not enabled():
        return None
    try:
        return importlib.import_module(f"tcpwise.trace.{name}")
    except ImportError:
        return None


cdecode = load("_cdecode")

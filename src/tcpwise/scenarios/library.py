"""The rest of the catalogue (issue 3): importing this module registers every scenario beyond the foundation.

Each group lives in its own module; a group that is not built yet is simply absent from the catalogue.
"""

from __future__ import annotations

import importlib
import importlib.util

_GROUPS = ("history", "liveness", "limits", "timewait", "keepalive_race", "segments")

for _g in _GROUPS:
    _name = f"tcpwise.scenarios.{_g}"
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name)

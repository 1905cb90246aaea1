from collections.abc import Callable
from typing import Any

class Fast:
    """Connections held natively for a Tracker (see _ctrack.c); methods take the tracker as an argument."""

    def __init__(self, heappush: Callable[..., None], conn_cls: type) -> None: ...
    def __len__(self) -> int: ...
    def feed(
        self,
        tracker: Any,
        dec: Any,
        bconn: list[Any],
        compact_after: int,
        created: Callable[[int], None] | None,
    ) -> None: ...
    def take(self, tracker: Any, key: int, n: int) -> Any: ...
    def take_due(self, tracker: Any, now: float) -> int: ...

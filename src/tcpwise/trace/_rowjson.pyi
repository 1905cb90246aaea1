# The native row writer (_rowjson.c); output.py picks it as conn_json when it imports.
from collections.abc import Callable

from tcpwise.trace.tracker import Conn, Side

def conn_json(c: Conn, name: Callable[[int], str], salt: int = 0) -> str: ...
def configure(
    conn: type[Conn], side: type[Side], fallback: Callable[[Conn, Callable[[int], str], int], str]
) -> None: ...
def _format(x: float, p: int) -> str: ...  # tests only: p >= 0 f"{x:.pf}", -1 repr(x), -2 fmt_seconds(x)

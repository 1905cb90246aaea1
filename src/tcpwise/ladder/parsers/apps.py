"""App servers and clients configured in code or on a command line: gunicorn, uvicorn, Hypercorn, Node, Go.

These are not configuration languages with a grammar of their own, so the readers look for the documented
setting names in the places people write them, line by line, and keep the line:

* gunicorn — ``gunicorn.conf.py`` (``keepalive = 75``, ``worker_class = "sync"``) or a command line
  (``--keep-alive 75``, ``-k uvicorn.workers.UvicornWorker``). The default sync worker keeps no connection
  alive (gunicorn docs, keepalive: "sync worker does not support persistent connections");
* uvicorn — a command line (``--timeout-keep-alive 75``), ``uvicorn.run(..., timeout_keep_alive=75)`` /
  ``Config(...)``, or ``UVICORN_TIMEOUT_KEEP_ALIVE=75``;
* Hypercorn — its TOML config (``keep_alive_timeout = 75``), ``config.keep_alive_timeout = 75`` or
  ``--keep-alive 75``;
* Node — ``server.keepAliveTimeout = 65000`` / ``keepAliveTimeout: 65000`` (milliseconds);
* Go — ``IdleTimeout:`` (http.Server; when absent ``ReadTimeout``, else no timeout), ``IdleConnTimeout:``
  (http.Transport), ``KeepAlive:`` (net.Dialer / net.ListenConfig), as ``90 * time.Second``,
  ``time.Minute``, ``2*time.Minute`` or ``time.Duration(90) * time.Second``.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable

from tcpwise.errors import UsageError
from tcpwise.ladder.model import Hop, Source, Value
from tcpwise.ladder.parsers import ParseError, read_text
from tcpwise.ladder.presets import get_preset
from tcpwise.ladder.units import parse_duration

__all__ = ["read_gunicorn", "read_uvicorn", "read_hypercorn", "read_node", "read_go", "APP_READERS"]

# A value that starts like a number, up to the end of the expression (a variable or a call is not read, as
# before). Each place has its own reader below that turns it into a number the way that program would - or refuses
# it: reading only the leading digits made ``65_000`` 65 and ``1e3`` 1.
_EXPR = r"([-+]?\.?\d[^,;)}\n]*)"
_WORD = r"([-+]?\.?\d[^\s'\";,)}]*)"  # one shell word: a command line does no arithmetic

Number = Callable[[str], float]


def _cli_int(word: str) -> float:
    """A whole number, as click's and argparse's ``int`` options take it; ``1e3`` and ``7.5`` are refused."""
    try:
        return int(word)
    except ValueError:
        raise ValueError(f"{word!r} is not a whole number, which this option requires") from None


def _product(expr: str, literal: Number, language: str) -> float:
    """``65000``, ``65 * 1000``: a product of literals, the one expression people write for a timeout."""
    value = 1.0
    for factor in expr.split("*"):
        try:
            value *= literal(factor.strip())
        except ValueError:
            raise ValueError(f"cannot read {expr.strip()!r} as a {language} number") from None
    return value


def _py_literal(tok: str) -> float:
    try:
        got = ast.literal_eval(tok) if re.fullmatch(r"[-+]?[\w.]+(?:[eE][-+]?\w+)?", tok) else None
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        got = None
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise ValueError(tok)
    return got


def _py_whole(tok: str) -> float:
    got = _py_literal(tok)
    if not isinstance(got, int):
        raise ValueError(tok)
    return got


def _py_number(expr: str) -> float:
    """Python's numeric literals (``1_000``, ``1e3``, ``0x10``), as in ``uvicorn.run(timeout_keep_alive=...)``."""
    return _product(expr, _py_literal, "Python")


def _py_int(expr: str) -> float:
    """gunicorn's ``keepalive`` must be an int: a float (``1e3``) stops gunicorn at start-up."""
    return _product(expr, _py_whole, "whole")


_JS_DIGITS = r"\d(?:_?\d)*"
_JS_LITERAL = re.compile(
    rf"0[xX][\da-fA-F](?:_?[\da-fA-F])*|0[oO][0-7](?:_?[0-7])*|0[bB][01](?:_?[01])*"
    rf"|(?:(?:0|[1-9](?:_?\d)*)(?:\.(?:{_JS_DIGITS})?)?|\.{_JS_DIGITS})(?:[eE][-+]?{_JS_DIGITS})?"
)


def _js_literal(tok: str) -> float:
    """A JavaScript numeric literal: separators, exponent, hex/octal/binary; ``010`` (legacy octal) is refused."""
    if _JS_LITERAL.fullmatch(tok) is None:
        raise ValueError(tok)
    digits = tok.replace("_", "")
    return int(digits, 0) if digits[:2].lower() in ("0x", "0o", "0b") else float(digits)


def _js_number(expr: str) -> float:
    return _product(expr, _js_literal, "JavaScript")


# Node hands keepAliveTimeout to a socket timer, which holds a signed 32-bit count of milliseconds: a larger value
# is not honoured (Node warns with TimeoutOverflowWarning and shortens it), Infinity throws.
NODE_TIMER_MAX_MS = 2**31 - 1


def _last(path: str, text: str, patterns: list[str]) -> tuple[int, str, str] | None:
    """(line, the matched value, the whole line) of the last line matching any pattern; comments skipped."""
    got = _last_of(path, text, patterns)
    return None if got is None else got[:3]


def _last_of(path: str, text: str, patterns: list[str]) -> tuple[int, str, str, int] | None:
    """:func:`_last` and the index of the pattern that matched."""
    found = None
    for no, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("//") else ""
        if "//" in code and not re.search(r"https?://", code):
            code = code.split("//", 1)[0]
        for i, p in enumerate(patterns):
            m = re.search(p, code)
            if m:
                found = (no, m.group(1), line.strip(), i)
    return found


def _setting(
    path: str, text: str, places: list[tuple[str, Number]], unit: str = "s"
) -> tuple[int, float, str] | None:
    """(line, seconds, the line) of the last place that sets the value, each read by its own number reader."""
    got = _last_of(path, text, [p for p, _ in places])
    if got is None:
        return None
    no, raw, line, i = got
    try:
        n = places[i][1](raw)
    except ValueError as exc:
        raise ParseError(path, no, str(exc)) from None
    if not math.isfinite(n) or n < 0:
        raise ParseError(path, no, f"{raw.strip()!r} is not a timeout (a finite number >= 0)")
    return no, _secs(path, no, n, unit), line


def _secs(path: str, no: int, text: str | float, unit: str = "s") -> float:
    try:
        return parse_duration(text, unit)
    except UsageError as exc:
        raise ParseError(path, no, str(exc)) from None


def _default(kind: str, field: str) -> Value:
    d = get_preset(kind).defaults[field]
    return Value(d.seconds, Source("default", text=d.doc))


def read_gunicorn(path: str, name: str = "gunicorn") -> Hop:
    text = read_text(path)
    got = _setting(
        path, text, [(rf"^\s*keepalive\s*=\s*{_EXPR}", _py_int), (rf"--keep-alive[= ]\s*{_WORD}", _cli_int)]
    )
    worker = _last(
        path, text, [r"""^\s*worker_class\s*=\s*["']([\w.]+)""", r"(?:-k|--worker-class)[= ]\s*([\w.]+)"]
    )
    notes: list[str] = []
    if worker is not None and worker[1] == "sync" or worker is None:
        where = f"{path}:{worker[0]}" if worker else "default worker_class"
        notes.append(f"sync worker ({where}): no keep-alive, every response closes the connection")
        src = (
            Source("file", path, worker[0], worker[2])
            if worker
            else Source("default", text="worker_class = sync")
        )
        return Hop(name, "gunicorn", "server", {"idle": Value(0.0, src)}, notes=tuple(notes))
    if got is None:
        return Hop(name, "gunicorn", "server", {"idle": _default("gunicorn", "idle")})
    no, secs, line = got
    return Hop(name, "gunicorn", "server", {"idle": Value(secs, Source("file", path, no, line))})


def read_uvicorn(path: str, name: str = "uvicorn") -> Hop:
    text = read_text(path)
    # The command line and the environment go through click's INT (1e3 is refused); Python code is Python.
    got = _setting(
        path,
        text,
        [(rf"--timeout-keep-alive[= ]\s*{_WORD}", _cli_int), (rf"timeout_keep_alive\s*=\s*{_EXPR}", _py_number),
         (rf"UVICORN_TIMEOUT_KEEP_ALIVE\s*=\s*[\"']?{_WORD}", _cli_int)],
    )  # fmt: skip
    if got is None:
        return Hop(name, "uvicorn", "server", {"idle": _default("uvicorn", "idle")})
    no, secs, line = got
    return Hop(name, "uvicorn", "server", {"idle": Value(secs, Source("file", path, no, line))})


def read_hypercorn(path: str, name: str = "hypercorn") -> Hop:
    text = read_text(path)
    # TOML's and Python's number literals agree on what matters here (1_000, 1e3); the flag is an int.
    got = _setting(
        path,
        text,
        [(rf"keep_alive_timeout\s*=\s*{_EXPR}", _py_number), (rf"--keep-alive[= ]\s*{_WORD}", _cli_int)],
    )
    if got is None:
        return Hop(name, "hypercorn", "server", {"idle": _default("hypercorn", "idle")})
    no, secs, line = got
    return Hop(name, "hypercorn", "server", {"idle": Value(secs, Source("file", path, no, line))})


def read_node(path: str, name: str = "node") -> Hop:
    text = read_text(path)
    places: list[tuple[str, Number]] = [
        (rf"\.keepAliveTimeout\s*=\s*{_EXPR}", _js_number),
        (rf"keepAliveTimeout\s*:\s*{_EXPR}", _js_number),
    ]
    got = _setting(path, text, places, "ms")
    if got is None:
        return Hop(name, "node", "server", {"idle": _default("node", "idle")})
    no, secs, line = got
    if secs * 1000 > NODE_TIMER_MAX_MS:
        raise ParseError(
            path, no, f"keepAliveTimeout over {NODE_TIMER_MAX_MS} ms: Node's timers cannot hold it"
        )
    return Hop(
        name, "node", "server", {"idle": Value(None if secs == 0 else secs, Source("file", path, no, line))}
    )


_GO_UNITS = {
    "Nanosecond": 1e-9,
    "Microsecond": 1e-6,
    "Millisecond": 1e-3,
    "Second": 1.0,
    "Minute": 60.0,
    "Hour": 3600.0,
}
_GO_EXPR = re.compile(
    r"^\s*(?:time\.Duration\(\s*(\d+(?:\.\d+)?)\s*\)|(\d+(?:\.\d+)?))?\s*\*?\s*time\.(\w+)\s*(?:\*\s*(\d+(?:\.\d+)?))?\s*$"
)


def go_duration(expr: str) -> float:
    """``90 * time.Second``, ``time.Minute``, ``2*time.Minute``, ``time.Second * 30``,
    ``time.Duration(90) * time.Second``, ``0`` -> seconds."""
    e = expr.strip().rstrip(",")
    if e == "0":
        return 0.0
    m = _GO_EXPR.match(e)
    if m is None or m.group(3) not in _GO_UNITS:
        raise UsageError(f"cannot read Go duration {expr!r} (e.g. 90 * time.Second)")
    factor = float(m.group(1) or m.group(2) or m.group(4) or 1)
    return factor * _GO_UNITS[m.group(3)]


def read_go(path: str, name: str = "go") -> Hop:
    """A Go service: server side (IdleTimeout / ReadTimeout) and client side (IdleConnTimeout), both if present."""
    text = read_text(path)
    vals: dict[str, Value] = {}

    def field(key: str) -> tuple[int, float, str] | None:
        got = _last(path, text, [rf"\b{key}\s*:\s*([^,\n}}]+)"])
        if got is None:
            return None
        no, expr, line = got
        try:
            return no, go_duration(expr), line
        except UsageError as exc:
            raise ParseError(path, no, str(exc)) from None

    idle, read, conn, ka = (
        field("IdleTimeout"),
        field("ReadTimeout"),
        field("IdleConnTimeout"),
        field("KeepAlive"),
    )
    server = "http.Server" in text or idle is not None
    client = "http.Transport" in text or conn is not None
    if server:
        pick = idle if idle is not None and idle[1] != 0 else read
        if pick is not None and pick[1] != 0:
            vals["idle"] = Value(pick[1], Source("file", path, pick[0], pick[2]))
        else:
            vals["idle"] = _default("go-server", "idle")
    if client:
        if conn is not None:
            vals["pool_idle"] = Value(
                None if conn[1] == 0 else conn[1], Source("file", path, conn[0], conn[2])
            )
        else:
            vals["pool_idle"] = Value(
                None, Source("default", text="http.Transport{} without IdleConnTimeout: no limit")
            )
    if ka is not None:
        vals["keepalive"] = Value(None if ka[1] < 0 else (ka[1] or 15.0), Source("file", path, ka[0], ka[2]))
    if not vals:
        raise ParseError(path, None, "no http.Server, http.Transport or their timeouts: is this Go code?")
    role = "proxy" if server and client else ("server" if server else "client")
    return Hop(
        name, "go-server" if role == "server" else "go-client" if role == "client" else "go", role, vals
    )


APP_READERS = {
    "gunicorn": read_gunicorn,
    "uvicorn": read_uvicorn,
    "hypercorn": read_hypercorn,
    "node": read_node,
    "go": read_go,
}

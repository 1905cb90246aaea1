"""nginx.conf: directives, blocks and ``include`` (with globs), as nginx's own parser reads them.

nginx's grammar (ngx_conf_file.c): a directive is words separated by blanks and ended by ``;``; a block directive
ends with ``{ ... }``; ``#`` starts a comment to the end of the line outside quotes; words may be quoted with
``'`` or ``"`` (with ``\\`` escapes). ``include`` is replaced by the directives of every file its glob matches,
relative to the directory of the main file (nginx: the prefix's conf directory). Time values take nginx's units
(``ms s m h d w M y``, combinable: ``1h 30m``); a bare number means seconds.

What the ladder takes from it:

* ``keepalive_timeout`` in http/server (the client-facing idle; the *smallest* of the server blocks, the worst case
  for the hop in front) — default 75s; ``0`` disables keep-alive;
* in ``upstream`` blocks with ``keepalive N;``: ``keepalive_timeout`` (default 60s) — the pool side; an upstream
  block without ``keepalive`` means no reuse (pool idle 0). With several, the *largest* (worst case);
* ``keepalive_time`` (hard limit, 1h), ``proxy_read_timeout`` (60s), ``listen ... so_keepalive=...``.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field

from tcpwise.errors import UsageError
from tcpwise.ladder.model import Hop, Source, Value
from tcpwise.ladder.parsers import ParseError, read_text
from tcpwise.ladder.presets import get_preset

__all__ = ["Directive", "parse_nginx", "read_nginx"]

MAX_INCLUDE_DEPTH = 16
# Depth alone does not bound an include tree: 16 levels of files that each include 4 others is 4**16 files.
# Real configs include tens of files; these bound the whole tree, so fan-out ends in one line, not gigabytes.
MAX_INCLUDED_FILES = 1000
MAX_TOTAL_BYTES = 8 * 1024 * 1024
# Real configs nest http > server > location > if, a handful of levels; the parser recurses once per level.
MAX_BLOCK_DEPTH = 50
# nginx's time values (its "Measurement units" doc): whole numbers with units from the largest to the smallest,
# each at most once; "M" is 30 days and "y" 365 days. nginx keeps the result in a signed machine word - of
# milliseconds for timeouts, of seconds for the few settings in seconds - and refuses a value that overflows it.
_NGINX_UNITS_MS = {"y": 365 * 86400_000, "M": 30 * 86400_000, "w": 7 * 86400_000, "d": 86400_000,
                   "h": 3600_000, "m": 60_000, "s": 1000, "ms": 1}  # fmt: skip
_NGINX_PART = re.compile(r"(\d+)(ms|[yMwdhms])?\s*")
NGX_MAX_INT = 2**63 - 1
# The kernel refuses TCP_KEEPIDLE above this many seconds; nginx then logs it and keeps the kernel's default.
MAX_TCP_KEEPIDLE = 32767


@dataclass
class Directive:
    name: str
    args: list[str]
    file: str
    line: int
    block: list[Directive] | None = None
    parent: Directive | None = field(default=None, repr=False)


@dataclass
class _Budget:
    """What one ``parse_nginx`` has read so far, across every included file."""

    files: int = 0
    bytes: int = 0

    def take(self, d: Directive, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.files > MAX_INCLUDED_FILES:
            raise ParseError(
                d.file, d.line, f"includes reach more than {MAX_INCLUDED_FILES} files: not a config"
            )
        if self.bytes > MAX_TOTAL_BYTES:
            mib = MAX_TOTAL_BYTES // (1024 * 1024)
            raise ParseError(d.file, d.line, f"the main file and its includes exceed {mib} MiB: not a config")


def _tokens(text: str, path: str) -> list[tuple[str, int, bool]]:
    """(word, line, quoted) and the specials ``;`` ``{`` ``}`` (quoted=False)."""
    out: list[tuple[str, int, bool]] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in ";{}":
            out.append((c, line, False))
            i += 1
        elif c in "\"'":
            start_line = line
            j = i + 1
            buf = []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    line += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ParseError(path, start_line, "unterminated quoted string")
            out.append(("".join(buf), start_line, True))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in ";{}":
                j += 1
            out.append((text[i:j], line, False))
            i = j
    return out


def _parse_block(
    toks: list[tuple[str, int, bool]],
    pos: int,
    path: str,
    depth: int,
    parent: Directive | None,
    budget: _Budget,
) -> tuple[list[Directive], int]:
    out: list[Directive] = []
    words: list[str] = []
    first_line = 0
    while pos < len(toks):
        word, line, quoted = toks[pos]
        pos += 1
        if not quoted and word == ";":
            if not words:
                raise ParseError(path, line, "unexpected ';'")
            d = Directive(words[0], words[1:], path, first_line, None, parent)
            if d.name == "include":
                out.extend(_include(d, depth, parent, budget))
            else:
                out.append(d)
            words = []
        elif not quoted and word == "{":
            if not words:
                raise ParseError(path, line, "unexpected '{'")
            d = Directive(words[0], words[1:], path, first_line, [], parent)
            if _nesting(d) > MAX_BLOCK_DEPTH:
                raise ParseError(path, line, f"blocks nested more than {MAX_BLOCK_DEPTH} deep: not a config")
            d.block, pos = _parse_block(toks, pos, path, depth, d, budget)
            out.append(d)
            words = []
        elif not quoted and word == "}":
            if words:
                raise ParseError(path, line, f"unexpected '}}' (missing ';' after {words[0]!r}?)")
            if parent is None:
                raise ParseError(path, line, "unexpected '}'")
            return out, pos
        else:
            if not words:
                first_line = line
            words.append(word)
    if words:
        raise ParseError(path, first_line, f"unexpected end of file (missing ';' after {words[0]!r})")
    if parent is not None and parent.file == path:
        raise ParseError(path, parent.line, f"unexpected end of file: block {parent.name!r} is not closed")
    return out, pos


def _nesting(d: Directive) -> int:
    """How many blocks ``d`` is inside, counting itself (stops counting past the limit)."""
    n = 0
    p: Directive | None = d
    while p is not None and n <= MAX_BLOCK_DEPTH:
        n += 1
        p = p.parent
    return n


def _include(d: Directive, depth: int, parent: Directive | None, budget: _Budget) -> list[Directive]:
    if len(d.args) != 1:
        raise ParseError(d.file, d.line, "include takes one file or glob")
    if depth >= MAX_INCLUDE_DEPTH:
        raise ParseError(d.file, d.line, f"includes nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)")
    pattern = d.args[0]
    if not os.path.isabs(pattern):
        pattern = os.path.join(os.path.dirname(d.file), pattern)
    files = sorted(glob.glob(pattern))
    if not files and not glob.has_magic(pattern):
        raise ParseError(d.file, d.line, f"include {d.args[0]}: no such file")
    out: list[Directive] = []
    for f in files:
        text = read_text(f)
        budget.take(d, len(text.encode()))
        out.extend(_parse_text(f, text, depth + 1, parent, budget))
    return out


def _parse_text(
    path: str, text: str, depth: int, parent: Directive | None, budget: _Budget
) -> list[Directive]:
    toks = _tokens(text, path)
    # An included file's top level continues the including block: it must not close it.
    ds, pos = _parse_block(toks, 0, path, depth, parent, budget)
    if pos < len(toks):
        raise ParseError(path, toks[pos][1], "unexpected '}'")
    return ds


def parse_nginx(path: str) -> list[Directive]:
    """The directive tree of ``path`` with every include expanded."""
    text = read_text(path)
    budget = _Budget(bytes=len(text.encode()))
    return _parse_text(path, text, 0, None, budget)


def _walk(ds: list[Directive]) -> list[Directive]:
    out = []
    for d in ds:
        out.append(d)
        if d.block is not None:
            out.extend(_walk(d.block))
    return out


def nginx_time(text: str, in_seconds: bool = False) -> float:
    """Seconds in an nginx time value, or ValueError saying why nginx refuses it."""
    total, pos, last = 0, 0, NGX_MAX_INT
    unit_ms = 1000 if in_seconds else 1  # the unit nginx stores the value in
    if not text:
        raise ValueError("an empty time value")
    while pos < len(text):
        m = _NGINX_PART.match(text, pos)
        if m is None:
            raise ValueError("nginx takes whole numbers with units (75s, 1m30s, 500ms)")
        unit = m.group(2) or ""
        if not unit and (pos > 0 or m.end() < len(text)):  # "0.5s", "5q", "1h 30"
            raise ValueError("nginx takes whole numbers with units (75s, 1m30s, 500ms)")
        scale = _NGINX_UNITS_MS.get(unit, 1000)  # a bare number is seconds
        if scale >= last:
            raise ValueError("nginx wants units from the largest to the smallest, each once")
        if in_seconds and unit == "ms":
            raise ValueError("this setting is in seconds: nginx refuses ms")
        digits = m.group(1).lstrip("0") or "0"
        total += (
            int(digits) * scale // unit_ms if len(digits) <= 20 else NGX_MAX_INT + 1
        )  # 20 digits overflow
        if total > NGX_MAX_INT:
            raise ValueError("too large: nginx refuses a time that overflows its counter")
        last, pos = scale, m.end()
    return total * unit_ms / 1000


def _time(d: Directive, index: int = 0) -> float:
    if len(d.args) <= index:
        raise ParseError(d.file, d.line, f"{d.name} needs a time value")
    try:
        return nginx_time(d.args[index])
    except ValueError as exc:
        raise ParseError(d.file, d.line, f"{d.name} {d.args[index]}: {exc}") from None


def _src(d: Directive) -> Source:
    return Source("file", d.file, d.line, f"{d.name} {' '.join(d.args)};")


def _ctx(d: Directive) -> str:
    p = d.parent
    return p.name if p is not None else "main"


def read_nginx(path: str, name: str = "nginx", upstream: str | None = None) -> Hop:
    """One ``nginx`` hop from ``path``; ``upstream`` picks the upstream block (default: the worst one)."""
    tree = parse_nginx(path)
    every = _walk(tree)
    preset = get_preset("nginx")
    vals: dict[str, Value] = {}
    notes: list[str] = []
    context: dict[str, str] = {}
    d_src = Source("default", text=preset.defaults["idle"].doc)
    # client-facing keep-alive: http or server level (location-level values are per request; ignored).
    kt = [d for d in every if d.name == "keepalive_timeout" and _ctx(d) in ("http", "server")]
    if kt:
        worst = min(kt, key=_time)
        vals["idle"] = Value(_time(worst), _src(worst))
        context["idle_at"] = f"{worst.file}:{worst.line}"
    else:
        vals["idle"] = Value(75.0, d_src)
    ups = [d for d in every if d.name == "upstream" and d.block is not None]
    if upstream is not None:
        ups = [u for u in ups if u.args[:1] == [upstream]]
        if not ups:
            raise UsageError(f"{path}: no upstream block named {upstream!r}")
    _pool(ups, every, vals, notes, context)
    for fname, directive, default in (
        ("hard_limit", "keepalive_time", 3600.0),
        ("read_timeout", "proxy_read_timeout", 60.0),
    ):
        found = [d for d in every if d.name == directive]
        if found:
            worst = max(found, key=_time)
            vals[fname] = Value(_time(worst), _src(worst))
        else:
            vals[fname] = Value(default, Source("default", text=preset.defaults[fname].doc))
    _so_keepalive(every, vals)
    return Hop(name, "nginx", "proxy", vals, notes=tuple(notes), context=context)


def _pool(
    ups: list[Directive],
    every: list[Directive],
    vals: dict[str, Value],
    notes: list[str],
    context: dict[str, str],
) -> None:
    """The pool side: the worst (largest) idle of the upstream blocks; 0 for a block without ``keepalive``."""
    preset = get_preset("nginx")
    pool: list[tuple[float, Source, str]] = []
    for u in ups:
        assert u.block is not None
        ka = [d for d in u.block if d.name == "keepalive"]
        if not ka:
            pool.append(
                (
                    0.0,
                    Source("file", u.file, u.line, f"upstream {u.args[0]} {{}} without keepalive"),
                    u.args[0],
                )
            )
            continue
        kto = [d for d in u.block if d.name == "keepalive_timeout"]
        if kto:
            pool.append((_time(kto[-1]), _src(kto[-1]), u.args[0]))
        else:
            pool.append((60.0, Source("default", text=preset.defaults["pool_idle"].doc), u.args[0]))
    if pool:
        secs, src, uname = max(pool, key=lambda t: t[0])
        vals["pool_idle"] = Value(secs, src)
        context["upstream"] = uname
        if secs == 0:
            notes.append(f"upstream {uname}: no `keepalive N;` - nginx opens a new connection per request")
        elif not any(d.name == "proxy_http_version" and d.args[:1] == ["1.1"] for d in every):
            notes.append(
                "upstream keepalive is on but proxy_http_version is not 1.1: nginx still closes after each request"
            )


def _so_keepalive(every: list[Directive], vals: dict[str, Value]) -> None:
    for d in every:
        if d.name == "listen":
            for a in d.args:
                if a.startswith("so_keepalive="):
                    spec = a.split("=", 1)[1]
                    if spec == "on":
                        from tcpwise.ladder.presets import KERNEL_KEEPALIVE

                        vals["keepalive"] = Value(KERNEL_KEEPALIVE.seconds, _src(d))
                    elif spec != "off":
                        idle = spec.split(":")[0]
                        if idle:
                            vals["keepalive"] = Value(_keepidle(d, idle), _src(d))


def _keepidle(d: Directive, idle: str) -> float:
    """The idle time of ``so_keepalive=idle:intvl:cnt``: in seconds, and within what the kernel accepts."""
    try:
        secs = nginx_time(idle, in_seconds=True)
    except ValueError as exc:
        raise ParseError(d.file, d.line, f"so_keepalive={idle}: {exc}") from None
    if secs > MAX_TCP_KEEPIDLE:
        raise ParseError(
            d.file, d.line, f"so_keepalive={idle}: over {MAX_TCP_KEEPIDLE} s, the kernel refuses it"
        )
    return secs

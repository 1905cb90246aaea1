"""The ``tcpwise trace`` table: one row per connection, printed as connections finish, in ``#`` order.

Theory of operation
-------------------
A table of a large capture (a SYN flood is hundreds of thousands of rows) must not be held in memory, so rows are
formatted to short strings when a connection finishes and printed as soon as every lower-numbered connection has
been printed (connections finish out of order: a long-lived #1 ends last). The rows waiting for a lower number are
capped (:data:`MAX_WAITING`); beyond that the smallest waiting numbers are printed and the late connection appears
when it finishes — the table is then ordered except for such long-lived connections.

Layout: when a row fits the width on one line (always with ``--wide``, so that ``grep`` and ``awk`` see one line
per connection; otherwise 80 columns, piped too, like every tcpwise table), it is one line: ``#``, ``client > server``, Zeek's
``conn_state`` and ``history``, packets each way, duration, each side's largest window (scaled, RFC 7323) and the
story. In a narrow terminal (80 or 100 columns) the first line holds the identity and the state, and the counters
and the story follow on indented lines, wrapped at word boundaries — never cut. Column widths are fixed from the
first rows printed; a later, wider value widens only its own row. No colour is used.
"""

from __future__ import annotations

import heapq
import re
import textwrap
from collections.abc import Callable
from typing import TextIO

from tcpwise.trace.output import story
from tcpwise.trace.tracker import Conn
from tcpwise.trace.zeek import conn_state

__all__ = ["TableSink", "MAX_WAITING", "human_window"]

MAX_WAITING = 10_000  # finished rows held while an earlier connection is still open
_SAMPLE = 64  # rows used to fix column widths


def human_window(n: int | None) -> str:
    """A window size in compact units: 512, 64k, 1.5M (powers of 1024, as window sizes are)."""
    if n is None:
        return "-"
    if n < 1024:
        return str(n)
    if n < 1024 * 1024:
        v = n / 1024
        return f"{v:.0f}k" if v >= 10 else f"{v:.1f}k"
    v = n / (1024 * 1024)
    return f"{v:.0f}M" if v >= 10 else f"{v:.1f}M"


_Row = tuple[int, str, str, str, str, str, str, str]  # n, endpoints, state, history, pkts, dur, win, story
_UNIT = re.compile(r"(\d) (B|kB|MB|GB|ms|s)\b")  # keep a number and its unit on one line


class TableSink:
    """Call with each finished :class:`Conn`; :meth:`close` prints the rest and the summary line."""

    def __init__(self, out: TextIO, name_of: Callable[[int], str], width: int, wide: bool) -> None:
        self.out = out
        self.name_of = name_of
        self.width = max(40, width)
        self.wide = wide
        self.next_n = 1
        self.waiting: list[tuple[int, _Row]] = []  # heap by connection number
        self.sample: list[_Row] | None = []  # rows held until the column widths are fixed
        self.cols: tuple[int, ...] = ()
        self.rows = 0

    def __call__(self, c: Conn) -> None:
        name = self.name_of
        o, r = c.o, c.r
        row: _Row = (
            c.n,
            f"{name(c.orig_ep >> 16)}:{c.orig_ep & 0xFFFF} > {name(c.resp_ep >> 16)}:{c.resp_ep & 0xFFFF}",
            conn_state(c),
            c.history or "-",
            f"{o.pkts}/{r.pkts}",
            f"{c.last - c.ts:.3f}",
            f"{human_window(o.window_max_scaled if o.pkts else None)}/"
            f"{human_window(r.window_max_scaled if r.pkts else None)}",
            story(c),
        )
        heapq.heappush(self.waiting, (c.n, row))
        self._release(False)

    def _release(self, everything: bool) -> None:
        w = self.waiting
        while w and (everything or w[0][0] <= self.next_n or len(w) > MAX_WAITING):
            n, row = heapq.heappop(w)
            self.next_n = max(self.next_n, n + 1)
            self._emit(row)

    def _emit(self, row: _Row) -> None:
        if self.sample is not None:
            self.sample.append(row)
            if len(self.sample) < _SAMPLE:
                return
            self._fix_columns()
        self._print(row)

    def _fix_columns(self) -> None:
        sample = self.sample or []
        self.sample = None
        heads = ("#", "client > server", "state", "history", "pkts c/s", "dur s", "win c/s")
        self.cols = tuple(max([len(h)] + [len(str(r[i])) for r in sample]) for i, h in enumerate(heads))
        lines = [len(self._one_line((str(r[0]), *r[1:]))) for r in sample] or [0]
        self._print_header(heads, self._fits(max(lines)))
        for r in sample:
            self._print(r)

    def _one_line(self, cells: tuple[str, ...]) -> str:
        c = self.cols
        return (
            f"{cells[0]:>{c[0]}}  {cells[1]:<{c[1]}}  {cells[2]:<{c[2]}} {cells[3]:<{c[3]}}  {cells[4]:>{c[4]}}  "
            f"{cells[5]:>{c[5]}}  {cells[6]:>{c[6]}}  {cells[7]}"
        )

    def _print_header(self, heads: tuple[str, ...], one_line: bool) -> None:
        if one_line:
            self.out.write(self._one_line((*heads, "story")).rstrip() + "\n")
        else:
            c = self.cols
            self.out.write(f"{heads[0]:>{c[0]}}  {heads[1]}  {heads[2]} {heads[3]}\n")
            self.out.write(" " * (c[0] + 2) + "pkts c/s, duration, largest window c/s; story\n")

    def _fits(self, n: int) -> bool:
        return self.wide or n <= self.width

    def _print(self, row: _Row) -> None:
        self.rows += 1
        cells = (str(row[0]), *row[1:])
        line = self._one_line(cells)
        if self._fits(len(line)):
            self.out.write(line + "\n")
            return
        c = self.cols
        indent = " " * (c[0] + 2)
        head = f"{cells[0]:>{c[0]}}  {cells[1]}  {cells[2]} {cells[3]}"
        if len(head) > self.width:
            head = f"{cells[0]:>{c[0]}}  {cells[1]}\n{indent}{cells[2]} {cells[3]}"
        text = _UNIT.sub("\\1\u00a0\\2", f"{cells[4]} pkts, {cells[5]} s, win {cells[6]}; {cells[7]}")
        body = textwrap.fill(
            text, width=self.width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
        ).replace("\u00a0", " ")
        self.out.write(head + "\n" + body + "\n")

    def close(self, connections: int, tcp_packets: int) -> None:
        self._release(True)
        if self.sample is not None:
            if self.sample:
                self._fix_columns()
            else:
                self.sample = None
        self.out.write(f"{connections} TCP connection(s), {tcp_packets} TCP packets\n")

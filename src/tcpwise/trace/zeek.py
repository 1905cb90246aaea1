"""Zeek ``conn.log``: ``conn_state`` from the two endpoint states, and the TSV writer.

Theory of operation
-------------------
Zeek (base/protocols/conn/main.zeek, ``conn_state``) derives the connection state from the final states of the
two TCP endpoints (tracked in :mod:`tcpwise.trace.tracker` like Zeek's TCP analyzer does) and, for RSTOS0, from
the history string. The documented meanings:

====== =====================================================================================================
S0     Connection attempt seen, no reply.
S1     Connection established, not terminated.
SF     Normal establishment and termination.
REJ    Connection attempt rejected.
S2     Established, close attempt by originator seen (but no reply from responder).
S3     Established, close attempt by responder seen (but no reply from originator).
RSTO   Established, originator aborted (sent a RST).
RSTR   Responder sent a RST.
RSTOS0 Originator sent a SYN followed by a RST, we never saw a SYN-ACK from the responder.
RSTRH  Responder sent a SYN ACK followed by a RST, we never saw a SYN from the (purported) originator.
SH     Originator sent a SYN followed by a FIN, we never saw a SYN ACK from the responder.
SHR    Responder sent a SYN ACK followed by a FIN, we never saw a SYN from the originator.
OTH    No SYN seen, just midstream traffic.
====== =====================================================================================================

The TSV form follows Zeek's ASCII writer: ``#separator \\x09`` and the other ``#`` header lines, ``-`` for an
unset field, ``(empty)`` for an empty string, times with 6 decimals. ``duration``, ``orig_bytes`` and
``resp_bytes`` are set only when the connection lasted longer than zero (as Zeek's ``set_conn`` does).
``local_orig``/``local_resp`` are unset because we have no ``Site::local_nets``; ``service`` is unset because we
do not run protocol analyzers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TextIO

from tcpwise.trace.tracker import CLOSED, ESTABLISHED, INACTIVE, PARTIAL, RESET, SYN_ACK_SENT, SYN_SENT, Conn

__all__ = ["conn_state", "uid", "ZeekWriter", "FIELDS", "TYPES"]

FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes conn_state "
    "local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes"
).split()
TYPES = (
    "time string addr port addr port enum string interval count count string bool bool count string count count "
    "count count"
).split()

# main.zeek: an originator RST after its SYN, with no originator H/A/F/G/I/Q in between.
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_2 = [a + b for a in _B62 for b in _B62]  # 3844 pairs: cheap to build at import


def conn_state(c: Conn) -> str:
    """Zeek's conn_state for a TCP connection, from the endpoint states and the history."""
    os_, rs = c.o.z, c.r.z
    o_inactive = os_ in (INACTIVE, PARTIAL)
    r_inactive = rs in (INACTIVE, PARTIAL)
    if rs == RESET:
        if os_ in (SYN_SENT, SYN_ACK_SENT) or (os_ == RESET and c.o.bytes == 0 and c.r.bytes == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0.fullmatch(c.history) else "OTH"
        return "RSTO"
    if rs == CLOSED and os_ == CLOSED:
        return "SF"
    if os_ == CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == SYN_SENT and rs == INACTIVE:
        return "S0"
    if os_ == ESTABLISHED and rs == ESTABLISHED:
        return "S1"
    return "OTH"


def uid(c: Conn, salt: int = 0) -> str:
    """A Zeek-style connection uid: 'C' + 17 base62 characters, unique within a capture and stable across runs.

    Zeek draws uids at random. Ours are 10 characters derived from ``salt`` (per capture) followed by 7 that
    encode ``n * 0x9E3779B1 mod 2^32`` — a bijection of the connection number, so no two connections of one
    capture share a uid, computed with small-integer arithmetic (this runs once per connection)."""
    return uid_of(c.n, salt)


def uid_of(n: int, salt: int) -> str:
    """:func:`uid` of connection number ``n`` (the --jobs merge numbers connections after tracking)."""
    head = _UID_HEAD.get(salt)
    if head is None:
        h = (salt * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & ((1 << 64) - 1)
        digits = []
        for _ in range(10):
            h, r = divmod(h, 62)
            digits.append(_B62[r])
        head = _UID_HEAD[salt] = "C" + "".join(digits)
    x = (n * 0x9E3779B1) & 0xFFFFFFFF
    x, a = divmod(x, 3844)
    x, b = divmod(x, 3844)
    x, d = divmod(x, 3844)
    return head + _B62_2[a] + _B62_2[b] + _B62_2[d] + _B62[x % 62]


_UID_HEAD: dict[int, str] = {}


def _fmt_time(t: float) -> str:
    return f"{t:.6f}"


class ZeekWriter:
    """Writes a conn.log in Zeek's TSV format, one line per connection as the tracker finishes it. The header
    (with ``#open``, the time the writer was created) is written with the first row or at :meth:`close`."""

    def __init__(self, out: TextIO, name_of: Callable[[int], str], salt: int = 0) -> None:
        self.out = out
        self.name_of = name_of
        self.salt = salt
        self.opened = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
        self.started = False

    def header(self) -> str:
        return (
            "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
            f"#open\t{self.opened}\n#fields\t" + "\t".join(FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n"
        )

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.out.write(self.header())

    def row(self, c: Conn) -> list[str]:
        name = self.name_of
        dur = c.last - c.ts
        has_dur = dur > 0
        return [
            _fmt_time(c.ts),
            uid(c, self.salt),
            name(c.orig_ep >> 16),
            str(c.orig_ep & 0xFFFF),
            name(c.resp_ep >> 16),
            str(c.resp_ep & 0xFFFF),
            "tcp",
            "-",
            f"{dur:.6f}" if has_dur else "-",
            str(c.o.size) if has_dur else "-",
            str(c.r.size) if has_dur else "-",
            conn_state(c),
            "-",
            "-",
            str(c.o.missed + c.r.missed),
            c.history or "(empty)",
            str(c.o.pkts),
            str(c.o.ipbytes),
            str(c.r.pkts),
            str(c.r.ipbytes),
        ]

    def write(self, c: Conn) -> None:
        if not self.salt:  # uids differ between captures: seed them with the first finished connection's time
            self.salt = int(c.ts * 1e6) or 1
        if not self.started:
            self.start()
        self.out.write("\t".join(self.row(c)) + "\n")

    def close(self) -> None:
        self.start()
        self.out.write("#close\t" + time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime()) + "\n")

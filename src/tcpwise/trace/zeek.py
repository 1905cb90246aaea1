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
_B62_3 = [a + b + c for a in _B62 for b in _B62 for c in _B62]


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
    """A Zeek-style connection uid ('C' + 17 base62 characters), deterministic for a given capture.

    Zeek draws uids at random; ours mix the connection number, its first timestamp and ``salt`` (a 64-bit
    multiplicative hash, enough to make uids of different captures differ) so reruns give the same uids."""
    m = (1 << 101) - 1
    h = (c.n * 0x9E3779B97F4A7C15 + int(c.ts * 1e6) * 0xC2B2AE3D27D4EB4F + salt) & m
    h = ((h ^ (h >> 53)) * 0x1F3A5C9B7D2E4F6A8B1C3D5E7) & m  # mix so every digit depends on every input bit
    h = ((h ^ (h >> 47)) * 0x16A09E667F3BCC908B2FB1367) & m
    out = ["C"]
    for _ in range(6):  # three base62 digits at a time: 6 * 3 = 18 >= 17
        h, r = divmod(h, 238328)  # 62**3
        out.append(_B62_3[r])
    return "".join(out)[:18]


def _fmt_time(t: float) -> str:
    return f"{t:.6f}"


class ZeekWriter:
    """Writes a conn.log in Zeek's TSV format, one line per connection as the tracker finishes it."""

    def __init__(self, out: TextIO, name_of: Callable[[int], str], salt: int = 0) -> None:
        self.out = out
        self.name_of = name_of
        self.salt = salt
        now = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
        out.write(
            "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
            f"#open\t{now}\n#fields\t" + "\t".join(FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n"
        )

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
            str(c.o.bytes) if has_dur else "-",
            str(c.r.bytes) if has_dur else "-",
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
        self.out.write("\t".join(self.row(c)) + "\n")

    def close(self) -> None:
        self.out.write("#close\t" + time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime()) + "\n")

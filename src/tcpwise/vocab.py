"""The one state and flag vocabulary shared by every part of tcpwise.

State names are RFC 9293's (§3.3.2) spelled with underscores, exactly as ../DESIGN.md fixes them; the kernel's
numbering (include/net/tcp_states.h) maps onto them for sock_diag and /proc users. Flag strings list the letters
in the fixed order S F R P A U E C, so SYN+ACK is "SA" and FIN+ACK is "FA" everywhere (sim, lab, trace, render).
"""

from __future__ import annotations

import enum

__all__ = [
    "TcpState",
    "STATE_NAMES",
    "KERNEL_STATES",
    "kernel_state_name",
    "FLAG_ORDER",
    "FLAG_BITS",
    "flags_to_str",
    "str_to_flags",
    "FIN",
    "SYN",
    "RST",
    "PSH",
    "ACK",
    "URG",
    "ECE",
    "CWR",
]


class TcpState(enum.Enum):
    """The eleven connection states of RFC 9293 §3.3.2. ``str()`` gives the canonical name."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RCVD = "SYN_RCVD"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"

    def __str__(self) -> str:
        return self.value

    @property
    def rfc_name(self) -> str:
        """The RFC's own spelling, e.g. ``SYN-SENT``."""
        return self.value.replace("_", "-")


STATE_NAMES: tuple[str, ...] = tuple(s.value for s in TcpState)

# Linux include/net/tcp_states.h: TCP_ESTABLISHED = 1 ... TCP_NEW_SYN_RECV = 12. NEW_SYN_RECV is the kernel's
# request-sock (a SYN queue entry, not a full socket); we report it as SYN_RCVD, the RFC state it stands for.
KERNEL_STATES: dict[int, str] = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RCVD",
    4: "FIN_WAIT_1",
    5: "FIN_WAIT_2",
    6: "TIME_WAIT",
    7: "CLOSED",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN_RCVD",  # TCP_NEW_SYN_RECV
}


def kernel_state_name(n: int) -> str:
    """Kernel state number -> canonical name; an unknown number renders as ``str(n)`` instead of failing."""
    return KERNEL_STATES.get(n, str(n))


# TCP header flag bits (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

FLAG_ORDER = "SFRPAUEC"
FLAG_BITS: dict[str, int] = {"S": SYN, "F": FIN, "R": RST, "P": PSH, "A": ACK, "U": URG, "E": ECE, "C": CWR}

_FLAG_STR_CACHE: list[str] = [
    "".join(letter for letter in FLAG_ORDER if bits & FLAG_BITS[letter]) for bits in range(256)
]


def flags_to_str(bits: int) -> str:
    """Flag bits -> canonical letters in S F R P A U E C order (``0x12`` -> ``"SA"``)."""
    return _FLAG_STR_CACHE[bits & 0xFF]


def str_to_flags(text: str) -> int:
    """Canonical letters -> flag bits; raises ValueError on an unknown letter."""
    bits = 0
    for letter in text:
        try:
            bits |= FLAG_BITS[letter]
        except KeyError:
            raise ValueError(f"unknown TCP flag letter {letter!r} (valid: {FLAG_ORDER})") from None
    return bits

"""The one state and flag vocabulary shared by every part of tcpwise.

State names are RFC 9293's (§3.3.2) spelled with underscores (``SYN_SENT``, not ``SYN-SENT``) so that they are
identifiers in every language and match ``ss`` output once upper-cased; the kernel's numbering (include/net/tcp_states.h) maps onto them for sock_diag and /proc users. Flag strings list the letters
in the fixed order S F R P A U E C, so SYN+ACK is "SA" and FIN+ACK is "FA" everywhere (sim, lab, trace, render).

Besides states and flags this module holds every *closed* set of names the event schema uses, as string
enumerations: what kind of event it is (:class:`EventKind`), which timer fired (:class:`TimerName`), what drove a
state change (:class:`Trigger`, the keys of the one transition table in :mod:`tcpwise.endpoint.transitions`), which
application call or decision an ``app`` event records (:class:`AppCall`, :class:`AppWhy`) and why the network lost a
segment (:class:`DropReason`). They are ``StrEnum`` members, so ``TcpState.TIME_WAIT == "TIME_WAIT"`` and JSON keeps
plain strings; constructing one from an unknown string raises ``ValueError`` at once — a typo cannot travel.
"""

from __future__ import annotations

import enum

__all__ = [
    "TcpState",
    "STATE_COLORS",
    "EventKind",
    "TimerName",
    "Trigger",
    "AppCall",
    "AppWhy",
    "DropReason",
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


class TcpState(enum.StrEnum):
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

    @property
    def rfc_name(self) -> str:
        """The RFC's own spelling, e.g. ``SYN-SENT``."""
        return self.value.replace("_", "-")


STATE_NAMES: tuple[str, ...] = tuple(s.value for s in TcpState)

# One colour per state, used by every renderer: greens for data-carrying states, blues for the active closer's way
# out, reds for the passive closer's (CLOSE_WAIT is where leaks live), purple for TIME_WAIT.
STATE_COLORS: dict[str, str] = {  # keyed by TcpState members, which are str: a state name looks up too
    TcpState.CLOSED: "#e5e5e5",
    TcpState.LISTEN: "#c7dcef",
    TcpState.SYN_SENT: "#fdd49e",
    TcpState.SYN_RCVD: "#fdae6b",
    TcpState.ESTABLISHED: "#74c476",
    TcpState.FIN_WAIT_1: "#9ecae1",
    TcpState.FIN_WAIT_2: "#6baed6",
    TcpState.CLOSING: "#80cdc1",
    TcpState.CLOSE_WAIT: "#fc9272",
    TcpState.LAST_ACK: "#ef6548",
    TcpState.TIME_WAIT: "#b4a7d6",
}


class EventKind(enum.StrEnum):
    """What an event of the schema records (see :mod:`tcpwise.events`)."""

    SEND = "send"  # the host put a segment on the wire
    RECV = "recv"  # a segment arrived at the host
    DROP = "drop"  # the network lost a segment (host = the sender)
    STATE = "state"  # a connection of the host changed state
    TIMER = "timer"  # a TCP timer fired
    APP = "app"  # the application called something or learnt something
    NOTE = "note"  # narrative text for the diagram


class TimerName(enum.StrEnum):
    """The TCP timers of one connection (RFC 9293 §3.8, RFC 6298, RFC 1122 §4.2.3.6; Linux names in comments)."""

    TIME_WAIT = "time_wait"  # 2*MSL (Linux TCP_TIMEWAIT_LEN, tw timer)
    FIN_WAIT_2 = "fin_wait_2"  # orphaned FIN_WAIT_2 (tcp_fin_timeout)
    RTO = "rto"  # retransmission (ICSK_TIME_RETRANS)
    # tail loss probe, RFC 8985 (ICSK_TIME_LOSS_PROBE: the same timer slot as RTO in Linux)
    LOSS_PROBE = "loss_probe"
    PERSIST = "persist"  # zero-window probe (ICSK_TIME_PROBE0)
    KEEPALIVE = "keepalive"  # SO_KEEPALIVE (sk_timer)


class Trigger(enum.StrEnum):
    """What drives a state change: the keys of the one transition table (tcpwise.endpoint.transitions).

    User calls (RFC 9293 §3.10.1-§3.10.5), segment arrivals (§3.10.7), timers, and the Linux-only causes the
    "linux" profile follows. Each member's value is what diagrams and golden traces print."""

    CONNECT = "connect()"
    LISTEN = "listen()"
    CLOSE = "close()"
    CLOSE_UNREAD = "close() with unread data"  # Linux: RST instead of FIN (RFC 2525 §2.17, tcp_close)
    SHUTDOWN = "shutdown()"
    ABORT = "abort()"  # ABORT call / close() with SO_LINGER {1, 0}
    RCV_SYN = "rcv SYN"
    RCV_SYN_ACK = "rcv SYN+ACK"
    RCV_ACK = "rcv ACK"  # an ACK of our SYN or FIN
    RCV_FIN = "rcv FIN"
    RCV_RST = "rcv RST"
    RCV_SYN_NEW_INCARNATION = (
        "rcv SYN new incarnation"  # TIME_WAIT yields to a new SYN (RFC 6191, TCP_TW_SYN)
    )
    RCV_DATA_AFTER_CLOSE = (
        "rcv data after close"  # Linux: an orphan answers new data with RST (TCPAbortOnData)
    )
    TIMEOUT = "timeout"  # retransmission, keepalive or user timeout gave up (ETIMEDOUT)
    TIMER_TIME_WAIT = "timer time_wait"
    TIMER_FIN_WAIT_2 = "timer fin_wait_2"
    NO_TIME_WAIT = "time_wait=0"  # model-only variant: the connection is forgotten at once, no TIME_WAIT
    REUSE_TIME_WAIT = "tw_reuse"  # tcp_tw_reuse: a new outgoing connection takes over a TIME_WAIT 4-tuple
    LISTENER_CLOSED = "listener closed"  # close() of a listener resets the children nobody accepted
    TWO_WAY = "two-way handshake"  # model-only counterfactual (why-three): the SYN alone opens the connection


class AppCall(enum.StrEnum):
    """What an ``app`` event records: a call the application made, or what a call returned to it."""

    LISTEN = "listen"  # listen(port, backlog)
    CONNECT = "connect"  # connect() called (errno set: it failed at once, e.g. EADDRNOTAVAIL)
    CONNECTED = "connected"  # connect() returned: the handshake completed
    ACCEPT = "accept"  # accept() returned a connection (errno set: it failed, e.g. EMFILE, EAGAIN)
    SEND = "send"  # send(nbytes) (errno set: it failed, e.g. EPIPE)
    RECV = "recv"  # recv() returned nbytes
    EOF = "eof"  # recv() returned 0: the peer's FIN
    SHUTDOWN = "shutdown"  # shutdown(SHUT_WR)
    CLOSE = "close"  # close()
    ABORT = "abort"  # close() with SO_LINGER {1, 0}: RST, no TIME_WAIT
    ERROR = "error"  # a call failed with errno (ECONNRESET, ETIMEDOUT, EPIPE, ECONNREFUSED, ...)
    GIVE_UP = "give_up"  # the application's own deadline passed (why + value say which and how long)
    CRASH = "crash"  # the host died (no FIN, no RST)
    REBOOT = "reboot"  # the host came back with no connection state


class AppWhy(enum.StrEnum):
    """Why an application did what an ``app`` event records, when it was a decision of its own (the number it
    depends on travels in the event's ``value``)."""

    IDLE_TIMEOUT = "idle_timeout"  # the application's idle timeout (value: seconds)
    PER_IP_LIMIT = "per_ip_limit"  # too many connections from one address (value: the limit)
    FD_LIMIT = "fd_limit"  # RLIMIT_NOFILE reached (value: the limit)
    CONNECT_TIMEOUT = "connect_timeout"  # the application gave up waiting for connect() (value: seconds)
    READ_TIMEOUT = "read_timeout"  # the application gave up waiting for a response (value: seconds)
    SEND_TIMEOUT = "send_timeout"  # the send buffer did not drain in time (value: seconds)
    RESPONSE_DONE = "response_done"  # a whole response was sent or received (value: bytes)
    REQUEST = "request"  # a request (value: bytes)
    HEARTBEAT = "heartbeat"  # an application heartbeat (value: bytes)
    GREETING = "greeting"  # the two-way variant's server greeting (value: bytes)
    TWO_WAY = "two_way"  # the two-way variant's server opened on the SYN alone
    POOL_NEW = "pool_new"  # a pool opened a new connection
    POOL_RETURN = "pool_return"  # a pool took a connection back after a response
    POOL_PEER_CLOSED = "pool_peer_closed"  # a pool found the peer had closed the connection (value: none)
    POOL_MAX_IDLE = "pool_max_idle"  # a pool evicted a connection idle for max_idle (value: seconds)
    RESUME_READING = "resume_reading"  # a stalled reader starts reading again
    NOTHING_QUEUED = "nothing_queued"  # accept() found the queue empty (EAGAIN)


class DropReason(enum.StrEnum):
    """Why the network lost a segment."""

    LOSS = "loss"  # random loss on the link
    FAULT = "fault"  # a scripted fault rule (DropNext); ``text`` names the rule
    PARTITION = "partition"  # a one-way partition
    NO_ROUTE = "no route"  # no host owns the destination address
    HOST_DOWN = "host down"  # the destination host has crashed
    FIREWALL = "firewall"  # a stateful middlebox forgot the flow
    NAT = "nat"  # a NAT box found no mapping
    NFTABLES = "nftables"  # the lab's router dropped it (nft rule)
    HELD = "held"  # a delay box took it off the link; it is delivered later (text says when)
    PAWS = "paws"  # a PAWS check in front of the host rejected it (legacy tw_recycle)
    PROBE = "probe"  # tcpwise probe ignored or withheld it on purpose (a misbehaving peer); text says which


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

"""A listening socket: the SYN queue and the accept queue (the two queues behind listen(2)'s backlog).

Linux keeps half-open requests (SYN received, SYN-ACK sent: "NEW_SYN_RECV"/SYN_RCVD — the "半连接队列" of
Chinese texts) apart from fully established connections waiting for accept() (the accept queue). This model
does the same:

* SYN queue: children in SYN_RCVD. It is full when it holds more than the backlog (Linux
  ``inet_csk_reqsk_queue_is_full`` compares with ``>``: backlog + 1 entries fit); without syncookies a SYN is
  also dropped once less than a quarter of ``tcp_max_syn_backlog`` would be left (``tcp_conn_request``; the last
  quarter is kept for peers proven alive, which is not modelled). When full: with syncookies a stateless
  SYN-ACK carrying a cookie ISN; without, the SYN is dropped. (Measured on Linux 6.18 in a namespace: backlog
  64 -> 65 SYN-RECV entries with or without cookies; backlog 256, tcp_max_syn_backlog 128, no cookies -> 97.)
* Accept queue: ESTABLISHED children not yet accept()ed, at most backlog + 1 (Linux ``sk_acceptq_is_full``
  uses ``>``). When it is full a new SYN is dropped (ListenOverflows), and a final ACK is dropped too
  (``tcp_abort_on_overflow=0``: the child stays SYN_RCVD and retransmits its SYN-ACK) or answered with RST (=1).
"""

from __future__ import annotations

import hashlib
from collections import deque

from tcpwise.endpoint.config import EndpointConfig
from tcpwise.endpoint.events import StateChanged
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.endpoint.transitions import check
from tcpwise.vocab import TcpState, Trigger

__all__ = ["Listener", "SYNCOOKIE_MSS"]

# MSS values a cookie can encode in 2 bits (Linux msstab in syncookies.c has 4 entries too).
SYNCOOKIE_MSS = (536, 1300, 1440, 1460)


class Listener:
    __slots__ = (
        "cfg",
        "addr",
        "port",
        "backlog",
        "secret",
        "syn_queue",
        "accept_queue",
        "auto_accept",
        "stats",
        "on_eof",
        "state",
    )

    def __init__(
        self, cfg: EndpointConfig, addr: str, port: int, backlog: int, secret: bytes, auto_accept: bool = True
    ) -> None:
        self.cfg = cfg
        self.addr = addr
        self.port = port
        self.backlog = min(backlog, cfg.somaxconn)  # listen(2): silently capped by net.core.somaxconn
        self.secret = secret
        self.syn_queue: dict[tuple[str, int], Endpoint] = {}
        self.accept_queue: deque[Endpoint] = deque()
        self.auto_accept = auto_accept
        self.on_eof = ""
        self.state = TcpState.CLOSED  # a listening socket has two states of its own: CLOSED and LISTEN
        # Counters named like /proc/net/netstat's TcpExt fields.
        self.stats = {
            "ListenOverflows": 0,
            "ListenDrops": 0,
            "SyncookiesSent": 0,
            "SyncookiesRecv": 0,
            "SyncookiesFailed": 0,
            "TCPReqQFullDrop": 0,
        }

    def open(self) -> StateChanged:
        """listen(2): CLOSED -> LISTEN, through the one transition table."""
        return self._set_state(TcpState.LISTEN, Trigger.LISTEN)

    def close(self) -> StateChanged:
        """close(2) of the listening socket: LISTEN -> CLOSED (the stack resets its queued children)."""
        return self._set_state(TcpState.CLOSED, Trigger.CLOSE)

    def _set_state(self, new: TcpState, trigger: Trigger) -> StateChanged:
        old = self.state
        check(old, trigger, new)
        self.state = new
        return StateChanged(old, new, trigger)

    @property
    def syn_queue_limit(self) -> int:
        """How many SYN_RCVD children fit (see the module docstring for the Linux rules)."""
        limit = self.backlog + 1
        if not self.cfg.syncookies:
            mb = self.cfg.max_syn_backlog
            limit = min(limit, mb - (mb >> 2) + 1)
        return limit

    def syn_queue_full(self) -> bool:
        return len(self.syn_queue) >= self.syn_queue_limit

    def accept_queue_full(self) -> bool:
        return len(self.accept_queue) > self.backlog

    def accept(self) -> Endpoint | None:
        """accept(2): the oldest established child, or None (EAGAIN)."""
        return self.accept_queue.popleft() if self.accept_queue else None

    # -- SYN cookies (RFC 4987 §3.6; Linux net/ipv4/syncookies.c) -----------------------------------------
    def cookie(self, raddr: str, rport: int, peer_isn: int, now: float, mss: int) -> int:
        """ISN = 24-bit keyed hash of the 4-tuple, peer ISN and a 64 s counter | 2-bit MSS index | 5-bit counter.
        The layout is ours; the principle (state folded into the ISN, verified on the ACK) is Linux's."""
        count = int(now) >> 6
        idx = max(i for i, m in enumerate(SYNCOOKIE_MSS) if m <= max(mss, SYNCOOKIE_MSS[0]))
        return (self._cookie_hash(raddr, rport, peer_isn, count) << 8) | (idx << 5) | (count & 0x1F)

    def check_cookie(self, raddr: str, rport: int, peer_isn: int, cookie: int, now: float) -> int | None:
        """The MSS the cookie encodes, or None if it is not one of ours from the last two minutes."""
        count_now = int(now) >> 6
        low = cookie & 0x1F
        for count in (count_now, count_now - 1):
            if count & 0x1F != low:
                continue
            if (cookie >> 8) == self._cookie_hash(raddr, rport, peer_isn, count):
                return SYNCOOKIE_MSS[(cookie >> 5) & 0x3]
        return None

    def _cookie_hash(self, raddr: str, rport: int, peer_isn: int, count: int) -> int:
        h = hashlib.blake2s(
            f"{raddr}|{rport}|{self.addr}|{self.port}|{peer_isn}|{count}".encode(),
            key=self.secret[:32],
            digest_size=3,
        ).digest()
        return int.from_bytes(h, "big")

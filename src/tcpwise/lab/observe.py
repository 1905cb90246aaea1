"""Socket states of a lab host, recorded with timestamps by polling sock_diag inside its namespace.

Theory of operation
-------------------
A NETLINK_SOCK_DIAG socket created inside a host's namespace (:func:`tcpwise.lab.netns.in_netns`) dumps that
namespace's TCP sockets (sock_diag(7)); the dump itself is the shared sock_diag client
(:func:`tcpwise.linux.netlink.dump`), asked for no extensions. Every poll yields a map ``4-tuple -> kernel
state`` and the recorder diffs it against the previous one:

* a tuple that appears -> ``state`` event from its *implied* predecessor: a listener ``CLOSED -> LISTEN``; a
  SYN-queue entry (NEW_SYN_RECV) ``LISTEN -> SYN_RCVD``; a connecting socket ``CLOSED -> SYN_SENT``;
* a tuple whose state changed -> ``state`` event ``from -> to``;
* a tuple that vanished -> ``state`` event ``last -> CLOSED`` (TIME_WAIT expiry, LAST_ACK's final ACK, RST).

Kernel details the recorder smooths over: a passive open is a request sock (state 12, no inode) that is
replaced by a full socket in ESTABLISHED with the same 4-tuple, so both map onto one connection; TIME_WAIT is a
separate ``inet_timewait_sock`` dumped with state 6 (the ``sock:inet_sock_set_state`` tracepoint never reports
it, sock_diag does).

Limits: a state that lasts less than the poll interval is missed. With the lab's 50 ms link delay every state
of the scripted scenarios lasts at least one one-way delay; the executor polls every 2 ms.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from tcpwise.events import Event
from tcpwise.vocab import kernel_state_name

__all__ = ["StateRecorder", "ConnKey"]

ConnKey = tuple[str, int, str, int]  # local addr, local port, remote addr, remote port


def _fmt(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


@dataclass
class StateRecorder:
    host: str
    names: dict[str, str] = field(default_factory=dict)  # address -> host name, for readable conn labels
    last: dict[ConnKey, str] = field(default_factory=dict)
    sock: socket.socket | None = None
    polls: int = 0
    families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)

    def open(self) -> None:
        """Create the sock_diag socket; call inside the host's namespace."""
        from tcpwise.linux.netlink import open_diag_socket

        self.close()
        self.sock = open_diag_socket()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def label(self, key: ConnKey) -> str:
        laddr, lport, raddr, rport = key
        me = f"{self.host}:{lport}"
        if rport == 0:
            return f"{me} (listen)"
        return f"{me}>{self.names.get(raddr, _fmt(raddr, rport))}:{rport}"

    def sample(self) -> dict[ConnKey, str]:
        from tcpwise.linux.netlink import dump, format_addr

        if self.sock is None:
            return {}
        self.polls += 1
        cur: dict[ConnKey, str] = {}
        for s in dump(self.families, sock=self.sock, ext=0):
            key = (format_addr(s.family, s.src), s.sport, format_addr(s.family, s.dst), s.dport)
            cur[key] = kernel_state_name(s.state)
        return cur

    def diff(self, t: float, cur: dict[ConnKey, str]) -> list[Event]:
        """Events for the change from the previous sample to ``cur`` at time ``t``."""
        out: list[Event] = []
        for key, state in cur.items():
            prev = self.last.get(key)
            if prev == state:
                continue
            if prev is None:
                if state == "LISTEN":
                    prev = "CLOSED"
                elif state == "SYN_RCVD" or self._has_listener(key[1], cur):
                    # A passive open is born from the listener (RFC 9293 §3.3.2 LISTEN -> SYN-RECEIVED).
                    prev = "LISTEN"
                else:
                    prev = "CLOSED"
            out.append(
                Event(
                    t=t, host=self.host, kind="state", from_state=prev, to_state=state, conn=self.label(key)
                )
            )
        for key, prev in self.last.items():
            if key not in cur:
                out.append(
                    Event(
                        t=t,
                        host=self.host,
                        kind="state",
                        from_state=prev,
                        to_state="CLOSED",
                        conn=self.label(key),
                    )
                )
        self.last = cur
        return out

    @staticmethod
    def _has_listener(port: int, cur: dict[ConnKey, str]) -> bool:
        return any(k[1] == port and k[3] == 0 and v == "LISTEN" for k, v in cur.items())

    def poll(self, t: float) -> list[Event]:
        return self.diff(t, self.sample())

    def forget_all(self, t: float, reason: str) -> list[Event]:
        """The host crashed: every connection it knew is gone (model: state lost at once)."""
        out = [
            Event(
                t=t,
                host=self.host,
                kind="state",
                from_state=prev,
                to_state="CLOSED",
                conn=self.label(k),
                text=reason,
            )
            for k, prev in self.last.items()
        ]
        self.last = {}
        return out

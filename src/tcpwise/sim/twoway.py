"""A two-way-handshake server: the counterfactual that shows why TCP needs the third segment.

Theory of operation
-------------------
RFC 9293 §3.5: "The principal reason for the three-way handshake is to prevent old duplicate connection
initiations from causing confusion." A server that treated the SYN alone as opening the connection (a
"two-way handshake") could not tell a fresh SYN from a delayed duplicate of an old one, and would commit state —
an accepted socket, a request handled, a greeting sent — for a connection nobody asked for. Its own ISN would also
never be confirmed by the peer: nothing proves the client has seen it.

:class:`TwoWayServer` is an *application policy* on one listening port of a :class:`~tcpwise.sim.core.SimHost`,
attached as a host reaction. When the standard endpoint moves a fresh child from LISTEN to SYN_RCVD, this
policy declares the handshake finished at once: the server's SYN is counted as done (SND.UNA = SND.NXT; a
two-way protocol has no acknowledgement of it to wait for), the child moves to ESTABLISHED and the
application accepts it and, optionally, speaks first (an SMTP/FTP-style greeting). The real endpoint is left
untouched: only connections on the policy's port behave like this, and only in the scenarios that ask for it.
The jump goes through :meth:`Endpoint.open_two_way`, whose trigger (``two-way handshake``) the transition table
marks as model-only, so every diagram of it says what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcpwise.endpoint.events import EndpointEvent, StateChanged
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.sim.core import SimHost
from tcpwise.vocab import AppCall, AppWhy, TcpState

__all__ = ["TwoWayServer"]

S = TcpState


@dataclass
class TwoWayServer:
    host: SimHost
    port: int = 80
    greeting: bytes = b""
    opened: list[tuple[float, int, int]] = field(default_factory=list)  # (time, peer ISN, own ISN)

    def attach(self) -> TwoWayServer:
        self.host.reactions.append(self.react)
        return self

    def react(self, host: SimHost, ep: Endpoint, ev: EndpointEvent, now: float) -> None:
        if type(ev) is not StateChanged or not ep.passive or ep.lport != self.port:
            return
        if ev.new is not S.SYN_RCVD:
            return
        # The two-way rule: the SYN opens the connection (no SYN-ACK retransmissions: our SYN counts as done).
        ep.open_two_way(now)
        self.opened.append((now, ep.irs, ep.iss))
        label = "s" if "s" not in host.socks else f"s{len(self.opened)}"
        host.bind_label(ep, label)
        host.policy[label] = {"on_eof": "", "auto_read": True}
        # The application runs after the kernel has finished with this segment (so the log shows the state
        # change first, then accept()), at the same instant.
        host.sim.at(now, self._serve, ep, now)

    def _serve(self, ep: Endpoint, now: float) -> None:
        host = self.host
        if ep.state is not S.ESTABLISHED:
            return
        host.app(AppCall.ACCEPT, ep, why=AppWhy.TWO_WAY)
        if self.greeting:
            n = ep.send(self.greeting, now)
            host.app(AppCall.SEND, ep, nbytes=n, why=AppWhy.GREETING)
        host.after_call()

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
The model borrows the table's SYN_RCVD -> ESTABLISHED edge for the jump, because the transition table knows
no two-way edge (and should not).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcpwise.endpoint.events import EndpointEvent, StateChanged
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.sim.core import SimHost
from tcpwise.vocab import TcpState

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
        # The two-way rule: the SYN opens the connection. Nothing will acknowledge our SYN, so stop waiting
        # for it (no SYN-ACK retransmissions) and count it as done.
        ep.snd_una = ep.snd_max
        ep.timers.pop("rto", None)
        ep._set_state(S.ESTABLISHED, "rcv ACK")  # noqa: SLF001 - see the module docstring
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
        host.app("accept() returns (two-way: the SYN alone opened it)", ep)
        if self.greeting:
            n = ep.send(self.greeting, now)
            host.app(f"send({n}) greeting", ep)
        host.after_call(ep)

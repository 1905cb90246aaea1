"""The one transition table of the TCP connection state machine (RFC 9293 §3.3.2, Figure 5, plus the Linux
behaviours the "linux" profile follows).

Every state change an :class:`~tcpwise.endpoint.tcb.Endpoint` makes goes through ``Endpoint._set_state(new,
trigger)``, which looks ``(old, trigger)`` up here and treats a miss as a bug — so this table is complete by
construction, and docs/tests can draw the diagram from it. Segment processing itself follows the RFC's
procedural "SEGMENT ARRIVES" text (§3.10.7), which does not fit a table; it only *names* its triggers here.

Triggers: user calls ``connect() listen() close() shutdown() abort()``; segments ``rcv SYN``, ``rcv SYN+ACK``,
``rcv ACK`` (acknowledging our SYN or FIN), ``rcv FIN``, ``rcv RST``; timers ``timeout`` (retransmission or
keepalive gave up), ``timer time_wait``, ``timer fin_wait_2``; and two Linux ones: ``rcv data after close``
(an orphaned socket answers new data with RST) and ``rcv SYN new incarnation`` (TIME_WAIT yields to a new SYN).
"""

from __future__ import annotations

from tcpwise.vocab import TcpState

__all__ = ["TRANSITIONS", "TRIGGERS"]

S = TcpState

TRANSITIONS: dict[tuple[TcpState, str], TcpState] = {
    # --- opening (§3.5) -------------------------------------------------------------------------------------
    (S.CLOSED, "connect()"): S.SYN_SENT,
    (S.CLOSED, "listen()"): S.LISTEN,
    (S.LISTEN, "rcv SYN"): S.SYN_RCVD,  # a child TCB of the listener (the SYN queue entry)
    (S.LISTEN, "close()"): S.CLOSED,
    (S.LISTEN, "abort()"): S.CLOSED,
    (S.SYN_SENT, "rcv SYN+ACK"): S.ESTABLISHED,
    (S.SYN_SENT, "rcv SYN"): S.SYN_RCVD,  # simultaneous open (§3.5, Figure 7)
    (S.SYN_SENT, "rcv RST"): S.CLOSED,  # connection refused
    (S.SYN_SENT, "close()"): S.CLOSED,
    (S.SYN_SENT, "abort()"): S.CLOSED,
    (S.SYN_SENT, "timeout"): S.CLOSED,
    (S.SYN_RCVD, "rcv ACK"): S.ESTABLISHED,
    (
        S.SYN_RCVD,
        "rcv SYN+ACK",
    ): S.ESTABLISHED,  # simultaneous open: the peer's SYN-ACK (RFC 793 Fig. 8, Linux)
    (S.SYN_RCVD, "rcv RST"): S.CLOSED,
    (S.SYN_RCVD, "close()"): S.FIN_WAIT_1,
    (S.SYN_RCVD, "abort()"): S.CLOSED,
    (S.SYN_RCVD, "timeout"): S.CLOSED,
    # --- data transfer ------------------------------------------------------------------------------------
    (S.ESTABLISHED, "close()"): S.FIN_WAIT_1,
    (S.ESTABLISHED, "shutdown()"): S.FIN_WAIT_1,
    (S.ESTABLISHED, "rcv FIN"): S.CLOSE_WAIT,
    (S.ESTABLISHED, "rcv RST"): S.CLOSED,
    (S.ESTABLISHED, "abort()"): S.CLOSED,
    (S.ESTABLISHED, "timeout"): S.CLOSED,
    # --- active close (§3.6) ------------------------------------------------------------------------------
    (S.FIN_WAIT_1, "rcv ACK"): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, "rcv FIN"): S.CLOSING,  # simultaneous close (Figure 13)
    (S.FIN_WAIT_1, "rcv RST"): S.CLOSED,
    (S.FIN_WAIT_1, "abort()"): S.CLOSED,
    (S.FIN_WAIT_1, "timeout"): S.CLOSED,
    (S.FIN_WAIT_1, "rcv data after close"): S.CLOSED,
    (S.FIN_WAIT_2, "rcv FIN"): S.TIME_WAIT,
    (S.FIN_WAIT_2, "timer fin_wait_2"): S.CLOSED,  # orphan timeout, net.ipv4.tcp_fin_timeout
    (S.FIN_WAIT_2, "rcv RST"): S.CLOSED,
    (S.FIN_WAIT_2, "abort()"): S.CLOSED,
    (S.FIN_WAIT_2, "rcv data after close"): S.CLOSED,
    (S.FIN_WAIT_2, "timeout"): S.CLOSED,
    (S.CLOSING, "rcv ACK"): S.TIME_WAIT,
    (S.CLOSING, "rcv RST"): S.CLOSED,
    (S.CLOSING, "abort()"): S.CLOSED,
    (S.CLOSING, "timeout"): S.CLOSED,
    (S.TIME_WAIT, "timer time_wait"): S.CLOSED,  # 2*MSL; Linux TCP_TIMEWAIT_LEN = 60 s
    (S.TIME_WAIT, "rcv RST"): S.CLOSED,  # Linux default tcp_rfc1337=0: RST kills TIME_WAIT (RFC 1337 hazard)
    (S.TIME_WAIT, "rcv SYN new incarnation"): S.CLOSED,  # RFC 9293 §3.10.7.4 / RFC 6191, Linux TCP_TW_SYN
    (S.TIME_WAIT, "abort()"): S.CLOSED,
    # --- passive close ------------------------------------------------------------------------------------
    (S.CLOSE_WAIT, "close()"): S.LAST_ACK,
    (S.CLOSE_WAIT, "shutdown()"): S.LAST_ACK,
    (S.CLOSE_WAIT, "rcv RST"): S.CLOSED,
    (S.CLOSE_WAIT, "abort()"): S.CLOSED,
    (S.CLOSE_WAIT, "timeout"): S.CLOSED,
    (S.LAST_ACK, "rcv ACK"): S.CLOSED,
    (S.LAST_ACK, "rcv RST"): S.CLOSED,
    (S.LAST_ACK, "abort()"): S.CLOSED,
    (S.LAST_ACK, "timeout"): S.CLOSED,
}

TRIGGERS: frozenset[str] = frozenset(t for (_, t) in TRANSITIONS)

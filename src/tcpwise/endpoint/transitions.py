"""The one transition table of the TCP connection state machine (RFC 9293 §3.3.2, Figure 5, plus the Linux
behaviours the "linux" profile follows and two model-only variants).

Every state change an :class:`~tcpwise.endpoint.tcb.Endpoint` or a
:class:`~tcpwise.endpoint.listener.Listener` makes goes through :func:`check`, keyed by ``(old state,
Trigger)``; a miss is a bug and raises at once — so this table is complete by construction, the cause logged
with every change is one the table names, and docs/tests can draw the diagram from it. Segment processing
itself follows the RFC's procedural "SEGMENT ARRIVES" text (§3.10.7), which does not fit a table; it only
*names* its triggers here (h11 keeps its event-triggered transitions the same way).

The triggers are :class:`tcpwise.vocab.Trigger` members: user calls, segment arrivals, timers, and the causes
only Linux or a model-only variant has (each commented where it is used).
"""

from __future__ import annotations

from tcpwise.vocab import TcpState, Trigger

__all__ = ["TRANSITIONS", "TRIGGERS", "IllegalTransition", "check"]

S = TcpState
T = Trigger

# States whose close() with unread received data sends RST at once on Linux (tcp_close: "data was lost").
_CLOSE_UNREAD_FROM = (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK)

TRANSITIONS: dict[tuple[TcpState, Trigger], TcpState] = {
    # --- opening (§3.5) -------------------------------------------------------------------------------------
    (S.CLOSED, T.CONNECT): S.SYN_SENT,
    (S.CLOSED, T.LISTEN): S.LISTEN,
    (S.LISTEN, T.RCV_SYN): S.SYN_RCVD,  # a child TCB of the listener (the SYN queue entry)
    (S.LISTEN, T.CLOSE): S.CLOSED,
    (S.LISTEN, T.ABORT): S.CLOSED,
    (S.SYN_SENT, T.RCV_SYN_ACK): S.ESTABLISHED,
    (S.SYN_SENT, T.RCV_SYN): S.SYN_RCVD,  # simultaneous open (§3.5, Figure 7)
    (S.SYN_SENT, T.RCV_RST): S.CLOSED,  # connection refused
    (S.SYN_SENT, T.CLOSE): S.CLOSED,
    (S.SYN_SENT, T.SHUTDOWN): S.CLOSED,  # §3.10.4: a CLOSE in SYN-SENT deletes the TCB; shutdown(2) likewise
    (S.SYN_SENT, T.ABORT): S.CLOSED,
    (S.SYN_SENT, T.TIMEOUT): S.CLOSED,
    (S.SYN_RCVD, T.RCV_ACK): S.ESTABLISHED,
    (
        S.SYN_RCVD,
        T.RCV_SYN_ACK,
    ): S.ESTABLISHED,  # simultaneous open: the peer's SYN-ACK (RFC 793 Fig. 8, Linux)
    (S.SYN_RCVD, T.TWO_WAY): S.ESTABLISHED,  # model-only counterfactual: a two-way handshake (why-three)
    (S.SYN_RCVD, T.RCV_RST): S.CLOSED,
    (S.SYN_RCVD, T.CLOSE): S.FIN_WAIT_1,  # §3.10.4: FIN once the queued sends are out
    (S.SYN_RCVD, T.ABORT): S.CLOSED,
    (S.SYN_RCVD, T.TIMEOUT): S.CLOSED,
    (S.SYN_RCVD, T.LISTENER_CLOSED): S.CLOSED,
    # --- data transfer ------------------------------------------------------------------------------------
    (S.ESTABLISHED, T.CLOSE): S.FIN_WAIT_1,
    (S.ESTABLISHED, T.SHUTDOWN): S.FIN_WAIT_1,  # also a shutdown() queued in SYN_RCVD, sent once established
    (S.ESTABLISHED, T.RCV_FIN): S.CLOSE_WAIT,
    (S.ESTABLISHED, T.RCV_RST): S.CLOSED,
    (S.ESTABLISHED, T.ABORT): S.CLOSED,
    (S.ESTABLISHED, T.TIMEOUT): S.CLOSED,
    (S.ESTABLISHED, T.LISTENER_CLOSED): S.CLOSED,  # in the accept queue when its listener closed
    # --- active close (§3.6) ------------------------------------------------------------------------------
    (S.FIN_WAIT_1, T.RCV_ACK): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, T.RCV_FIN): S.CLOSING,  # simultaneous close (Figure 13)
    (S.FIN_WAIT_1, T.RCV_RST): S.CLOSED,
    (S.FIN_WAIT_1, T.ABORT): S.CLOSED,
    (S.FIN_WAIT_1, T.TIMEOUT): S.CLOSED,
    (S.FIN_WAIT_1, T.RCV_DATA_AFTER_CLOSE): S.CLOSED,
    (S.FIN_WAIT_2, T.RCV_FIN): S.TIME_WAIT,
    (S.FIN_WAIT_2, T.TIMER_FIN_WAIT_2): S.CLOSED,  # orphan timeout, net.ipv4.tcp_fin_timeout
    (S.FIN_WAIT_2, T.RCV_RST): S.CLOSED,
    (S.FIN_WAIT_2, T.ABORT): S.CLOSED,
    (S.FIN_WAIT_2, T.RCV_DATA_AFTER_CLOSE): S.CLOSED,
    (S.FIN_WAIT_2, T.TIMEOUT): S.CLOSED,
    (S.CLOSING, T.RCV_ACK): S.TIME_WAIT,
    (S.CLOSING, T.RCV_RST): S.CLOSED,
    (S.CLOSING, T.ABORT): S.CLOSED,
    (S.CLOSING, T.TIMEOUT): S.CLOSED,
    (S.TIME_WAIT, T.TIMER_TIME_WAIT): S.CLOSED,  # 2*MSL; Linux TCP_TIMEWAIT_LEN = 60 s
    (S.TIME_WAIT, T.NO_TIME_WAIT): S.CLOSED,  # model-only: time_wait=0 forgets the connection at once
    (S.TIME_WAIT, T.RCV_RST): S.CLOSED,  # Linux default tcp_rfc1337=0: RST kills TIME_WAIT (RFC 1337 hazard)
    (S.TIME_WAIT, T.RCV_SYN_NEW_INCARNATION): S.CLOSED,  # RFC 9293 §3.10.7.4 / RFC 6191, Linux TCP_TW_SYN
    (S.TIME_WAIT, T.REUSE_TIME_WAIT): S.CLOSED,  # tcp_tw_reuse: an outgoing connect() takes the 4-tuple
    (S.TIME_WAIT, T.ABORT): S.CLOSED,
    # --- passive close ------------------------------------------------------------------------------------
    (S.CLOSE_WAIT, T.CLOSE): S.LAST_ACK,
    (S.CLOSE_WAIT, T.SHUTDOWN): S.LAST_ACK,
    (S.CLOSE_WAIT, T.RCV_RST): S.CLOSED,
    (S.CLOSE_WAIT, T.ABORT): S.CLOSED,
    (S.CLOSE_WAIT, T.TIMEOUT): S.CLOSED,
    (S.CLOSE_WAIT, T.LISTENER_CLOSED): S.CLOSED,
    (S.LAST_ACK, T.RCV_ACK): S.CLOSED,
    (S.LAST_ACK, T.RCV_RST): S.CLOSED,
    (S.LAST_ACK, T.ABORT): S.CLOSED,
    (S.LAST_ACK, T.TIMEOUT): S.CLOSED,
}
for _st in _CLOSE_UNREAD_FROM:
    TRANSITIONS[(_st, T.CLOSE_UNREAD)] = S.CLOSED

TRIGGERS: frozenset[Trigger] = frozenset(t for (_, t) in TRANSITIONS)


class IllegalTransition(AssertionError):
    """A state change the table does not allow: always a bug in tcpwise, never the peer's or the caller's fault
    (peer input is dropped or answered, caller misuse raises LocalProtocolError before any state changes)."""


def check(old: TcpState, trigger: Trigger, new: TcpState) -> None:
    """Raise :class:`IllegalTransition` unless ``old --trigger--> new`` is in the table."""
    if TRANSITIONS.get((old, trigger)) is not new:
        raise IllegalTransition(f"transition {old} --{trigger}--> {new} is not in the table (bug)")

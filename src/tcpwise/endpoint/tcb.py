"""A sans-IO TCP endpoint: one transmission control block (RFC 9293 §3.3.1) and everything that happens to it.

Theory of operation
-------------------
Read RFC 9293 §3.10 ("Event Processing") first: this module follows its structure. The endpoint is driven by
three kinds of input, each taking the current time ``now`` (seconds, supplied by the caller — there is no clock,
socket, thread or randomness in here):

* user calls: :meth:`connect`, :meth:`send`, :meth:`recv`, :meth:`shutdown`, :meth:`close`, :meth:`abort`
  (passive opens are made by :class:`~tcpwise.endpoint.listener.Listener`);
* :meth:`receive` of a segment addressed to this connection;
* :meth:`handle_timer` when :meth:`get_timer` says a deadline has come.

Output is pulled (aioquic style): :meth:`segments_to_send` returns the segments to put on the wire now and
:meth:`next_event` the events for the application. State changes go through :meth:`_set_state`, which checks
them against the one table in :mod:`tcpwise.endpoint.transitions` and logs the :class:`~tcpwise.vocab.Trigger`
that caused them; ``state`` itself is read-only from outside.

An endpoint owned by a :class:`~tcpwise.endpoint.stack.TcpStack` tells its stack itself whenever a user call
may have produced output or moved a deadline (:meth:`attach`), so no caller has to remember to.

The "linux" profile (default) follows the kernel where it deviates from the RFC; each such place says so and
docs/deviations.md lists them with evidence.

Not implemented (honestly): SACK-based recovery (SACK-permitted may be offered, blocks are ignored), urgent
data, Nagle, IP options, PMTU discovery. Congestion control is RFC 5681 slow start / congestion avoidance with
fast retransmit and fast recovery, NewReno partial ACKs (RFC 6582) and Limited Transmit (RFC 3042).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tcpwise.endpoint.config import EndpointConfig
from tcpwise.endpoint.events import (
    Closed,
    Connected,
    ConnectionError,
    DataReceived,
    EndOfStream,
    EndpointEvent,
    StateChanged,
    TimerFired,
)
from tcpwise.endpoint.rto import RttEstimator, linux_retrans_timeout
from tcpwise.endpoint.timers import EPSILON, Timers
from tcpwise.endpoint.transitions import check
from tcpwise.vocab import ACK, FIN, PSH, RST, SYN, TcpState, TimerName, Trigger
from tcpwise.wire.segment import (
    MssOption,
    NopOption,
    SackOption,
    SackPermittedOption,
    TcpOption,
    TcpSegment,
    TimestampsOption,
    WindowScaleOption,
)
from tcpwise.wire.seq import seq_add, seq_between, seq_diff, seq_ge, seq_gt, seq_le, seq_lt

__all__ = ["Endpoint", "LocalProtocolError"]

S = TcpState
T = Trigger
TN = TimerName
_SYNCHRONIZED = frozenset(
    {S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT}
)
# States in which our FIN has been sent (and so no new data may be queued).
_FIN_QUEUED_STATES = frozenset({S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSING, S.TIME_WAIT, S.LAST_ACK})
_RECEIVING = frozenset({S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2})
DEFAULT_MSS = 536  # RFC 9293 §3.7.1: assume 536 when the peer sends no MSS option
# Linux TCP_TIMEOUT_MIN is 2 jiffies (8 ms at Debian's HZ=250); with the timer wheel's rounding the timer it arms
# fires 16 ms later, measured in why-three.
TCP_TIMEOUT_MIN = 0.016


class LocalProtocolError(Exception):
    """The caller asked for something the state does not allow (h11's LocalProtocolError): raised at once,
    nothing changes. Message names the state and the call."""


class Endpoint:
    """One TCP connection's TCB. Create with :meth:`Endpoint.active` (connect) or via a Listener."""

    __slots__ = (
        "cfg",
        "laddr",
        "lport",
        "raddr",
        "rport",
        "label",
        "serial",
        "_state",
        "_notify",
        "passive",
        "orphan",
        "rd_shut",
        # send sequence space (§3.3.1)
        "iss",
        "snd_una",
        "snd_nxt",
        "snd_max",
        "snd_wnd",
        "snd_wl1",
        "snd_wl2",
        "max_snd_wnd",
        "snd_buf",
        "snd_buf_seq",
        "fin_queued",
        "fin_trigger",
        "data_end",
        # receive sequence space
        "irs",
        "rcv_nxt",
        "rcv_data",
        "ooo",
        "fin_seq",
        "rcv_adv",
        "last_ack_sent",
        # options
        "eff_mss",
        "ts_ok",
        "ts_recent",
        "ts_recent_stamp",
        "ts_offset",
        "snd_wscale",
        "rcv_wscale",
        "ws_ok",
        "sack_ok",
        "rcv_ssthresh",
        "window_clamp",
        "rcv_mss",
        "dsack",
        "ooo_order",
        # timers and retransmission
        "timers",
        "time_wait_since",
        "rtt",
        "rtt_seq",
        "rtt_time",
        "retransmits",
        "una_since",
        "head_tx",
        "retrans_stamp",
        "tail_seq",
        "tlp_high_seq",
        "recovery_point",
        "cwnd",
        "ssthresh",
        "dupacks",
        "recover",
        "ka_probes",
        "last_rcv",
        "persist_probes",
        "challenge_count",
        "challenge_window",
        # output
        "_out",
        "_events",
        "ack_pending",
        "error",
    )

    def __init__(
        self,
        cfg: EndpointConfig,
        laddr: str,
        lport: int,
        raddr: str,
        rport: int,
        iss: int,
        now: float,
        *,
        ts_offset: int = 0,
        passive: bool = False,
    ) -> None:
        self.cfg = cfg
        self.laddr, self.lport, self.raddr, self.rport = laddr, lport, raddr, rport
        self.label = f"{laddr}:{lport}>{raddr}:{rport}"
        self.serial = 0  # creation order within the owning stack: the tie-breaker for equal deadlines
        # Birth state: an active opener starts CLOSED; a listener's child is a copy of the listening TCB
        # (RFC 9293 §3.10.7.2: the SYN is processed "in the LISTEN state"), so it starts in LISTEN. After birth
        # only _set_state writes the state.
        self._state = S.LISTEN if passive else S.CLOSED
        self._notify: Callable[[Endpoint], None] | None = None
        self.passive = passive
        self.orphan = False  # the application has close()d: nobody will read or write any more
        self.rd_shut = False
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss  # highest sequence number sent + 1 (what an ACK may acknowledge)
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.snd_buf = bytearray()  # unacknowledged + unsent data; snd_buf[0] has sequence number snd_buf_seq
        self.snd_buf_seq = seq_add(iss, 1)
        self.fin_queued = False
        self.fin_trigger = (
            T.CLOSE
        )  # what queued the FIN (close() or shutdown()), for the log once it goes out
        self.data_end = seq_add(iss, 1)  # sequence number after the last queued data byte (= our FIN's seq)
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_data = bytearray()  # in-order data the application has not read yet
        self.ooo: dict[int, bytes] = {}  # out-of-order segments waiting for the hole to fill (seq -> data)
        self.fin_seq: int | None = None  # sequence number of a FIN seen out of order
        self.rcv_adv = 0
        self.last_ack_sent = 0  # RFC 7323 §4.3 Last.ACK.sent: the ACK field of the last segment we sent
        self.eff_mss = DEFAULT_MSS
        self.ts_ok = False
        self.ts_recent = 0  # RFC 7323 §4.3 TS.Recent: the TSval to echo
        self.ts_recent_stamp = (
            now  # when TS.Recent was last updated (Linux ts_recent_stamp; tw_reuse needs it)
        )
        self.ts_offset = ts_offset
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.ws_ok = False  # both SYNs carried the window scale option (RFC 7323 §2.2)
        self.sack_ok = False
        # Linux receive-window state (tcp_select_window): the slow-start threshold of the advertised window, its
        # clamp, and the estimate of the peer's segment size (icsk_ack.rcv_mss, tcp_initialize_rcv_mss).
        self.rcv_ssthresh = cfg.rcv_buf
        self.window_clamp = cfg.rcv_buf
        self.rcv_mss = min(DEFAULT_MSS, cfg.mss)
        self.dsack: tuple[int, int] | None = (
            None  # RFC 2883 D-SACK block for the next ACK (a duplicate arrived)
        )
        self.ooo_order: list[int] = []  # out-of-order segment starts, most recent last (SACK block order)
        self.timers = Timers()
        self.time_wait_since: float | None = None
        self.rtt = RttEstimator(cfg.rto_initial, cfg.rto_min, cfg.rto_max, linux=cfg.profile == "linux")
        self.rtt_seq: int | None = None
        self.rtt_time = 0.0
        self.retransmits = 0
        self.una_since = now  # when the oldest unacknowledged data was (first) sent: user timeout, retries2
        # When the segment at SND.UNA was last (re)transmitted (Linux: the head skb's stamp).
        self.head_tx = now
        # Linux retrans_stamp: when the first RTO retransmission went out (the give-up clock, see _retrans_start).
        self.retrans_stamp: float | None = None
        self.tail_seq = seq_add(iss, 1)  # where the last new segment sent starts (what a loss probe resends)
        self.tlp_high_seq: int | None = None  # RFC 8985 TLP: SND.NXT when the one outstanding probe went out
        # SND.MAX when loss recovery began (no loss probe until it is acknowledged).
        self.recovery_point: int | None = None
        self.cwnd = 10 * cfg.mss  # RFC 6928 initial window (Linux default)
        self.ssthresh = 1 << 30
        self.dupacks = 0
        # RFC 6582 "recover": SND.MAX when fast recovery began (None: not in fast recovery).
        self.recover: int | None = None
        self.ka_probes = 0
        self.last_rcv = now
        self.persist_probes = 0
        self.challenge_count = 0
        self.challenge_window = -1
        self._out: list[TcpSegment] = []
        self._events: deque[EndpointEvent] = deque()
        self.ack_pending = False
        self.error: str | None = None

    # =====================================================================================================
    # Construction
    # =====================================================================================================
    @classmethod
    def active(
        cls,
        cfg: EndpointConfig,
        laddr: str,
        lport: int,
        raddr: str,
        rport: int,
        iss: int,
        now: float,
        *,
        ts_offset: int = 0,
    ) -> Endpoint:
        """connect(): CLOSED -> SYN_SENT, SYN queued (RFC 9293 §3.10.1 OPEN call, active)."""
        ep = cls(cfg, laddr, lport, raddr, rport, iss, now, ts_offset=ts_offset)
        ep.snd_nxt = seq_add(iss, 1)
        ep.snd_max = ep.snd_nxt
        ep._set_state(S.SYN_SENT, T.CONNECT)
        ep._out.append(ep._syn_segment(now, ack=False))
        ep.rtt_seq, ep.rtt_time = ep.snd_nxt, now  # the handshake gives the first RTT sample
        ep._arm_rto(now)
        return ep

    @classmethod
    def passive_from_syn(
        cls,
        cfg: EndpointConfig,
        laddr: str,
        lport: int,
        raddr: str,
        rport: int,
        iss: int,
        syn: TcpSegment,
        now: float,
        *,
        ts_offset: int = 0,
        send_synack: bool = True,
    ) -> Endpoint:
        """A listener's child for an arriving SYN: LISTEN -> SYN_RCVD, SYN-ACK queued (§3.10.7.2)."""
        ep = cls(cfg, laddr, lport, raddr, rport, iss, now, ts_offset=ts_offset, passive=True)
        ep._take_syn(syn, now)
        ep.snd_nxt = seq_add(iss, 1)
        ep.snd_max = ep.snd_nxt
        ep._set_state(S.SYN_RCVD, T.RCV_SYN)
        if send_synack:
            ep._out.append(ep._syn_segment(now, ack=True))
            ep.rtt_seq, ep.rtt_time = ep.snd_nxt, now
            ep._arm_rto(now)
        return ep

    # =====================================================================================================
    # The owner contract
    # =====================================================================================================
    @property
    def state(self) -> TcpState:
        return self._state

    def attach(self, notify: Callable[[Endpoint], None], serial: int) -> None:
        """Called once by the owning stack: ``notify(self)`` after every user call, so the stack collects the
        output and re-files the deadline without the caller's help; ``serial`` orders equal deadlines."""
        self._notify = notify
        self.serial = serial

    def _changed(self) -> None:
        if self._notify is not None:
            self._notify(self)

    # =====================================================================================================
    # User calls (RFC 9293 §3.10.1 - §3.10.6)
    # =====================================================================================================
    def send(self, data: bytes, now: float) -> int:
        """Queue data (SEND call, §3.10.2). Returns bytes accepted (bounded by the send buffer).
        Raises LocalProtocolError after shutdown()/close() or on a dead connection."""
        if self.state in (S.CLOSED, S.LISTEN) or self.fin_queued or self.state in _FIN_QUEUED_STATES:
            raise LocalProtocolError(f"send() in state {self.state}: connection is closing or closed")
        room = max(0, self.cfg.snd_buf - len(self.snd_buf))
        chunk = bytes(data[:room])
        self.snd_buf += chunk
        self.data_end = seq_add(self.data_end, len(chunk))
        self._changed()
        return len(chunk)

    def recv(self, max_bytes: int = 1 << 30) -> bytes:
        """Read in-order data (RECEIVE call, §3.10.3); b"" when none is buffered. Reading opens the window."""
        n = min(max_bytes, len(self.rcv_data))
        data = bytes(self.rcv_data[:n])
        del self.rcv_data[:n]
        if n and self.state in _SYNCHRONIZED and self._read_opens_window():
            self.ack_pending = True
            self._changed()
        return data

    def _read_opens_window(self) -> bool:
        """Does the read that just freed buffer space deserve a window-update ACK of its own?"""
        if self.cfg.profile != "linux":
            # RFC 9293 §3.8.6.2.2 receiver-side SWS avoidance: update once the window has opened by a full MSS
            # or half the buffer.
            return self._rcv_window() - self.rcv_adv >= min(self.eff_mss, self.cfg.rcv_buf // 2)
        # Linux tcp_cleanup_rbuf: only when what is left of the advertised window has fallen to half the window
        # clamp or less, and the window we would now advertise is at least twice that ("raised significantly").
        # Never once the peer's FIN is in: no more data will come (RCV_SHUTDOWN).
        if self.state not in _RECEIVING or self.rd_shut:
            return False
        left = self._window_left()
        if 2 * left > self.window_clamp:
            return False
        new = self._linux_window()
        return new > 0 and new >= 2 * left

    @property
    def readable(self) -> int:
        """Bytes received in order and not read yet (what FIONREAD / SIOCINQ reports)."""
        return len(self.rcv_data)

    @property
    def send_queue(self) -> int:
        """Bytes written and not yet acknowledged, sent or not (what SIOCOUTQ reports)."""
        return len(self.snd_buf)

    def shutdown(self, now: float) -> None:
        """shutdown(SHUT_WR): send FIN after queued data, keep receiving (half-close, §3.6)."""
        st = self.state
        if st in (S.ESTABLISHED, S.CLOSE_WAIT):
            self.fin_queued = True
            self._set_state(S.FIN_WAIT_1 if st is S.ESTABLISHED else S.LAST_ACK, T.SHUTDOWN)
        elif st is S.SYN_SENT:
            self._set_state(S.CLOSED, T.SHUTDOWN)  # nothing was sent but the SYN: the TCB goes (§3.10.4)
        elif st is S.SYN_RCVD and not self.fin_queued:
            # §3.10.4: "queue for processing after entering ESTABLISHED state"; the FIN goes out then, and the
            # log names shutdown() as its cause.
            self.fin_queued = True
            self.fin_trigger = T.SHUTDOWN
        # In any other state the write side is already shut: nothing to do (like shutdown(2) on Linux).
        self._changed()

    def close(self, now: float) -> None:
        """CLOSE call (§3.10.4). Linux profile: unread received data -> RST instead of FIN (RFC 2525 §2.17,
        RFC 9293 §3.6 allows it; net/ipv4/tcp.c __tcp_close)."""
        st = self.state
        if st is S.CLOSED:
            raise LocalProtocolError("close() on a CLOSED connection")
        self.orphan = True
        self.rd_shut = True
        self._close_in(st, now)
        self._changed()

    def _close_in(self, st: TcpState, now: float) -> None:
        if self.cfg.profile == "linux" and self.rcv_data and st in _SYNCHRONIZED and st is not S.TIME_WAIT:
            self.rcv_data.clear()
            self._send_rst_abort(now, "close() with unread data")
            self._set_state(S.CLOSED, T.CLOSE_UNREAD)
            return
        if st in (S.LISTEN, S.SYN_SENT):
            self._set_state(S.CLOSED, T.CLOSE)
        elif st is S.SYN_RCVD and self.passive:
            # A passive child still in the SYN queue has no application yet; an application close() of it
            # (only reachable through a listener reset) sends FIN once established, as RFC 9293 §3.10.4 says.
            self.fin_queued = True
            self._set_state(S.FIN_WAIT_1, T.CLOSE)
        elif st is S.SYN_RCVD:
            # Simultaneous open: our SYN is out and the handshake not finished. §3.10.4: "If no SENDs have been
            # issued and there is no pending data to send, then form a FIN segment and send it, and enter
            # FIN-WAIT-1 state".
            self.fin_queued = True
            self._set_state(S.FIN_WAIT_1, T.CLOSE)
        elif st is S.ESTABLISHED:
            self.fin_queued = True
            self._set_state(S.FIN_WAIT_1, T.CLOSE)
        elif st is S.CLOSE_WAIT:
            self.fin_queued = True
            self._set_state(S.LAST_ACK, T.CLOSE)
        elif st is S.FIN_WAIT_2:
            # Already shut for writing; now orphaned: the FIN_WAIT_2 orphan timer applies (tcp_fin_timeout).
            self.timers.arm(TN.FIN_WAIT_2, now + self.cfg.fin_timeout)
        # FIN_WAIT_1, CLOSING, LAST_ACK, TIME_WAIT: the FIN is already on its way.

    def abort(self, now: float, trigger: Trigger = T.ABORT) -> None:
        """ABORT (§3.10.5), i.e. close() with SO_LINGER {1, 0}: send RST, drop everything, no TIME_WAIT.
        ``trigger`` is LISTENER_CLOSED when the stack resets the children of a listener being closed (Linux
        inet_csk_listen_stop)."""
        st = self.state
        if st is S.CLOSED:
            return
        self.orphan = True
        if st in (S.SYN_RCVD, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT):
            self._send_rst_abort(now, str(trigger))
        self.snd_buf.clear()
        self._set_state(S.CLOSED, trigger)
        self._changed()

    def yield_to_new_syn(self) -> None:
        """TIME_WAIT gives way to a new incarnation's SYN (RFC 9293 §3.10.7.4 note, RFC 6191; Linux
        tcp_timewait_state_process -> TCP_TW_SYN). The stack checks the SYN is acceptable first."""
        self._set_state(S.CLOSED, T.RCV_SYN_NEW_INCARNATION)

    def reuse_time_wait(self) -> None:
        """tcp_tw_reuse: a new outgoing connection takes this TIME_WAIT 4-tuple over (Linux tcp_twsk_unique);
        the stack checks that it is allowed first (:meth:`TcpStack._tw_reusable`)."""
        self._set_state(S.CLOSED, T.REUSE_TIME_WAIT)

    def open_two_way(self, now: float) -> None:
        """Model-only counterfactual for why-three: declare the handshake done on the SYN alone. Nothing will
        acknowledge our SYN, so it counts as acknowledged and its retransmission timer stops."""
        if self.state is not S.SYN_RCVD:
            raise LocalProtocolError(f"open_two_way() in state {self.state}")
        self.snd_una = self.snd_max
        self.timers.disarm(TN.RTO)
        self.timers.disarm(TN.LOSS_PROBE)
        self._set_state(S.ESTABLISHED, T.TWO_WAY)
        self._changed()

    # =====================================================================================================
    # Output
    # =====================================================================================================
    def segments_to_send(self, now: float) -> list[TcpSegment]:
        """Everything to transmit now: queued control segments, new data the windows allow, FIN, ACK."""
        if self.state in _SYNCHRONIZED and self.state is not S.TIME_WAIT:
            self._transmit(now)
        if self.ack_pending:
            self.ack_pending = False
            if self.state in _SYNCHRONIZED or self.state is S.SYN_RCVD:
                # SEQ = the highest sequence number sent: after a go-back-N retransmission SND.NXT was pulled
                # back, and a pure ACK carrying that old number would fail the peer's acceptability test (its
                # ACK field ignored): both sides could then retransmit forever. Linux never moves snd_nxt back.
                self._out.append(self._seg(ACK, self.snd_max, now))
        out, self._out = self._out, []
        return out

    def next_event(self) -> EndpointEvent | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[EndpointEvent]:
        evs = list(self._events)
        self._events.clear()
        return evs

    def get_timer(self) -> float | None:
        """Earliest deadline of any armed timer (None when nothing is pending)."""
        return self.timers.earliest()

    # =====================================================================================================
    # Timers
    # =====================================================================================================
    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline has passed, in the fixed order of :class:`TimerName` (a handler may
        disarm a later timer, e.g. entering TIME_WAIT stops the others, so each is looked at when its turn
        comes)."""
        timers = self.timers
        for name in TN:
            at = timers.deadline(name)
            if at is None or at > now + EPSILON:
                continue
            timers.disarm(name)
            self._events.append(TimerFired(name))
            _TIMER_HANDLERS[name](self, now)
            if self.state is S.CLOSED:
                return

    def _retrans_start(self) -> float | None:
        """Where the give-up clock (retries2 budget, TCP_USER_TIMEOUT) starts. RFC 5482 / the rfc profile: when
        the oldest unacknowledged data was sent. Linux (retransmits_timed_out, tcp_clamp_rto_to_user_timeout):
        ``retrans_stamp``, the first RTO retransmission — a tail loss probe does not count — so an established
        connection gives up one RTO (plus the probe) later than the RFC reading; None before it."""
        if self.cfg.profile == "linux" and self.state in _SYNCHRONIZED:
            return self.retrans_stamp
        return self.una_since

    def _arm_rto(self, now: float, at: float | None = None) -> None:
        at = now + self.rtt.current() if at is None else at
        start = self._retrans_start()
        if self.cfg.user_timeout > 0 and self.state in _SYNCHRONIZED and start is not None:
            # Linux tcp_clamp_rto_to_user_timeout: never sleep past the user timeout.
            at = min(at, max(now, start + self.cfg.user_timeout))
        self.timers.disarm(TN.LOSS_PROBE)  # one retransmission timer slot (Linux icsk_pending)
        self.timers.arm(TN.RTO, at)

    # -- tail loss probe (RFC 8985 §7; Linux tcp_schedule_loss_probe / tcp_send_loss_probe) ------------------
    def _tlp_allowed(self) -> bool:
        """Linux probes the tail of a flight only on a SACK connection in the Open state (no loss recovery) with
        something unacknowledged; one probe per episode. The rfc profile keeps plain RTO backoff."""
        return (
            self.cfg.profile == "linux"
            and self.sack_ok
            and self.state in (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK)
            and self.snd_una != self.snd_max
            and self.recovery_point is None
            and self.tlp_high_seq is None
        )

    def _packets_out(self) -> int:
        """Segments in flight: the data bytes in MSS-sized segments; a FIN alone is one more segment."""
        flight = seq_diff(self.snd_max, self.snd_una)
        fin = 1 if self.fin_queued and seq_gt(self.snd_max, self.data_end) else 0
        data = flight - fin
        return -(-data // self.eff_mss) if data > 0 else fin

    def _arm_xmit_timer(self, now: float) -> None:
        """After new data went out or an ACK advanced SND.UNA: the loss probe when allowed, else the RTO. The
        probe timeout is 2*SRTT plus, for a single segment in flight, TCP_RTO_MIN (room for the peer's delayed
        ACK; 2 ms otherwise), 1 s without an RTT sample — and never later than the RTO would fire."""
        if not self._tlp_allowed():
            self._arm_rto(now)
            return
        srtt = self.rtt.srtt
        if srtt is None:
            pto = 1.0
        else:
            pto = 2 * srtt + (self.cfg.rto_min if self._packets_out() == 1 else 0.002)
        at = min(now + pto, self.head_tx + self.rtt.current())
        self.timers.disarm(TN.RTO)
        self.timers.arm(TN.LOSS_PROBE, at)

    def _on_loss_probe(self, now: float) -> None:
        """The probe: new data if the windows allow it, else the last segment sent again (with the FIN when it
        was the FIN). Then the RTO, a full RTO after the head segment's last transmission; no backoff."""
        if self.snd_una == self.snd_max:
            return
        if self.tlp_high_seq is None:
            self.rtt_seq = None  # Karn: a probe makes the timed segment ambiguous
            if self._unsent() and min(self.snd_wnd, self.cwnd) > seq_diff(self.snd_nxt, self.snd_una):
                self._transmit(now, retransmission=True)
            else:
                self._resend_tail(now)
            self.tlp_high_seq = self.snd_max
        self._arm_rto(now, self.head_tx + self.rtt.current())

    def _resend_tail(self, now: float) -> None:
        start = self.tail_seq if seq_gt(self.tail_seq, self.snd_una) else self.snd_una
        fin_sent = self.fin_queued and seq_gt(self.snd_max, self.data_end)
        data_end = self.data_end if fin_sent else self.snd_max
        n = seq_diff(data_end, start) if seq_lt(start, data_end) else 0
        n = min(n, self.eff_mss)
        off = seq_diff(start, self.snd_buf_seq)
        payload = bytes(self.snd_buf[off : off + n]) if n else b""
        flags = ACK | (PSH if n else 0) | (FIN if fin_sent and seq_add(start, n) == self.data_end else 0)
        if start == self.snd_una:
            self.head_tx = now
        self._out.append(self._seg(flags, start, now, payload))

    def _on_time_wait(self, now: float) -> None:
        self._set_state(S.CLOSED, T.TIMER_TIME_WAIT)

    def _on_fin_wait_2(self, now: float) -> None:
        # Linux tcp_fin_timeout: an orphaned FIN_WAIT_2 socket is killed (silently: no RST in the model's view;
        # Linux sends none either unless data arrives).
        if self.state is S.FIN_WAIT_2:
            self._set_state(S.CLOSED, T.TIMER_FIN_WAIT_2)

    def _give_up(self, now: float, why: str) -> None:
        """Retransmission or keepalive gave up (ETIMEDOUT). Linux sends no RST for a timed-out connection
        except tcp_write_err -> tcp_done: none on the wire; the peer, if alive, learns nothing."""
        self._error("ETIMEDOUT", why)
        self._set_state(S.CLOSED, T.TIMEOUT)

    def _retrans_expired(self, now: float) -> bool:
        cfg = self.cfg
        start = self._retrans_start()
        if start is None:
            return False  # Linux: no retransmission yet, nothing has timed out
        elapsed = now - start
        if cfg.user_timeout > 0 and self.state in _SYNCHRONIZED:
            return elapsed >= cfg.user_timeout - 1e-9
        st = self.state
        if st is S.SYN_SENT:
            if cfg.profile == "linux" and cfg.syn_linear_timeouts:
                # Linux 6.x tcp_write_timeout: the linear retries come on top of tcp_syn_retries.
                return self.retransmits >= cfg.syn_retries + cfg.syn_linear_timeouts
            if cfg.profile == "linux":
                return elapsed >= linux_retrans_timeout(cfg.syn_retries, cfg.rto_initial, cfg.rto_max) - 1e-9
            return self.retransmits >= cfg.syn_retries
        if st is S.SYN_RCVD:
            return self.retransmits >= cfg.synack_retries
        limit = cfg.retries2
        if self.orphan and st in (S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK):
            limit = cfg.orphan_retries or 8  # Linux: tcp_orphan_retries=0 means 8
        if cfg.profile == "linux":
            return elapsed >= linux_retrans_timeout(limit, cfg.rto_min, cfg.rto_max) - 1e-9
        return self.retransmits >= limit

    def _on_rto(self, now: float) -> None:
        """Retransmission timeout (RFC 6298 §5.4-5.6): retransmit the earliest unacknowledged segment, back off."""
        if self.snd_una == self.snd_max:
            return  # everything acknowledged meanwhile
        if self._retrans_expired(now):
            self._give_up(
                now, f"no ACK after {self.retransmits} retransmissions ({now - self.una_since:.1f} s)"
            )
            return
        self.retransmits += 1
        if self.retrans_stamp is None:
            self.retrans_stamp = now
        st = self.state
        linear = (
            st is S.SYN_SENT
            and self.cfg.profile == "linux"
            and self.retransmits <= self.cfg.syn_linear_timeouts
        )
        if not linear:
            # Linux 6.x tcp_retransmit_timer: an active open's first tcp_syn_linear_timeouts retransmissions keep
            # the RTO (measured: SYNs at 0, 1, 2, 3, 4, 5, 7, 11, 19 s); everything else doubles it.
            self.rtt.back_off()
        self.rtt_seq = None  # Karn: the timed segment is ambiguous now
        self.recovery_point = self.snd_max  # loss recovery (Linux TCP_CA_Loss): no loss probes until it ends
        self.tlp_high_seq = None
        st = self.state
        if st is S.SYN_SENT:
            self._out.append(self._syn_segment(now, ack=False))
        elif st is S.SYN_RCVD and seq_le(self.snd_una, self.iss):
            self._out.append(self._syn_segment(now, ack=True))
        else:
            # RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS); cwnd = 1 SMSS (loss window).
            self.recover = None  # a timeout ends fast recovery (go-back-N takes over)
            flight = seq_diff(self.snd_max, self.snd_una)
            self.ssthresh = max(flight // 2, 2 * self.eff_mss)
            self.cwnd = self.eff_mss
            self.snd_nxt = self.snd_una  # go back: resend from the first unacknowledged byte
            self._transmit(now, retransmission=True)
        self._arm_rto(now)

    def _on_persist(self, now: float) -> None:
        """Zero-window probe (RFC 9293 §3.8.6.1). Linux sends a segment with SEG.SEQ = SND.UNA - 1 and no data
        (tcp_xmit_probe_skb) which the receiver must ACK with its current window; backoff like the RTO."""
        unsent = self._unsent()
        room = self.snd_wnd - seq_diff(self.snd_nxt, self.snd_una)
        if not unsent or room >= min(unsent, self.eff_mss):
            self._transmit(now)  # the window opened meanwhile (or the data went)
            return
        if room > 0:
            # A window too small for a segment (sender SWS avoidance held it back): probe with as much data as
            # fits, pushed (Linux tcp_write_wakeup); it is new data, timed by the retransmission timer from here.
            n = min(room, self.eff_mss)
            off = seq_diff(self.snd_nxt, self.snd_buf_seq)
            self._emit_new(
                ACK | PSH,
                self.snd_nxt,
                bytes(self.snd_buf[off : off + n]),
                seq_add(self.snd_nxt, n),
                now,
                False,
            )
            self.persist_probes = 0
            self._arm_xmit_timer(now)
            return
        self.persist_probes += 1
        if self.persist_probes > self.cfg.retries2 or (
            self.cfg.user_timeout > 0 and now - self.una_since >= self.cfg.user_timeout
        ):
            self._give_up(now, f"peer window stayed zero for {self.persist_probes} probes")
            return
        self._out.append(self._seg(ACK, seq_add(self.snd_una, -1), now))
        self.rtt.back_off()
        self.timers.arm(TN.PERSIST, now + self.rtt.current())

    def _on_keepalive(self, now: float) -> None:
        """Keepalive (RFC 1122 §4.2.3.6; Linux tcp_keepalive_timer): after keepalive_time idle, a probe with
        SEG.SEQ = SND.NXT - 1 and no data every keepalive_intvl; give up after keepalive_probes unanswered
        (so detection takes time + intvl * probes), or when TCP_USER_TIMEOUT has passed since the last reply."""
        cfg = self.cfg
        if self.state not in (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_2) or not cfg.keepalive:
            return
        if self.snd_una != self.snd_max or self._unsent():
            # Data in flight: the retransmission timer watches the peer instead (tcp_keepalive_timer does the same).
            self.timers.arm(TN.KEEPALIVE, now + cfg.keepalive_time)
            return
        idle = now - self.last_rcv
        if idle < cfg.keepalive_time - 1e-9:
            self.timers.arm(TN.KEEPALIVE, self.last_rcv + cfg.keepalive_time)
            return
        if (cfg.user_timeout > 0 and idle >= cfg.user_timeout and self.ka_probes > 0) or (
            cfg.user_timeout <= 0 and self.ka_probes >= cfg.keepalive_probes
        ):
            if cfg.profile == "linux":
                # tcp_keepalive_timer: tcp_send_active_reset() then tcp_write_err() — a peer that is alive
                # again (or a middlebox) hears that the connection is gone.
                self._send_rst_abort(now, "keepalive timeout")
            self._give_up(now, f"{self.ka_probes} keepalive probes unanswered")
            return
        self._out.append(self._seg(ACK, seq_add(self.snd_max, -1), now))
        self.ka_probes += 1
        self.timers.arm(TN.KEEPALIVE, now + cfg.keepalive_intvl)

    # =====================================================================================================
    # SEGMENT ARRIVES (RFC 9293 §3.10.7)
    # =====================================================================================================
    def receive(self, seg: TcpSegment, now: float) -> None:
        st = self.state
        if st is S.CLOSED:
            return  # the stack answers segments for unknown connections, not a dead TCB
        if st is S.SYN_SENT:
            self._rcv_syn_sent(seg, now)
            return
        if st is S.LISTEN:
            return  # listeners are handled by Listener
        self._rcv_other(seg, now)

    # -- §3.10.7.3 SYN-SENT ------------------------------------------------------------------------------
    def _rcv_syn_sent(self, seg: TcpSegment, now: float) -> None:
        flags = seg.flags
        self.last_rcv = now
        if flags & ACK:
            # First: check the ACK field. Unacceptable: RST (unless the segment is a RST).
            if seq_le(seg.ack, self.iss) or seq_gt(seg.ack, self.snd_max):
                if not flags & RST:
                    self._out.append(self._bare(RST, seg.ack, 0))
                    if self.cfg.profile == "linux" and self.retransmits == 0:
                        # Linux tcp_rcv_synsent_state_process: "Previous FIN/ACK or RST/ACK might be ignored":
                        # before any retransmission the SYN timer is cut to TCP_TIMEOUT_MIN: the SYN goes again
                        # at once (measured 16 ms after the RST in why-three).
                        self.timers.arm(TN.RTO, now + TCP_TIMEOUT_MIN)
                return
        if flags & RST:
            if flags & ACK:  # acceptable ACK + RST: the port is closed
                self._error("ECONNREFUSED", "connection refused (RST in reply to SYN)")
                self._set_state(S.CLOSED, T.RCV_RST)
            return
        if not flags & SYN:
            return
        self._take_syn(seg, now)
        if flags & ACK:
            self._ack_advance(seg.ack, now)
            self._update_window(seg, force=True)
            self._set_state(S.ESTABLISHED, T.RCV_SYN_ACK)
            self._events.append(Connected())
            self.ack_pending = True
            self._start_keepalive(now)
        else:
            # Simultaneous open (§3.5 Figure 7): SYN_RCVD and send SYN,ACK with our ISS.
            self._set_state(S.SYN_RCVD, T.RCV_SYN)
            self.snd_wnd = seg.window
            self._out.append(self._syn_segment(now, ack=True))
            self._arm_rto(now)

    # -- §3.10.7.4 other states -------------------------------------------------------------------------
    def _rcv_other(self, seg: TcpSegment, now: float) -> None:
        flags = seg.flags
        self.last_rcv = now
        self.ka_probes = 0
        if self._simultaneous_synack(seg, now) or self._paws_reject(seg):
            return
        # First: sequence number check (acceptability table).
        if not self._acceptable(seg):
            self._unacceptable(seg, now)
            return
        linux = self.cfg.profile == "linux"
        # RFC 7323 §4.3 (2), §5.3 R3: an acceptable segment updates TS.Recent when its TSval is not older and it
        # starts at or before the left edge of the window we last acknowledged (Last.ACK.sent). Without this every
        # later segment would keep echoing the SYN's TSval, and PAWS and the TIME_WAIT checks would compare against
        # a stale value. Linux (tcp_replace_ts_recent, rcv_wup as Last.ACK.sent) does it only once the segment has
        # passed the RST, SYN and ACK checks (tcp_ack with FLAG_UPDATE_TS_RECENT): see below.
        if self.ts_ok and not flags & RST and not linux:
            self._update_ts_recent(seg, now)
        # Second: RST (RFC 5961 §3.2): exact match resets, in-window gets a challenge ACK.
        if flags & RST:
            if seg.seq == self.rcv_nxt or self.state is S.SYN_RCVD:
                self._on_reset(now)
            else:
                self._challenge_ack(now)
            return
        # Fourth: SYN in a synchronized state (RFC 5961 §4.2): challenge ACK, never a reset.
        if flags & SYN:
            self._rcv_syn_synchronized(seg, now)
            return
        # Fifth: ACK field.
        if not flags & ACK or not self._rcv_ack(seg, now):
            return
        if self.ts_ok and linux:
            self._update_ts_recent(seg, now)
        if self._our_fin_acked(seg, now):
            return
        self._rcv_text_and_fin(seg, now)

    def _simultaneous_synack(self, seg: TcpSegment, now: float) -> bool:
        """Linux simultaneous open: the peer's SYN-ACK in SYN_RCVD completes the handshake (tcp_validate_incoming
        lets it pass; RFC 793 Figure 8 agrees). Strict RFC 9293 would challenge-ACK it."""
        flags = seg.flags
        if not (
            self.state is S.SYN_RCVD
            and flags & SYN
            and flags & ACK
            and not self.passive
            and seq_add(seg.seq, 1) == self.rcv_nxt
            and seg.ack == self.snd_nxt
        ):
            return False
        self._ack_advance(seg.ack, now)
        self._update_window(seg, force=True)
        self._set_state(S.ESTABLISHED, T.RCV_SYN_ACK)
        self._events.append(Connected())
        self._start_keepalive(now)
        if self.cfg.profile == "linux":
            # Linux also ACKs that SYN-ACK (measured by `tcpwise lab conform`: each side sends S, SA, A; RFC 793
            # Figure 8 shows no ACKs): tcp_rcv_state_process lets it through tcp_ack, which takes its TSval as
            # TS.Recent, then tcp_data_queue finds its SYN a duplicate (its sequence number is already
            # acknowledged) and acknowledges it at once with a D-SACK block for it.
            if self.ts_ok:
                self._update_ts_recent(seg, now)
            if self.sack_ok:
                self.dsack = (seg.seq, seq_add(seg.seq, 1))
            self.ack_pending = True
        return True

    def _paws_reject(self, seg: TcpSegment) -> bool:
        """PAWS (RFC 7323 §5.3): a segment whose timestamp is older than TS.Recent is an old duplicate."""
        if not self.ts_ok or seg.flags & RST or self.state is S.SYN_RCVD:
            return False
        ts = seg.timestamps
        if ts is not None and seq_lt(ts[0], self.ts_recent):
            self.ack_pending = True
            return True
        return False

    def _unacceptable(self, seg: TcpSegment, now: float) -> None:
        """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> for anything but a RST (§3.10.7.4 first check)."""
        if seg.flags & RST:
            return
        self.ack_pending = True
        if self.sack_ok and seg.payload and seq_lt(seg.seq, self.rcv_nxt):
            # Linux tcp_send_dupack: an old data segment's duplicate bytes go out as a D-SACK block.
            end = seq_add(seg.seq, len(seg.payload))
            self.dsack = (seg.seq, end if seq_le(end, self.rcv_nxt) else self.rcv_nxt)
        if self.state is S.TIME_WAIT and (
            seg.flags & FIN or (self.cfg.profile == "linux" and seg.flags & ACK)
        ):
            # §3.10.7.4: a retransmitted FIN restarts the 2 MSL timeout; Linux (tcp_timewait_state_process)
            # restarts it for any out-of-window segment carrying an ACK.
            self._restart_time_wait(now)

    def _rcv_syn_synchronized(self, seg: TcpSegment, now: float) -> None:
        if self.state is S.SYN_RCVD and self.passive:
            # A retransmitted SYN for an existing SYN queue entry: resend the SYN-ACK (Linux does).
            if seg.seq == self.irs:
                self._out.append(self._syn_segment(now, ack=True))
            return
        self._challenge_ack(now)

    def _rcv_ack(self, seg: TcpSegment, now: float) -> bool:
        """The fifth check. False when the segment is dropped here."""
        if self.state is S.SYN_RCVD:
            if seq_lt(self.snd_una, seg.ack) and seq_le(seg.ack, self.snd_max):
                self._ack_advance(seg.ack, now)
                self._update_window(seg, force=True)
                self._set_state(S.ESTABLISHED, T.RCV_ACK)
                self._events.append(Connected())
                self._start_keepalive(now)
                if self.fin_queued:  # shutdown() while SYN_RCVD: now send the FIN (§3.10.4)
                    self._set_state(S.FIN_WAIT_1, self.fin_trigger)
                return True
            self._out.append(self._bare(RST, seg.ack, 0))
            return False
        # RFC 5961 §5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT (we use SND.MAX, the highest
        # sent, since go-back-N may have pulled SND.NXT back).
        if seq_gt(seg.ack, self.snd_max):
            # RFC 9293 §3.10.7.4: "send an ACK, drop the segment, and return" — text and all. Linux 6.18 does the
            # same (measured by the ack-unsent-data conformance scenario, with and without data): older kernels'
            # tcp_ack discarded such a segment silently (SKB_DROP_REASON_TCP_ACK_UNSENT_DATA), this one answers.
            self.ack_pending = True
            return False
        if seq_lt(seg.ack, seq_add(self.snd_una, -max(self.max_snd_wnd, 1))):
            self.ack_pending = True
            return False
        if seq_gt(seg.ack, self.snd_una):
            self._ack_advance(seg.ack, now)
        elif seg.ack == self.snd_una and not seg.payload and not seg.flags & FIN:
            self._dupack(seg, now)
        self._update_window(seg)
        return True

    def _our_fin_acked(self, seg: TcpSegment, now: float) -> bool:
        """FIN_WAIT_1 / CLOSING / LAST_ACK moves when the ACK covers our FIN; TIME_WAIT answers a FIN. True when
        the segment needs nothing more."""
        st = self.state
        acked = self.fin_queued and self.snd_una == seq_add(self.data_end, 1)
        if st is S.FIN_WAIT_1 and acked:
            self._set_state(S.FIN_WAIT_2, T.RCV_ACK)
            if self.orphan:
                self.timers.arm(TN.FIN_WAIT_2, now + self.cfg.fin_timeout)
        elif st is S.CLOSING and acked:
            self._enter_time_wait(now, T.RCV_ACK)
            return True
        elif st is S.LAST_ACK and acked:
            self._set_state(S.CLOSED, T.RCV_ACK)
            return True
        elif st is S.TIME_WAIT:
            if seg.flags & FIN:
                # §3.10.7.4 eighth step: a retransmitted FIN in TIME_WAIT is acknowledged and the 2 MSL
                # timeout restarted.
                self.ack_pending = True
                self._restart_time_wait(now)
            return True
        return False

    def _rcv_text_and_fin(self, seg: TcpSegment, now: float) -> None:
        # Seventh: segment text.
        if seg.payload and self.state in _RECEIVING:
            if self.orphan and self.cfg.profile == "linux":
                # Linux tcp_rcv_state_process: data for a socket the application has closed -> RST (nobody can
                # read it; LINUX_MIB_TCPABORTONDATA). It returns 1 and tcp_v4_do_rcv answers with the stateless
                # reset (tcp_v4_send_reset): <SEQ=SEG.ACK><CTL=RST>, no options.
                self._out.append(self._bare(RST, seg.ack, 0))
                self._set_state(S.CLOSED, T.RCV_DATA_AFTER_CLOSE)
                return
            self._take_data(seg, now)
        # (CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT: the peer already sent FIN; the text is ignored.)
        # Eighth: FIN.
        if seg.flags & FIN:
            fin_seq = seq_add(seg.seq, len(seg.payload))
            if fin_seq == self.rcv_nxt:
                self._take_fin(now)
            elif seq_gt(fin_seq, self.rcv_nxt):
                self.fin_seq = fin_seq  # out of order: processed when the hole fills
                self.ack_pending = True

    # -- helpers for SEGMENT ARRIVES ------------------------------------------------------------------------
    def _acceptable(self, seg: TcpSegment) -> bool:
        """The RFC 9293 §3.10.7.4 acceptability test (four cases on SEG.LEN and RCV.WND).

        Linux (tcp_sequence) is more lenient on the left: a segment is acceptable when it *ends* at or after
        RCV.WUP (the left edge of the window last advertised) and starts no later than its right edge. So a
        retransmission of data already acknowledged is processed (its TSval updates TS.Recent, its bytes are
        reported as a D-SACK) where the RFC test would drop it before any of that."""
        if self.cfg.profile == "linux":
            if self.state is S.TIME_WAIT:
                # tcp_timewait_state_process: only a bare ACK or RST exactly at RCV.NXT is in window; anything
                # else (a retransmitted FIN, data) is answered with an ACK.
                return seg.seq == self.rcv_nxt and (
                    not seg.payload and not seg.flags & FIN or bool(seg.flags & RST)
                )
            end = seq_add(seg.seq, seg.seg_len)
            right = seq_add(self.rcv_nxt, max(self._window_left(), 0))
            return seq_ge(end, self.last_ack_sent) and seq_le(seg.seq, right)
        seg_len = seg.seg_len
        wnd = max(self._rcv_window(), self.rcv_adv)  # never shrink the window we advertised
        if seg_len == 0:
            if wnd == 0:
                return seg.seq == self.rcv_nxt
            return seq_between(self.rcv_nxt, seg.seq, seq_add(self.rcv_nxt, wnd))
        if wnd == 0:
            return False
        end = seq_add(seg.seq, seg_len - 1)
        right = seq_add(self.rcv_nxt, wnd)
        return seq_between(self.rcv_nxt, seg.seq, right) or seq_between(self.rcv_nxt, end, right)

    def _update_ts_recent(self, seg: TcpSegment, now: float) -> None:
        ts = seg.timestamps
        if ts is not None and seq_ge(ts[0], self.ts_recent) and seq_le(seg.seq, self.last_ack_sent):
            self.ts_recent = ts[0]
            self.ts_recent_stamp = now

    def _take_syn(self, seg: TcpSegment, now: float) -> None:
        """Record the peer's ISN and options (§3.10.7.2/3, RFC 7323 §2.2/§3.2)."""
        self.irs = seg.seq
        self.rcv_nxt = seq_add(seg.seq, 1)
        self.last_ack_sent = self.rcv_nxt  # the window's left edge from now on (Linux sets rcv_wup here too)
        mss = seg.mss
        self.eff_mss = min(self.cfg.mss, mss if mss else DEFAULT_MSS)  # §3.7.1
        ts = seg.timestamps
        self.ts_ok = self.cfg.timestamps and ts is not None
        if self.ts_ok and ts is not None:
            self.ts_recent = ts[0]
            self.ts_recent_stamp = now
            # RFC 6691 §2 (and RFC 9293 §3.7.1): the MSS option counts data bytes only, and the sender must
            # leave room for the options it puts in every segment — 12 bytes of timestamps (Linux
            # tcp_sync_mss: mss_cache 1448 for MSS 1460). Without this a full segment is 1512 bytes of IP and a
            # router with a 1500-byte MTU drops it (DF set).
            self.eff_mss -= 12
        self.cwnd = 10 * self.eff_mss  # RFC 6928 initial window: ten segments (Linux TCP_INIT_CWND)
        ws = seg.wscale
        offer = self.cfg.offered_wscale
        if ws is not None and offer is not None:
            self.ws_ok = True
            self.snd_wscale = min(ws, 14)  # RFC 7323 §2.3: a shift above 14 is treated as 14
            self.rcv_wscale = offer
        self.sack_ok = self.cfg.sack and seg.sack_permitted
        self.snd_wnd = seg.window  # never scaled in a SYN (RFC 7323 §2.2)
        self.snd_wl1 = seg.seq
        self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)

    def _ack_advance(self, ack: int, now: float) -> None:
        """SND.UNA moves forward: drop acknowledged data, take an RTT sample, reset backoff (§3.10.7.4)."""
        acked = seq_diff(ack, self.snd_una)
        # Bytes of buffered data acknowledged (SYN and FIN take sequence space but no buffer).
        data_acked = seq_diff(ack, self.snd_buf_seq)
        if data_acked > 0:
            n = min(data_acked, len(self.snd_buf))
            del self.snd_buf[:n]
            self.snd_buf_seq = seq_add(self.snd_buf_seq, n)
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if self.rtt_seq is not None and seq_ge(ack, self.rtt_seq):
            self.rtt.sample(now - self.rtt_time)
            self.rtt_seq = None
        self.rtt.reset_backoff()
        self.retransmits = 0
        self.retrans_stamp = None
        self.una_since = now
        self.dupacks = 0
        self.persist_probes = 0
        # RFC 6582 §3.2 (NewReno) step 5: an ACK below "recover" is partial — the next hole of the same window:
        # retransmit it at once instead of waiting for three more duplicates (which cannot come while the
        # halved cwnd keeps new data back) or for the retransmission timer. A full ACK ends recovery.
        if self.recover is not None:
            if seq_lt(ack, self.recover):
                self._retransmit_first(now)
                # Deflate by what the partial ACK took out of the network, add back one SMSS.
                self.cwnd = max(self.cwnd - acked + self.eff_mss, self.eff_mss)
            else:
                self.recover = None
                self.cwnd = self.ssthresh  # step 6: full ACK, take back the inflation
                acked = 0
        # RFC 5681 §3.1: slow start below ssthresh, congestion avoidance above (the ACK of a SYN is no data).
        if self.state not in _SYNCHRONIZED or self.recover is not None or not acked:
            pass
        elif self.cwnd < self.ssthresh:
            self.cwnd += min(acked, self.eff_mss)
        else:
            self.cwnd += max(1, self.eff_mss * self.eff_mss // self.cwnd)
        if self.tlp_high_seq is not None and seq_ge(ack, self.tlp_high_seq):
            self.tlp_high_seq = None  # the probe's episode is over (tcp_process_tlp_ack)
        if self.recovery_point is not None and seq_ge(ack, self.recovery_point):
            self.recovery_point = None  # back to the Open state: loss probes allowed again
        if self.snd_una == self.snd_max:
            self.timers.disarm(TN.RTO)
            self.timers.disarm(TN.LOSS_PROBE)
        else:
            self.head_tx = now  # Linux tcp_rearm_rto after an ACK: a full RTO from now
            self._arm_xmit_timer(now)

    def _dupack(self, seg: TcpSegment, now: float) -> None:
        """RFC 5681 §3.2 fast retransmit on the third duplicate ACK and fast recovery: cwnd = ssthresh + 3 SMSS,
        then one more SMSS per further duplicate (each says a segment has left the network), so new data keeps
        flowing while the hole is repaired. The first two duplicates may send new data too (RFC 3042 Limited
        Transmit, see :meth:`_transmit`): with a small window there would otherwise never be three."""
        if self.snd_una == self.snd_max:
            return
        self.dupacks += 1
        if self.recover is not None:
            self.cwnd += self.eff_mss
        elif self.dupacks == 3:
            self.recover = self.snd_max
            flight = seq_diff(self.snd_max, self.snd_una)
            self.ssthresh = max(flight // 2, 2 * self.eff_mss)
            self.cwnd = self.ssthresh + 3 * self.eff_mss
            self.recovery_point = self.snd_max  # no loss probes during recovery
            self._retransmit_first(now)
            # Linux restarts the timer when it retransmits the head of the queue (tcp_xmit_retransmit_queue).
            self._arm_rto(now)

    def _retransmit_first(self, now: float) -> None:
        n = min(self.eff_mss, len(self.snd_buf))
        if n == 0:
            return
        self.rtt_seq = None
        self.head_tx = now
        self._out.append(self._seg(ACK | PSH, self.snd_una, now, bytes(self.snd_buf[:n])))

    def _update_window(self, seg: TcpSegment, force: bool = False) -> None:
        """§3.10.7.4 fifth step: update SND.WND only from a segment newer than the last update."""
        if (
            force
            or seq_lt(self.snd_wl1, seg.seq)
            or (self.snd_wl1 == seg.seq and seq_le(self.snd_wl2, seg.ack))
        ):
            wnd = seg.window if seg.syn else seg.window << self.snd_wscale
            opened = self.snd_wnd == 0 and wnd > 0
            self.snd_wnd = wnd
            self.snd_wl1 = seg.seq
            self.snd_wl2 = seg.ack
            self.max_snd_wnd = max(self.max_snd_wnd, wnd)
            if opened:
                self.timers.disarm(TN.PERSIST)
                self.persist_probes = 0

    def _take_data(self, seg: TcpSegment, now: float) -> None:
        """Seventh step: deliver in-order text, queue out-of-order text, ACK (§3.10.7.4, §3.8.6.2)."""
        seq = seg.seq
        data = seg.payload
        off = seq_diff(self.rcv_nxt, seq)
        if off > 0:  # partly old: trim the front
            if self.sack_ok:
                # RFC 2883 D-SACK: report the duplicate bytes (Linux tcp_data_queue -> tcp_dsack_set).
                self.dsack = (seq, seq_add(seq, min(off, len(data))))
            data = data[off:]
            seq = self.rcv_nxt
        room = self._rcv_window()
        if self.cfg.profile == "linux":
            # Whatever fits in the window we advertised is taken, even where rounding the window up to the scale
            # unit offered a few bytes more than the free space (Linux queues by memory, not by that window).
            room = max(room, self._window_left())
            if data:
                self._grow_window(len(data))
        if seq == self.rcv_nxt:
            data = data[:room]
            self._deliver(data)
            # Pull in whatever the hole was hiding.
            while self.ooo:
                nxt = self.ooo.pop(self.rcv_nxt, None)
                if nxt is None:
                    # Drop entries now entirely old, trim overlaps.
                    for s in [s for s in self.ooo if seq_le(seq_add(s, len(self.ooo[s])), self.rcv_nxt)]:
                        del self.ooo[s]
                    overl = [s for s in self.ooo if seq_lt(s, self.rcv_nxt)]
                    if not overl:
                        break
                    s = overl[0]
                    chunk = self.ooo.pop(s)[seq_diff(self.rcv_nxt, s) :]
                    self.ooo[self.rcv_nxt] = chunk
                    continue
                self._deliver(nxt[: self._rcv_window()])
            if self.fin_seq is not None and self.fin_seq == self.rcv_nxt:
                self.fin_seq = None
                self._take_fin(now)
        elif data:
            self.ooo.setdefault(seq, bytes(data[:room]))
            if seq in self.ooo_order:
                self.ooo_order.remove(seq)
            self.ooo_order.append(seq)
        if not self.ooo:
            self.ooo_order.clear()
        self.ack_pending = True

    def _deliver(self, data: bytes) -> None:
        if not data:
            return
        self.rcv_nxt = seq_add(self.rcv_nxt, len(data))
        self.rcv_data += data
        self._events.append(DataReceived(bytes(data)))

    def _take_fin(self, now: float) -> None:
        """Eighth step: the peer's FIN, in order (§3.10.7.4)."""
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        self.ack_pending = True
        st = self.state
        if st in (S.SYN_RCVD, S.ESTABLISHED):
            self._set_state(S.CLOSE_WAIT, T.RCV_FIN)
        elif st is S.FIN_WAIT_1:
            # Our FIN not yet acknowledged (else we would be in FIN_WAIT_2 already): simultaneous close.
            self._set_state(S.CLOSING, T.RCV_FIN)
        elif st is S.FIN_WAIT_2:
            self._enter_time_wait(now, T.RCV_FIN)
        if not self.orphan:
            # "Signal the user" (§3.10.7.4) needs a user: after close() the descriptor is gone and nobody can
            # recv() the EOF. Linux tcp_fin() wakes the reader only `if (!sock_flag(sk, SOCK_DEAD))`; after
            # shutdown(SHUT_WR) the application still holds the socket and does read the EOF.
            self._events.append(EndOfStream())

    def _enter_time_wait(self, now: float, trigger: Trigger) -> None:
        self._set_state(S.TIME_WAIT, trigger)
        self.time_wait_since = now
        for name in (TN.RTO, TN.LOSS_PROBE, TN.PERSIST, TN.KEEPALIVE, TN.FIN_WAIT_2):
            self.timers.disarm(name)
        if self.cfg.time_wait <= 0:
            # A model-only variant (Linux cannot do this: TCP_TIMEWAIT_LEN is compiled in): no TIME_WAIT at all.
            # The FIN is still acknowledged, then the connection is forgotten at once — no timer fires.
            self._out.append(self._seg(ACK, self.snd_max, now))
            self.ack_pending = False
            self._set_state(S.CLOSED, T.NO_TIME_WAIT)
            return
        self.timers.arm(TN.TIME_WAIT, now + self.cfg.time_wait)

    def _restart_time_wait(self, now: float) -> None:
        if self.state is S.TIME_WAIT:
            self.timers.arm(TN.TIME_WAIT, now + self.cfg.time_wait)

    def _on_reset(self, now: float) -> None:
        """§3.10.7.4 second step: a valid RST."""
        st = self.state
        if st is S.SYN_RCVD and self.passive:
            self._set_state(S.CLOSED, T.RCV_RST)  # the listener forgets the SYN queue entry
            return
        if st is S.SYN_RCVD:
            self._error("ECONNREFUSED", "connection refused")
        elif st is S.CLOSE_WAIT and self.cfg.profile == "linux":
            # Linux tcp_reset: a RST in CLOSE_WAIT sets sk_err = EPIPE ("as BSD sees it"), so the next write
            # fails with "Broken pipe", not "Connection reset by peer".
            self._error("EPIPE", "broken pipe (connection reset by peer in CLOSE_WAIT)")
        elif st in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT):
            self._error("ECONNRESET", "connection reset by peer")
        elif st in (S.CLOSING, S.LAST_ACK):
            # The application has closed; a lingering close() or the next call would report the reset.
            self._error("ECONNRESET", "connection reset by peer while closing")
        self._set_state(S.CLOSED, T.RCV_RST)

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2 challenge ACK, rate limited (§7; Linux tcp_challenge_ack_limit per second)."""
        window = int(now)
        if window != self.challenge_window:
            self.challenge_window = window
            self.challenge_count = 0
        if self.challenge_count < self.cfg.challenge_ack_limit:
            self.challenge_count += 1
            self._out.append(self._seg(ACK, self.snd_max, now))

    def _start_keepalive(self, now: float) -> None:
        if self.cfg.keepalive:
            self.timers.arm(TN.KEEPALIVE, now + self.cfg.keepalive_time)

    def _error(self, errno: str, reason: str) -> None:
        if self.error is None:
            self.error = errno
            self._events.append(ConnectionError(errno, reason))

    # =====================================================================================================
    # Transmission
    # =====================================================================================================
    def _unsent(self) -> int:
        """Data bytes queued but not yet sent (from SND.NXT)."""
        return seq_diff(self.data_end, self.snd_nxt) if seq_lt(self.snd_nxt, self.data_end) else 0

    def _transmit(self, now: float, retransmission: bool = False) -> None:
        """Send what the peer's window and cwnd allow, then the FIN if queued and all data went out."""
        st = self.state
        if st not in (S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK):
            return
        sent_any = False
        while True:
            unsent = self._unsent()
            if unsent <= 0:
                break
            in_flight = seq_diff(self.snd_nxt, self.snd_una)
            cwnd = self.cwnd
            if self.recover is None and self.dupacks < 3:
                cwnd += self.dupacks * self.eff_mss  # RFC 3042 Limited Transmit
            usable = min(self.snd_wnd, cwnd) - in_flight
            n = min(unsent, self.eff_mss)
            if usable < n:
                # Sender SWS avoidance (RFC 9293 §3.8.6.2.1, MUST-38; Linux tcp_snd_wnd_test): never cut a segment
                # to fit what is left of the window; wait for a full one (or all that remains). With nothing in
                # flight no ACK will come to open it: the persist timer probes (Linux tcp_check_probe_timer).
                if in_flight == 0 and not self.timers.armed(TN.PERSIST):
                    self.timers.arm(TN.PERSIST, now + self.rtt.current())
                break
            off = seq_diff(self.snd_nxt, self.snd_buf_seq)
            payload = bytes(self.snd_buf[off : off + n])
            seq = self.snd_nxt
            flags = ACK | PSH if n == unsent else ACK
            end = seq_add(seq, n)
            if self.fin_queued and end == self.data_end and self._may_send_fin(seq_add(end, 1)):
                flags |= FIN  # piggyback the FIN on the last data segment
                end = seq_add(end, 1)
            self._emit_new(flags, seq, payload, end, now, retransmission)
            sent_any = True
        if (
            self.fin_queued
            and self.snd_nxt == self.data_end
            and self._may_send_fin(seq_add(self.data_end, 1))
        ):
            self._emit_new(FIN | ACK, self.data_end, b"", seq_add(self.data_end, 1), now, retransmission)
            sent_any = True
        if not sent_any:
            return
        if not retransmission and self._tlp_allowed():
            self._arm_xmit_timer(now)  # Linux tcp_write_xmit -> tcp_schedule_loss_probe after new data
        elif not self.timers.armed(TN.RTO) and not self.timers.armed(TN.LOSS_PROBE):
            self._arm_rto(now)

    def _may_send_fin(self, fin_end: int) -> bool:
        # Send the FIN once (and again only when retransmitting from before it).
        return seq_lt(self.snd_nxt, fin_end)

    def _emit_new(self, flags: int, seq: int, payload: bytes, end: int, now: float, retrans: bool) -> None:
        if self.snd_una == self.snd_max:
            self.una_since = now  # the oldest unacknowledged data starts its clock now
        if seq == self.snd_una:
            self.head_tx = now
        if not retrans:
            self.tail_seq = seq
        if seq_ge(seq, self.snd_max) and self.rtt_seq is None and not retrans:
            self.rtt_seq = end  # time this segment (one at a time, RFC 6298 §3 / Karn)
            self.rtt_time = now
        self._out.append(self._seg(flags, seq, now, payload))
        self.ack_pending = False
        self.snd_nxt = end
        if seq_gt(end, self.snd_max):
            self.snd_max = end

    def _rcv_window(self) -> int:
        """Free receive space: the window space less what is buffered and not read (in order or not)."""
        held = len(self.rcv_data) + sum(len(d) for d in self.ooo.values()) if self.ooo else len(self.rcv_data)
        return max(0, self.cfg.rcv_buf - held)

    def _window_left(self) -> int:
        """What remains of the window we last advertised: RCV.WUP + RCV.WND - RCV.NXT (tcp_receive_window)."""
        return max(0, seq_diff(seq_add(self.last_ack_sent, self.rcv_adv), self.rcv_nxt))

    def _linux_window(self) -> int:
        """The window Linux would offer now, in bytes (__tcp_select_window): the free space, cut to zero when it is
        below an MSS or 1/16 of the space, capped by RCV.SSTHRESH, then rounded *up* to the scale unit so a small
        window is not scaled away (or, unscaled, down to a multiple of the MSS)."""
        ws = self.rcv_wscale
        free = self._rcv_window()
        allowed = self.cfg.rcv_buf
        full = min(self.window_clamp, allowed)
        mss = min(self.rcv_mss, full)
        if free < full >> 1:
            free = (free >> ws) << ws
            if free < allowed >> 4 or free < mss:
                return 0
        free = min(free, self.rcv_ssthresh)
        if ws:
            unit = 1 << ws
            return (free + unit - 1) & ~(unit - 1)
        window = self.rcv_adv
        if window <= free - mss or window > free:
            window = (free // mss) * mss if mss > 0 else free
        elif mss == full and free > window + (full >> 1):
            window = free
        return window

    def _select_window(self) -> int:
        """The window field of an outgoing non-SYN segment; records RCV.WND and RCV.WUP (Linux tcp_select_window:
        never shrink what was offered; RFC 9293 §3.8.6.2.1 says the same, "SHOULD NOT shrink")."""
        ws = self.rcv_wscale
        if self.cfg.profile != "linux":
            wnd = self._rcv_window()
            self.rcv_adv = wnd
            return min(0xFFFF, wnd >> ws)
        cur = self._window_left()
        new = self._linux_window()
        if new < cur:
            unit = 1 << ws
            new = (cur + unit - 1) & ~(unit - 1)
        self.rcv_adv = new
        self.last_ack_sent = self.rcv_nxt
        return min(new, 0xFFFF << ws) >> ws

    def _initial_window(self, ack: bool) -> int:
        """RCV.WND for our SYN or SYN-ACK. Linux (tcp_select_initial_window): the space rounded down to a multiple
        of the MSS — for a SYN-ACK with timestamps, the MSS less the 12 bytes of the option (tcp_openreq_init_rwin).
        RFC profile: the free buffer."""
        if self.cfg.profile != "linux":
            return self._rcv_window()
        mss = self.cfg.mss - (12 if ack and self.ts_ok else 0)
        space = self.cfg.rcv_buf
        return space - space % mss if space > mss else space

    def _grow_window(self, nbytes: int) -> None:
        """Linux tcp_grow_window / tcp_measure_rcv_mss on arriving data: RCV.SSTHRESH grows by two MSS per segment
        up to the clamp, and the estimate of the peer's MSS follows the largest segment seen."""
        if nbytes >= self.rcv_mss:
            self.rcv_mss = min(nbytes, self.cfg.mss)
        if self.rcv_ssthresh < self.window_clamp and self.rcv_ssthresh < self._rcv_window():
            self.rcv_ssthresh = min(self.rcv_ssthresh + 2 * self.cfg.mss, self.window_clamp)

    def _tsval(self, now: float) -> int:
        """Our timestamp clock: 1 ms ticks (Linux since 4.13) plus the per-connection random offset."""
        return seq_add(self.ts_offset, int(now * 1000))

    def _ts_options(self, now: float) -> tuple[TcpOption, ...]:
        return (NopOption(), NopOption(), TimestampsOption(self._tsval(now), self.ts_recent))

    def _seg(self, flags: int, seq: int, now: float, payload: bytes = b"") -> TcpSegment:
        window = self._select_window()
        if flags & ACK:
            self.last_ack_sent = self.rcv_nxt
        opts = self._ts_options(now) if self.ts_ok else ()
        if flags & ACK and self.sack_ok:
            opts += self._sack_option(with_ts=self.ts_ok)
        return TcpSegment(
            self.lport,
            self.rport,
            seq,
            self.rcv_nxt if flags & ACK else 0,
            flags,
            window,
            opts,
            payload,
        )

    def _sack_option(self, with_ts: bool) -> tuple[TcpOption, ...]:
        """SACK blocks for an ACK (RFC 2018 §3-4, RFC 2883): a D-SACK block first when a duplicate arrived, then
        the out-of-order ranges, most recently received first; as many as fit next to the other options (three
        with timestamps, four without: Linux tcp_established_options). Sent once per duplicate."""
        blocks: list[tuple[int, int]] = []
        if self.dsack is not None:
            blocks.append(self.dsack)
            self.dsack = None
        if self.ooo:
            ranges: list[list[int]] = []  # [start, end] merged, in sequence order
            for start in sorted(self.ooo, key=lambda x: seq_diff(x, self.rcv_nxt)):
                end = seq_add(start, len(self.ooo[start]))
                if ranges and seq_le(start, ranges[-1][1]):
                    if seq_gt(end, ranges[-1][1]):
                        ranges[-1][1] = end
                else:
                    ranges.append([start, end])
            recent = {st: i for i, st in enumerate(self.ooo_order)}

            def last_arrival(r: list[int]) -> int:
                return max(
                    (i for st, i in recent.items() if seq_le(r[0], st) and seq_lt(st, r[1])), default=-1
                )

            blocks += [(a, b) for a, b in sorted(ranges, key=last_arrival, reverse=True)]
        if not blocks:
            return ()
        room = 3 if with_ts else 4  # (40 - 12 - 4) // 8 with timestamps, (40 - 4) // 8 without
        return (NopOption(), NopOption(), SackOption(tuple(blocks[:room])))

    def _bare(self, flags: int, seq: int, ack: int) -> TcpSegment:
        return TcpSegment(self.lport, self.rport, seq, ack, flags, 0)

    def _syn_segment(self, now: float, ack: bool) -> TcpSegment:
        """SYN or SYN-ACK with the options Linux puts there (MSS, SACK-permitted, timestamps, window scale)."""
        cfg = self.cfg
        opts: list[TcpOption] = [MssOption(cfg.mss)]
        offer_ts = cfg.timestamps and (not ack or self.ts_ok or not self.passive)
        if ack and self.passive:
            offer_ts = self.ts_ok
        if cfg.sack and (not ack or self.sack_ok or not self.passive):
            opts.append(SackPermittedOption())
            if offer_ts:
                opts.append(TimestampsOption(self._tsval(now), self.ts_recent if ack else 0))
            else:
                opts += [NopOption(), NopOption()]
        elif offer_ts:
            opts += [
                NopOption(),
                NopOption(),
                TimestampsOption(self._tsval(now), self.ts_recent if ack else 0),
            ]
        shift = cfg.offered_wscale
        if shift is not None and (not ack or not self.passive or self.ws_ok):
            opts += [NopOption(), WindowScaleOption(shift)]
        flags = SYN | ACK if ack else SYN
        initial = self._initial_window(ack)
        self.rcv_adv = initial
        self.rcv_ssthresh = min(initial, self.window_clamp) if cfg.profile == "linux" else initial
        wnd = min(0xFFFF, initial)  # a SYN's window is never scaled (RFC 7323 §2.2)
        return TcpSegment(
            self.lport, self.rport, self.iss, self.rcv_nxt if ack else 0, flags, wnd, tuple(opts)
        )

    def _send_rst_abort(self, now: float, why: str) -> None:
        """RST for an abortive close: <SEQ=SND.NXT><CTL=RST,ACK>. Linux (tcp_send_active_reset) sends it through
        the connection's own transmit path, so it carries the current window and the timestamps option."""
        if self.cfg.profile == "linux" and not (self.passive and self.state is S.SYN_RCVD):
            # (A SYN queue entry is no full socket: its RST is the stateless one, tcp_v4_send_reset.)
            seg = self._seg(RST | ACK, self.snd_max, now)
            self._out.append(
                seg.with_(options=tuple(o for o in seg.options if not isinstance(o, SackOption)))
            )
            return
        self._out.append(TcpSegment(self.lport, self.rport, self.snd_max, self.rcv_nxt, RST | ACK, 0))

    # =====================================================================================================
    # The one writer of state
    # =====================================================================================================
    def _set_state(self, new: TcpState, trigger: Trigger) -> None:
        old = self._state
        check(old, trigger, new)
        self._state = new
        self._events.append(StateChanged(old, new, trigger))
        if new is S.CLOSED:
            self.timers.clear()
            self._events.append(Closed())


# Timer -> what happens when it fires (the order of firing is TimerName's, see handle_timer).
_TIMER_HANDLERS: dict[TimerName, Callable[[Endpoint, float], None]] = {
    TN.TIME_WAIT: Endpoint._on_time_wait,
    TN.FIN_WAIT_2: Endpoint._on_fin_wait_2,
    TN.RTO: Endpoint._on_rto,
    TN.LOSS_PROBE: Endpoint._on_loss_probe,
    TN.PERSIST: Endpoint._on_persist,
    TN.KEEPALIVE: Endpoint._on_keepalive,
}

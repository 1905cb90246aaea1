"""Every knob a kernel sysctl or socket option changes, as one frozen dataclass with Linux defaults.

Names follow the sysctl (``net.ipv4.tcp_*``) or socket option they model, so that the lab can map a scenario's
parameters onto the real kernel one to one (see :data:`SYSCTL_OF`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["EndpointConfig", "SYSCTL_OF", "LINUX", "RFC"]


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    # --- segment size and windows -------------------------------------------------------------------------
    mss: int = 1460  # advertised MSS option (RFC 9293 §3.7.1); 1460 = Ethernet MTU 1500 - 40
    # Receive window space: what the advertised window is taken from. Linux: tcp_full_space() of the socket's
    # receive buffer, i.e. half of net.ipv4.tcp_rmem[1] (131072 by default) with the default scaling ratio.
    rcv_buf: int = 65536
    rmem_max: int = 6 << 20  # net.ipv4.tcp_rmem[2]: the largest receive buffer; sets the window scale shift
    snd_buf: int = 1 << 20  # send buffer (bytes the application may queue)
    window_scaling: bool = True  # net.ipv4.tcp_window_scaling: offer the window scale option (RFC 7323 §2)
    wscale: int | None = None  # the shift to offer; None = derived like Linux (see offered_wscale)
    timestamps: bool = True  # net.ipv4.tcp_timestamps (RFC 7323 §3)
    sack: bool = True  # net.ipv4.tcp_sack: offer SACK-permitted (RFC 2018); received SACK blocks are not used
    # --- retransmission (RFC 6298, Linux TCP_RTO_MIN/MAX, tcp_retries2) ------------------------------------
    rto_initial: float = 1.0  # RFC 6298 §2.1: initial RTO of 1 s
    rto_min: float = 0.2  # Linux TCP_RTO_MIN (RFC 6298 says 1 s; Linux uses 200 ms)
    rto_max: float = 120.0  # Linux TCP_RTO_MAX
    retries1: int = (
        3  # net.ipv4.tcp_retries1: after this many, "negative advice" to IP (not modelled further)
    )
    retries2: int = 15  # net.ipv4.tcp_retries2: give up on an established connection
    syn_retries: int = 6  # net.ipv4.tcp_syn_retries
    # net.ipv4.tcp_syn_linear_timeouts (Linux 6.x, default 4): the first SYN retransmissions keep the initial RTO
    # (1 s apart) before backing off, and add as many retries: 0, 1, 2, 3, 4, 5, 7, 11, 19 ... give up at 131 s.
    syn_linear_timeouts: int = 4
    synack_retries: int = 5  # net.ipv4.tcp_synack_retries
    orphan_retries: int = 8  # net.ipv4.tcp_orphan_retries: 0 means 8 in Linux; FIN retries once orphaned
    # --- close --------------------------------------------------------------------------------------------
    time_wait: float = 60.0  # TCP_TIMEWAIT_LEN: fixed at compile time in Linux (not a sysctl!)
    fin_timeout: float = 60.0  # net.ipv4.tcp_fin_timeout: FIN_WAIT_2 orphan timeout, NOT TIME_WAIT
    # --- liveness -----------------------------------------------------------------------------------------
    keepalive: bool = False  # SO_KEEPALIVE
    keepalive_time: float = 7200.0  # net.ipv4.tcp_keepalive_time / TCP_KEEPIDLE
    keepalive_intvl: float = 75.0  # net.ipv4.tcp_keepalive_intvl / TCP_KEEPINTVL
    keepalive_probes: int = 9  # net.ipv4.tcp_keepalive_probes / TCP_KEEPCNT
    user_timeout: float = 0.0  # TCP_USER_TIMEOUT (RFC 5482) in seconds; 0 = off
    # --- listener -----------------------------------------------------------------------------------------
    backlog: int = 128  # listen() backlog, capped by somaxconn (accept queue length)
    somaxconn: int = 4096  # net.core.somaxconn
    max_syn_backlog: int = 1024  # net.ipv4.tcp_max_syn_backlog (SYN queue)
    syncookies: int = 1  # net.ipv4.tcp_syncookies: 0 off, 1 when SYN queue overflows, 2 always
    abort_on_overflow: bool = False  # net.ipv4.tcp_abort_on_overflow
    # --- TIME_WAIT reuse ----------------------------------------------------------------------------------
    tw_reuse: int = 2  # net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only (default since 4.x)
    # --- RFC 5961 -----------------------------------------------------------------------------------------
    challenge_ack_limit: int = 1000  # net.ipv4.tcp_challenge_ack_limit per second (Linux; RFC 5961 §7)
    # --- behaviour profile --------------------------------------------------------------------------------
    # "linux": follow the kernel where it deviates from RFC 9293 (docs/deviations.md): FIN piggybacked on the
    # ACK when the application closes at once, RST instead of FIN on close with unread data, etc.
    profile: str = "linux"

    @property
    def offered_wscale(self) -> int | None:
        """The window scale shift a SYN offers, or None when window scaling is off.

        Linux (tcp_select_initial_window): the shift that lets the largest receive buffer be advertised,
        ``ilog2(max(space, tcp_rmem[2], rmem_max)) - 15`` clamped to 0..14 — 7 for the default 6 MiB, 10 for a
        host whose tcp_rmem maximum is 32 MiB. (The global net.core.rmem_max, 208 KiB by default, is below
        tcp_rmem[2] on every default system and is left out.)"""
        if not self.window_scaling:
            return None
        if self.wscale is not None:
            return self.wscale
        space = max(self.rcv_buf, self.rmem_max, 1)
        return max(0, min(14, space.bit_length() - 1 - 15))

    def with_(self, **changes: Any) -> EndpointConfig:
        return replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


LINUX = EndpointConfig()
# The RFC profile keeps RFC 9293's text and the model's earlier option set: no window scaling, no SACK-permitted,
# a 64 KiB - 1 window.
RFC = EndpointConfig(
    rto_min=1.0, profile="rfc", rcv_buf=65535, window_scaling=False, sack=False, syn_linear_timeouts=0
)

# Parameter -> per-namespace sysctl the lab writes (None = not a sysctl: a socket option or compile-time).
# rcv_buf and rmem_max together are net.ipv4.tcp_rmem ("4096 2*rcv_buf rmem_max"), which the lab writes itself.
SYSCTL_OF: dict[str, str | None] = {
    "timestamps": "net.ipv4.tcp_timestamps",
    "sack": "net.ipv4.tcp_sack",
    "window_scaling": "net.ipv4.tcp_window_scaling",
    "retries1": "net.ipv4.tcp_retries1",
    "retries2": "net.ipv4.tcp_retries2",
    "syn_retries": "net.ipv4.tcp_syn_retries",
    "syn_linear_timeouts": "net.ipv4.tcp_syn_linear_timeouts",
    "synack_retries": "net.ipv4.tcp_synack_retries",
    "orphan_retries": "net.ipv4.tcp_orphan_retries",
    "time_wait": None,  # TCP_TIMEWAIT_LEN is compiled in
    "fin_timeout": "net.ipv4.tcp_fin_timeout",
    "keepalive_time": "net.ipv4.tcp_keepalive_time",
    "keepalive_intvl": "net.ipv4.tcp_keepalive_intvl",
    "keepalive_probes": "net.ipv4.tcp_keepalive_probes",
    "somaxconn": "net.core.somaxconn",
    "max_syn_backlog": "net.ipv4.tcp_max_syn_backlog",
    "syncookies": "net.ipv4.tcp_syncookies",
    "abort_on_overflow": "net.ipv4.tcp_abort_on_overflow",
    "tw_reuse": "net.ipv4.tcp_tw_reuse",
    "challenge_ack_limit": "net.ipv4.tcp_challenge_ack_limit",
}

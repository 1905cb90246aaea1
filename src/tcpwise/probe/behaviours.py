"""The misbehaving peers: each one a small script on the tcpwise endpoint, with the rule that judges the target.

Every behaviour opens its own connection(s) from the probe's user-space host, misbehaves in one precise way
the kernel's own sockets never would, and watches what the target does until it acts or the deadline
(``--deadline``) passes. The verdict rules are written next to each script; the findings carry advice in
doctor's style (what happened, why it matters, what to set).

Times: ``closed_after_s`` counts from the moment the misbehaviour starts (after the handshake and, where there
is one, after the first request's response), so it reads as "the target's timeout for this".
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from tcpwise.doctor.findings import Finding
from tcpwise.probe.core import Conn, Ctx, Outcome
from tcpwise.vocab import RST, SYN
from tcpwise.wire.segment import MssOption, TcpSegment
from tcpwise.wire.seq import seq_add

__all__ = ["Behaviour", "BEHAVIOURS", "names"]


@dataclass(frozen=True)
class Behaviour:
    name: str
    summary: str  # one line for --list
    passes_when: str
    run: Callable[[Ctx], Awaitable[Outcome]]


def _finding(
    fid: str, message: str, advice: str, severity: str = "warn", evidence: dict[str, Any] | None = None
) -> Finding:
    ev = dict(evidence or {})
    return Finding(id=fid, severity=severity, pid=None, message=message, evidence=ev, advice=advice)


def _held(ctx: Ctx, c: Conn) -> str:
    states = ctx.view.states_for({c.lport})
    return ", ".join(f"{s}" for s in sorted(states)) or "no socket"


# ----------------------------------------------------------------------------------------------------------
# vanish: half-open
# ----------------------------------------------------------------------------------------------------------
async def vanish(ctx: Ctx) -> Outcome:
    """After one request and its response the probe disappears: no FIN, no RST, it answers nothing more."""
    c = await ctx.connect()
    await ctx.exchange(c)
    t0 = ctx.now()
    ctx.mute(c.lport)
    ctx.note("probe vanishes (no FIN, no RST, answers nothing)")
    await ctx.until(lambda: ctx.target_closed(c.lport, t0) is not None, t0 + ctx.opts.deadline)
    closed = ctx.target_closed(c.lport, t0)
    if closed is not None:
        return Outcome(True, t0, {c.lport}, (closed[0], "target", closed[1]))
    return Outcome(
        False,
        t0,
        {c.lport},
        finding=_finding(
            "no-idle-timeout",
            f"a client that vanished without FIN or RST still holds a connection after {ctx.opts.deadline:g} s "
            f"({_held(ctx, c)} at the target): with no idle timeout and no keepalive it is held, with its fd, "
            "forever (half-open)",
            "close idle connections in the application (nginx keepalive_timeout / client_body_timeout, "
            "tcpwise.guard Timeouts(idle=...)) and turn on TCP keepalive with TCP_USER_TIMEOUT for connections "
            "that must stay open long (tcpwise.guard Keepalive(idle, interval, count, user_timeout)); the "
            "kernel's defaults take 2 h 11 min (tcp_keepalive_time + 9 probes) and only with SO_KEEPALIVE",
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# zero-window: never opens its window
# ----------------------------------------------------------------------------------------------------------
async def zero_window(ctx: Ctx) -> Outcome:
    """The probe advertises a zero receive window from its SYN on and answers every window probe with it."""
    c = await ctx.connect(rcv_buf=0)
    ctx.note("probe advertises window 0 and never opens it")
    req = ctx.opts.request
    if req:
        c.writer.write(req)
        await c.writer.drain()
    t0 = ctx.now()
    await ctx.until(lambda: ctx.target_closed(c.lport, t0) is not None, t0 + ctx.opts.deadline)
    closed = ctx.target_closed(c.lport, t0)
    if closed is not None:
        return Outcome(True, t0, {c.lport}, (closed[0], "target", closed[1]))
    return Outcome(
        False,
        t0,
        {c.lport},
        finding=_finding(
            "zero-window-held",
            f"a client that never opens its receive window still holds a connection after "
            f"{ctx.opts.deadline:g} s ({_held(ctx, c)}): the response sits in the send buffer and the kernel "
            "keeps probing the zero window for as long as the probes are answered",
            "give writes a deadline: nginx send_timeout, tcpwise.guard Timeouts(write=...) for a stalled "
            "writer and Timeouts(idle=...) for a finished one; an application idle timeout alone helps only "
            "if the response fit in the socket buffer",
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# slow-reader: one byte per interval
# ----------------------------------------------------------------------------------------------------------
async def slow_reader(ctx: Ctx) -> Outcome:
    """A 2 KiB receive buffer read one byte per ``--interval`` seconds (the window opens by a byte at a time)."""
    c = await ctx.connect(rcv_buf=2048)
    cast(asyncio.Transport, c.writer.transport).pause_reading()  # the application reads by hand below
    req = ctx.opts.request
    if req:
        c.writer.write(req)
        await c.writer.drain()
    t0 = ctx.now()
    ctx.note(f"probe reads one byte every {ctx.opts.interval:g} s")
    got = 0
    end = t0 + ctx.opts.deadline
    while ctx.now() < end and ctx.target_closed(c.lport, t0) is None:
        if c.ep.readable:
            got += len(c.ep.recv(1))
            ctx.host.kick(c.ep)
        await ctx.until(
            lambda: ctx.target_closed(c.lport, t0) is not None, min(end, ctx.now() + ctx.opts.interval)
        )
    closed = ctx.target_closed(c.lport, t0)
    ev = {"bytes_read": got, "interval_s": ctx.opts.interval}
    if closed is not None:
        return Outcome(True, t0, {c.lport}, (closed[0], "target", closed[1]), evidence=ev)
    return Outcome(
        False,
        t0,
        {c.lport},
        evidence=ev,
        finding=_finding(
            "slow-reader-held",
            f"a client reading one byte every {ctx.opts.interval:g} s still holds a connection after "
            f"{ctx.opts.deadline:g} s ({got} bytes read, {_held(ctx, c)}): a few such clients pin workers, "
            "buffers and fds",
            "bound how long a response may take, not only the gap between writes: nginx send_timeout (per "
            "write) with limit_rate/a response deadline, tcpwise.guard Timeouts(write=..., lifetime=...); cap "
            "connections per client (guard Limits(max_per_ip), nginx limit_conn)",
            evidence=ev,
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# slowloris: the request trickles in
# ----------------------------------------------------------------------------------------------------------
def _trickle_bytes(request: bytes) -> bytes:
    head = request[:-2] if request.endswith(b"\r\n\r\n") else request
    return head + b"X-a: b\r\n" * 10_000  # never the blank line that ends a request head


async def slowloris(ctx: Ctx) -> Outcome:
    """From connect on, the request arrives one byte per ``--interval`` seconds and never completes."""
    c = await ctx.connect()
    t0 = ctx.now()
    ctx.note(f"probe sends one byte every {ctx.opts.interval:g} s, never ending the request")
    data = _trickle_bytes(ctx.opts.request or b"GET / HTTP/1.1\r\n")
    sent = 0
    end = t0 + ctx.opts.deadline
    while ctx.now() < end and ctx.target_closed(c.lport, t0) is None:
        if not c.writer.transport.is_closing() and sent < len(data):
            c.writer.write(data[sent : sent + 1])
            sent += 1
        await ctx.until(
            lambda: ctx.target_closed(c.lport, t0) is not None, min(end, ctx.now() + ctx.opts.interval)
        )
    closed = ctx.target_closed(c.lport, t0)
    ev = {"bytes_sent": sent, "interval_s": ctx.opts.interval}
    if closed is not None:
        return Outcome(True, t0, {c.lport}, (closed[0], "target", closed[1]), evidence=ev)
    return Outcome(
        False,
        t0,
        {c.lport},
        evidence=ev,
        finding=_finding(
            "slowloris",
            f"a client sending one byte every {ctx.opts.interval:g} s still holds a connection after "
            f"{ctx.opts.deadline:g} s without completing a request ({sent} bytes): an idle timeout that restarts "
            "on every byte never fires",
            "put a deadline on the whole request head (nginx client_header_timeout is one: 60 s by default), "
            "tcpwise.guard Timeouts(first_byte=..., lifetime=...) or a per-request deadline in the handler, "
            "and cap connections per client (guard Limits(max_per_ip), nginx limit_conn)",
            evidence=ev,
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# syn-flood: SYN only, from many source ports
# ----------------------------------------------------------------------------------------------------------
async def syn_flood(ctx: Ctx) -> Outcome:
    """``--flood`` SYNs from as many source ports, never completed (their SYN-ACKs are ignored); then one
    honest client connects."""
    host, opts = ctx.host, ctx.opts
    src = host.addr_for(opts.target_addr)
    n = opts.flood
    ports = set(range(10000, 10000 + n))
    isn = int.from_bytes(os.urandom(4), "big")

    def ignore_synacks(direction: str, s: str, d: str, seg: TcpSegment) -> bool:
        return not (direction == "in" and seg.dport in ports)

    host.hooks.append(ignore_synacks)
    t0 = ctx.now()
    ctx.note(f"probe sends {n} SYNs from ports 10000-{10000 + n - 1} and ignores the SYN-ACKs")
    saved = host.record
    host.record = False  # the flood itself is not drawn (one note stands for it)
    try:
        for i, p in enumerate(sorted(ports)):
            host.send_raw(
                src, opts.target_addr, TcpSegment(p, opts.port, isn, 0, SYN, 64240, (MssOption(1460),))
            )
            if i % 64 == 63:
                await asyncio.sleep(0)
    finally:
        host.record = saved
    await ctx.sleep(0.2)
    half_open = sum(1 for k, s in ctx.view.last.items() if k[3] in ports and s == "SYN_RCVD")
    t_conn = ctx.now()
    conn: Conn | None = None
    try:
        conn = await ctx.connect(timeout=max(1.0, ctx.opts.deadline))
    except (OSError, TimeoutError):
        conn = None
    took = ctx.now() - t_conn
    syns = ctx.tracker.rec(conn.lport).tx_syns if conn is not None else None

    def cleanup() -> None:
        host.record = False
        for p in ports:  # RST each half-open request: the target's SYN queue is emptied at once
            host.send_raw(src, opts.target_addr, TcpSegment(p, opts.port, seq_add(isn, 1), 0, RST, 0))
        host.record = saved
        if ignore_synacks in host.hooks:
            host.hooks.remove(ignore_synacks)

    ev = {"syns_sent": n, "half_open_seen": half_open, "connect_s": round(took, 3), "client_syns": syns}
    lports = {conn.lport} if conn is not None else set()
    if conn is not None and (syns or 1) <= 1:
        return Outcome(True, t0, lports, evidence=ev, cleanup=cleanup, left_ports=ports)
    how = f"after {took:.1f} s and {syns} SYNs" if conn is not None else f"not within {took:.1f} s"
    cookies = ctx.view.observer.sysctl("net.ipv4.tcp_syncookies")
    return Outcome(
        False,
        t0,
        lports,
        evidence=ev,
        cleanup=cleanup,
        left_ports=ports,
        finding=_finding(
            "syn-queue-full",
            f"{n} unanswered SYNs ({half_open} half-open seen) filled the SYN queue and a new client connected "
            f"{how} (tcp_syncookies={cookies}): its first SYN was dropped and it waited for retransmissions "
            "(1 s, 3 s, 7 s ...)",
            "keep net.ipv4.tcp_syncookies=1 (the default: the queue overflows into cookies), and size the "
            "listen backlog with net.core.somaxconn and net.ipv4.tcp_max_syn_backlog; a SYN flood is the "
            "kernel's job, not the application's",
            severity="crit",
            evidence=ev,
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# fin-no-ack: never acknowledge the target's FIN
# ----------------------------------------------------------------------------------------------------------
def _ask_close(request: bytes) -> bytes:
    """An HTTP request asking the server to close after its response (so that the target closes first)."""
    if request.startswith((b"GET ", b"HEAD ", b"POST ")) and request.endswith(b"\r\n\r\n"):
        if b"connection:" not in request.lower():
            return request[:-2] + b"Connection: close\r\n\r\n"
    return request


async def fin_no_ack(ctx: Ctx) -> Outcome:
    """The probe asks for a response and a close, then never acknowledges the target's FIN (nor anything)."""
    c = await ctx.connect()
    port, lport = ctx.opts.port, c.lport
    silent = [False]

    def deaf_after_fin(direction: str, src: str, dst: str, seg: TcpSegment) -> bool:
        if direction == "in" and seg.sport == port and seg.dport == lport and seg.fin:
            silent[0] = True
        if not silent[0]:
            return True
        return not ((direction == "in" and seg.dport == lport) or (direction == "out" and seg.sport == lport))

    ctx.host.hooks.append(deaf_after_fin)
    req = _ask_close(ctx.opts.request)
    t0 = ctx.now()
    if req:
        c.writer.write(req)
        await c.writer.drain()
    ctx.note("probe will never acknowledge the target's FIN")
    end = t0 + ctx.opts.deadline
    rec = ctx.tracker.rec(lport)
    await ctx.until(lambda: rec.target_fin is not None or rec.target_rst is not None, end)
    if rec.target_fin is None and rec.target_rst is None:
        return Outcome(
            False,
            t0,
            {lport},
            finding=_finding(
                "never-closed",
                f"the target did not close the connection within {ctx.opts.deadline:g} s although the request "
                "asked for it, so its FIN_WAIT handling could not be probed",
                "close after a response marked Connection: close, and close idle connections (see vanish)",
            ),
        )
    closed = ctx.target_closed(lport, t0)
    assert closed is not None
    keys = ctx.view.keys_for(lport)

    def gone() -> bool:
        return all(k not in ctx.view.last for k in keys) if keys else True

    await ctx.until(gone, end)
    if gone():
        return Outcome(True, t0, {lport}, (closed[0], "target", closed[1]))
    retries = ctx.view.observer.sysctl("net.ipv4.tcp_orphan_retries")
    left = ctx.view.states_for({lport})
    return Outcome(
        False,
        t0,
        {lport},
        (closed[0], "target", closed[1]),
        finding=_finding(
            "orphan-fin-wait",
            f"the target closed, its FIN was never acknowledged, and {ctx.opts.deadline:g} s later its kernel "
            f"still holds the connection ({', '.join(sorted(left))}, tcp_orphan_retries={retries}): each such "
            "peer pins a socket and its unsent data while the FIN is retransmitted with backoff",
            "an orphaned FIN_WAIT_1 socket lives for net.ipv4.tcp_orphan_retries retransmissions (0 means 8: "
            "about 100 s with a 200 ms RTO, more on slower paths); lower it (1-3) on servers facing many "
            "clients and watch the orphan count against net.ipv4.tcp_max_orphans; TCP_USER_TIMEOUT on the "
            "socket bounds it too (tcpwise.guard Keepalive(user_timeout=...)), and an abortive close "
            "(SO_LINGER {1,0}, nginx reset_timedout_connection) frees it at once where the protocol allows",
            evidence={"states": left},
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# half-close: FIN after the request, keep reading
# ----------------------------------------------------------------------------------------------------------
async def half_close(ctx: Ctx) -> Outcome:
    """The probe sends its request, shuts down its sending side (FIN) and keeps reading."""
    c = await ctx.connect()
    req = ctx.opts.request
    if req:
        c.writer.write(req)
    c.writer.write_eof()
    await c.writer.drain()
    t0 = ctx.now()
    ctx.note("probe half-closes (shutdown SHUT_WR) and keeps reading")
    got = bytearray()
    end = t0 + ctx.opts.deadline

    async def reader() -> None:
        while True:
            try:
                chunk = await c.reader.read(65536)
            except OSError:
                return
            if not chunk:
                return
            got.extend(chunk)

    task = asyncio.ensure_future(reader())
    await ctx.until(lambda: ctx.target_closed(c.lport, t0) is not None, end)
    await ctx.sleep(0.1)
    task.cancel()
    closed = ctx.target_closed(c.lport, t0)
    ev = {"response_bytes": len(got)}
    if closed is not None and closed[1] == "FIN" and (got or not req):
        return Outcome(True, t0, {c.lport}, (closed[0], "target", closed[1]), evidence=ev)
    if closed is None:
        return Outcome(
            False,
            t0,
            {c.lport},
            evidence=ev,
            finding=_finding(
                "close-wait-leak",
                f"after the client's FIN the target answered ({len(got)} bytes) but has not closed "
                f"{ctx.opts.deadline:g} s later ({_held(ctx, c)}): a socket in CLOSE_WAIT is the application's "
                "bug — the kernel has the FIN, only close() ends it, and the fds pile up until EMFILE",
                "close the connection when read() returns end-of-file (or when the handler returns: "
                "tcpwise.guard always closes); tcpwise doctor names processes that leak CLOSE_WAIT",
                evidence=ev,
            ),
        )
    return Outcome(
        False,
        t0,
        {c.lport},
        (closed[0], "target", closed[1]),
        evidence=ev,
        finding=_finding(
            "half-close-dropped",
            f"after the client's FIN the target closed with {closed[1] or 'silence'} and "
            f"{'no' if not got else len(got)} response bytes: it treated a half-close as an abort",
            "a FIN only says the client has finished sending (RFC 9293 §3.6): finish the response, then close",
            evidence=ev,
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# rst-mid-response
# ----------------------------------------------------------------------------------------------------------
async def rst_mid_response(ctx: Ctx) -> Outcome:
    """The probe resets the connection as soon as the response starts; then checks the target still serves."""
    c = await ctx.connect(rcv_buf=8192)  # a small window keeps the target in the middle of writing
    req = ctx.opts.request
    t0 = ctx.now()
    if req:
        c.writer.write(req)
        await c.writer.drain()
        rec = ctx.tracker.rec(c.lport)
        await ctx.until(lambda: rec.rx_bytes > 0, t0 + min(3.0, ctx.opts.deadline))
    ctx.note("probe resets the connection in the middle of the response")
    ctx.abort(c)
    t_rst = ctx.now()
    await ctx.sleep(min(0.5, ctx.opts.deadline))
    serving = False
    if ctx.view.observer.alive():
        try:
            c2 = await ctx.connect(timeout=2.0)
            resp = await ctx.exchange(c2) if req else b"ok"
            serving = bool(resp)
            ctx.abort(c2)
        except (OSError, TimeoutError):
            serving = False
    ev = {"serving_after": serving}
    if serving:
        return Outcome(True, t0, {c.lport}, (t_rst, "probe", "RST"), evidence=ev)
    alive = ctx.view.observer.alive()
    return Outcome(
        False,
        t0,
        {c.lport},
        (t_rst, "probe", "RST"),
        evidence={**ev, "process_alive": alive},
        finding=_finding(
            "died-on-reset" if not alive else "stuck-after-reset",
            "one client's RST in the middle of a response "
            + (
                "ended the target process (an unhandled ECONNRESET/EPIPE, or SIGPIPE)"
                if not alive
                else "left the target unable to serve the next client"
            ),
            "treat ECONNRESET and EPIPE on a client socket as that client's end, not the server's: catch them "
            "per connection, ignore SIGPIPE (or send with MSG_NOSIGNAL), and never serve clients one at a time",
            severity="crit",
            evidence=ev,
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# keepalive-race: reuse an idle connection exactly when the server closes it
# ----------------------------------------------------------------------------------------------------------
async def keepalive_race(ctx: Ctx) -> Outcome:
    """After one request the connection idles; the instant the target's FIN arrives, before the probe has
    processed it, the next request goes out — the request and the FIN cross, as they do when a client reuses
    a keep-alive connection at the server's idle timeout."""
    c = await ctx.connect()
    await ctx.exchange(c)
    port, lport, host = ctx.opts.port, c.lport, ctx.host
    req = ctx.opts.request or b"x"
    raced: list[float] = []

    def cross(direction: str, src: str, dst: str, seg: TcpSegment) -> bool:
        if (
            not raced
            and direction == "in"
            and seg.sport == port
            and seg.dport == lport
            and (seg.fin or seg.rst)
        ):
            raced.append(host.now())
            if seg.fin and c.ep.state.value == "ESTABLISHED":
                c.ep.send(req, host.now())  # sent before we "know" about the FIN: ack does not cover it
                host.kick(c.ep)
                host.flush()
        return True

    host.hooks.append(cross)
    t0 = ctx.now()
    ctx.note("connection idles; the next request will cross the target's FIN")
    end = t0 + ctx.opts.deadline
    rec = ctx.tracker.rec(lport)
    await ctx.until(lambda: bool(raced), end)
    if not raced:
        return Outcome(True, t0, {lport}, evidence={"idle_timeout_s": None})
    closed = ctx.target_closed(lport, t0)
    await ctx.until(
        lambda: rec.target_rst is not None, min(end, raced[0] + 1.0) if end > raced[0] else raced[0] + 1.0
    )
    idle = raced[0] - t0
    ev = {"idle_timeout_s": round(idle, 3)}
    by = (closed[0], "target", closed[1]) if closed is not None else None
    if rec.target_rst is None:
        return Outcome(True, t0, {lport}, by, evidence=ev)
    return Outcome(
        False,
        t0,
        {lport},
        by,
        evidence=ev,
        finding=_finding(
            "keepalive-race",
            f"the target closes idle keep-alive connections after {idle:.1f} s and answered a request that "
            "crossed its FIN with RST: the client sees ECONNRESET and cannot tell whether the request ran",
            "close idle connections gracefully — shutdown(SHUT_WR), keep reading until the client's FIN "
            "(tcpwise.guard close_mode='graceful', nginx lingering_close) — and announce the timeout (HTTP "
            "Keep-Alive: timeout=N) so clients retire connections earlier; clients must retry idempotent "
            "requests that fail on a reused connection",
            evidence=ev,
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# blind-injection: RFC 5961
# ----------------------------------------------------------------------------------------------------------
async def blind_injection(ctx: Ctx) -> Outcome:
    """On an established connection the probe injects what a blind off-path attacker would: a RST and then a
    SYN whose sequence numbers are inside the target's window but not exact. RFC 5961 says: answer each with a
    challenge ACK and keep the connection (§3.2, §4.2); RFC 793 let the RST kill it and answered the SYN with
    RST. The connection survives when the target neither resets it nor drops it; a close of its own (an idle
    timeout's FIN) is no failure."""
    c = await ctx.connect()
    await ctx.exchange(c)
    await ctx.sleep(0.1)  # the target's side is on record before anything is injected
    ep, host = c.ep, ctx.host
    rec = ctx.tracker.rec(c.lport)
    keys = ctx.view.keys_for(c.lport)

    def synchronized() -> bool:
        """The target still has *this* connection (not gone, not a new incarnation in SYN_RCVD)."""
        return any(ctx.view.last.get(k) not in (None, "SYN_RCVD") for k in keys) or rec.target_fin is not None

    t0 = ctx.now()
    wnd = max(2, ep.snd_wnd)
    seq = seq_add(ep.snd_nxt, max(1, min(wnd // 2, 1 << 20)))
    n_acks = len(rec.rx_acks)
    host.send_raw(ep.laddr, ep.raddr, TcpSegment(ep.lport, ep.rport, seq, 0, RST, 0), note="blind RST")
    ctx.note("in-window RST injected (not the exact sequence number)")
    await ctx.sleep(
        0.6
    )  # Linux rate-limits challenge ACKs per socket to one per 500 ms (tcp_invalid_ratelimit)
    rst_challenged = len(rec.rx_acks) > n_acks
    survived = rec.target_rst is None and synchronized()
    syn_challenged = False
    if survived:
        n_acks = len(rec.rx_acks)
        syn = TcpSegment(ep.lport, ep.rport, seq, 0, SYN, 64240, (MssOption(1460),))
        host.send_raw(ep.laddr, ep.raddr, syn, note="blind SYN")
        ctx.note("in-window SYN injected")
        await ctx.sleep(0.6)
        syn_challenged = len(rec.rx_acks) > n_acks
        survived = rec.target_rst is None and synchronized()
    ev = {"rst_challenge_ack": rst_challenged, "syn_challenge_ack": syn_challenged, "survived": survived}
    if survived:
        closed = ctx.target_closed(c.lport, t0) if rec.target_fin is not None else None
        return Outcome(True, t0, {c.lport}, (closed[0], "target", closed[1]) if closed else None, evidence=ev)
    return Outcome(
        False,
        t0,
        {c.lport},
        (t0, "probe", "RST"),
        evidence=ev,
        finding=_finding(
            "rfc5961-missing",
            "a RST (or SYN) with an in-window but inexact sequence number ended the connection: a blind "
            "attacker who guesses the window can reset this target's connections (RFC 5961 §3, §4)",
            "use a TCP that implements RFC 5961 (Linux since 3.6 answers both with a challenge ACK); in front "
            "of a stack that does not, terminate TCP at a proxy that does",
            severity="crit",
            evidence=ev,
        ),
    )


BEHAVIOURS: dict[str, Behaviour] = {
    b.name: b
    for b in (
        Behaviour(
            "vanish", "vanish mid-connection without FIN or RST (half-open)", "the target closes it", vanish
        ),
        Behaviour("zero-window", "advertise a zero window forever", "the target closes it", zero_window),
        Behaviour("slow-reader", "read one byte per --interval seconds", "the target closes it", slow_reader),
        Behaviour(
            "slowloris", "trickle the request, one byte per --interval s", "the target closes it", slowloris
        ),
        Behaviour(
            "syn-flood",
            "--flood SYNs from as many ports, never completed",
            "a new client still connects on its first SYN",
            syn_flood,
        ),
        Behaviour(
            "fin-no-ack",
            "never acknowledge the target's FIN (FIN_WAIT_1, orphan)",
            "the target's socket is gone by the deadline",
            fin_no_ack,
        ),
        Behaviour(
            "half-close",
            "send the request, shut down writing, keep reading",
            "the target answers and closes (no CLOSE_WAIT)",
            half_close,
        ),
        Behaviour(
            "rst-mid-response",
            "reset the connection in the middle of a response",
            "the target still serves the next client",
            rst_mid_response,
        ),
        Behaviour(
            "keepalive-race",
            "reuse an idle connection the instant the target times it out",
            "no RST for the request that crossed the target's FIN",
            keepalive_race,
        ),
        Behaviour(
            "blind-injection",
            "inject an in-window RST and SYN (RFC 5961 check)",
            "challenge ACKs, the connection survives",
            blind_injection,
        ),
    )
}


def names() -> list[str]:
    return list(BEHAVIOURS)

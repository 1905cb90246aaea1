"""Kernel demonstrations: the facts the catalogue's narratives rely on, measured on the real kernel.

Theory of operation
-------------------
Each demo builds a lab (A - R - B; here R forwards in the kernel, no delay line: these demos are about counts
and timers, not about seeing every state), sets the namespace sysctls it is about, drives real sockets created
inside the namespaces (:func:`tcpwise.lab.netns.in_netns`) and reads the kernel's answer from sock_diag
(states, timers, queue lengths), from errno, and from the namespace's ``/proc/net/netstat`` counters. Each
returns a :class:`DemoResult`: the claim, whether the kernel made it true, and the measured facts.

``quick=True`` reads the kernel's own timers (sock_diag ``idiag_expires``) instead of waiting them out, so the
TIME_WAIT demo takes one second instead of sixty; without it the demo measures the 60 s with a stopwatch.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.lab.netns import Topology, in_netns
from tcpwise.lab.nft import Faults

__all__ = ["DemoResult", "DEMOS", "run_demo"]

A_ADDR = "198.18.0.1"
B_ADDR = "198.18.1.1"
TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = 4, 5, 6


@dataclass
class DemoResult:
    name: str
    claim: str
    ok: bool
    facts: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "demo": self.name,
            "claim": self.claim,
            "ok": self.ok,
            "facts": self.facts,
            "lines": self.lines,
        }

    def text(self) -> str:
        mark = "✓" if self.ok else "✗"
        return "\n".join([f"{mark} {self.claim}", *[f"  {line}" for line in self.lines]])


# --- helpers -----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _lab(
    sysctls: dict[str, dict[str, str]] | None = None, faults: bool = False
) -> Iterator[tuple[Topology, Faults | None]]:
    topo = Topology(delay_line=False)
    f: Faults | None = None
    try:
        topo.create()
        for host, kv in (sysctls or {}).items():
            for k, v in kv.items():
                topo.set_sysctl(host, k, v)
        if faults:
            f = Faults(topo.router_ns, topo.run_id)
            f.create()
        yield topo, f
    finally:
        if f is not None:
            f.destroy()
        topo.destroy()


def _sock(topo: Topology, host: str) -> socket.socket:
    with in_netns(topo.hosts[host].ns):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def _listener(topo: Topology, host: str = "B", port: int = 80, backlog: int = 128) -> socket.socket:
    s = _sock(topo, host)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(backlog)
    return s


def _sockets(topo: Topology, host: str) -> list[Any]:
    """Every TCP socket of ``host`` (tcpwise.linux.netlink records: state, timer, expires_ms, rqueue, ...)."""
    from tcpwise.linux.netlink import dump, open_diag_socket

    with in_netns(topo.hosts[host].ns):
        s = open_diag_socket()
    try:
        return dump((socket.AF_INET,), sock=s, ext=0)
    finally:
        s.close()


def _count(socks: list[Any], state: int) -> int:
    return sum(1 for s in socks if s.state == state)


def _netstat(topo: Topology, host: str) -> dict[str, int]:
    """TcpExt counters of the host's namespace (/proc/net/netstat is per network namespace)."""
    with in_netns(topo.hosts[host].ns):
        with open("/proc/thread-self/net/netstat") as f:
            lines = f.read().splitlines()
    out: dict[str, int] = {}
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            out.update({k: int(v) for k, v in zip(head.split()[1:], vals.split()[1:], strict=False)})
    return out


def _wait(cond: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


# Kernel state numbers (include/net/tcp_states.h).
ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT2, TIME_WAIT, CLOSE_WAIT, LISTEN, NEW_SYN_RECV = (
    1,
    2,
    3,
    5,
    6,
    8,
    10,
    12,
)


# --- the demonstrations ------------------------------------------------------------------------------------------
def time_wait(quick: bool = False) -> DemoResult:
    """TIME_WAIT lasts 60 s (TCP_TIMEWAIT_LEN) whatever tcp_fin_timeout says; fin_timeout is FIN_WAIT_2's."""
    fin_timeout = 5
    with _lab({"A": {"net.ipv4.tcp_fin_timeout": str(fin_timeout)}}) as (topo, _):
        lst = _listener(topo)
        # Connection 1: A closes, B closes on EOF -> A in TIME_WAIT.
        c1 = _sock(topo, "A")
        c1.connect((B_ADDR, 80))
        s1, _ = lst.accept()
        # Connection 2: A closes, B never closes -> A's orphaned socket in FIN_WAIT_2 (tcp_fin_timeout applies).
        c2 = _sock(topo, "A")
        c2.connect((B_ADDR, 80))
        s2, _ = lst.accept()
        p1, p2 = c1.getsockname()[1], c2.getsockname()[1]
        c1.close()
        c2.close()
        s1.recv(10)
        s1.close()
        t0 = time.monotonic()

        def st(port: int) -> Any:
            return next((s for s in _sockets(topo, "A") if s.sport == port), None)

        def entered() -> bool:
            # B's ACK of a FIN may be delayed (~40 ms, delayed-ACK pingpong mode): wait for both states.
            a, b = st(p1), st(p2)
            return a is not None and a.state == TIME_WAIT and b is not None and b.state == FIN_WAIT2

        _wait(entered, 2.0)
        tw, fw2 = st(p1), st(p2)
        facts: dict[str, Any] = {
            "tcp_fin_timeout": fin_timeout,
            "time_wait_state_seen": bool(tw and tw.state == TIME_WAIT),
            "fin_wait_2_state_seen": bool(fw2 and fw2.state == FIN_WAIT2),
        }
        if quick:
            facts["time_wait_timer_s"] = round(tw.expires_ms / 1000, 1) if tw else None
            facts["fin_wait_2_timer_s"] = round(fw2.expires_ms / 1000, 1) if fw2 else None
            tw_len, fw2_len = facts["time_wait_timer_s"], facts["fin_wait_2_timer_s"]
            how = "kernel timer right after entry (sock_diag idiag_expires)"
        else:
            _wait(lambda: st(p2) is None, fin_timeout + 5, 0.05)
            fw2_len = round(time.monotonic() - t0, 1)
            _wait(lambda: st(p1) is None, 75, 0.1)
            tw_len = round(time.monotonic() - t0, 1)
            facts["time_wait_measured_s"], facts["fin_wait_2_measured_s"] = tw_len, fw2_len
            how = "measured until the socket vanished from sock_diag"
        s2.close()
        lst.close()
    # 60 s, plus the timer wheel's rounding of a long timer (up to a few seconds late; never early).
    ok = bool(
        tw_len and 59.5 <= tw_len <= 65 and fw2_len and fin_timeout - 1.5 <= fw2_len <= fin_timeout + 1.5
    )
    return DemoResult(
        "time-wait",
        "TIME_WAIT stays 60 s whatever tcp_fin_timeout says; tcp_fin_timeout bounds the orphaned FIN_WAIT_2",
        ok,
        facts,
        [
            f"net.ipv4.tcp_fin_timeout = {fin_timeout} in A's namespace",
            f"TIME_WAIT: {tw_len} s ({how})",
            f"orphaned FIN_WAIT_2: {fw2_len} s",
        ],
    )


def _connect_close_cycle(topo: Topology, lst: socket.socket) -> tuple[bool, str, int]:
    """One short connection, A closing first (TIME_WAIT lands on A). Returns (ok, errno name, local port)."""
    c = _sock(topo, "A")
    try:
        c.connect((B_ADDR, 80))
    except OSError as exc:
        c.close()
        return False, errno.errorcode.get(exc.errno or 0, str(exc.errno)), 0
    port = c.getsockname()[1]
    s, _ = lst.accept()
    c.close()
    s.recv(10)
    s.close()
    return True, "", port


def port_exhaustion(quick: bool = False) -> DemoResult:
    """Port exhaustion: a client with 8 ephemeral ports gets EADDRNOTAVAIL once they are all in TIME_WAIT;
    tcp_tw_reuse=1 lets it reuse a TIME_WAIT port older than 1 s (timestamps on)."""
    lo, hi = 40000, 40007
    n_ports = hi - lo + 1
    facts: dict[str, Any] = {"ip_local_port_range": f"{lo} {hi}"}
    with _lab({"A": {"net.ipv4.ip_local_port_range": f"{lo} {hi}", "net.ipv4.tcp_tw_reuse": "0"}}) as (
        topo,
        _,
    ):
        lst = _listener(topo, backlog=64)
        ok_count = 0
        err = ""
        for _ in range(n_ports + 4):
            ok, err, _port = _connect_close_cycle(topo, lst)
            if not ok:
                break
            ok_count += 1
        facts["connections_before_error"] = ok_count
        facts["error"] = err
        facts["time_wait_on_A"] = _count(_sockets(topo, "A"), TIME_WAIT)
        time.sleep(
            1.1
        )  # tcp_twsk_unique(): a TIME_WAIT is reusable only once its last timestamp is >= 1 s old
        results = {}
        for reuse in ("2", "1"):
            topo.set_sysctl("A", "net.ipv4.tcp_tw_reuse", reuse)
            ok, e, port = _connect_close_cycle(topo, lst)
            results[reuse] = "connected" if ok else e
        facts["tw_reuse_2_loopback_only"] = results["2"]
        facts["tw_reuse_1"] = results["1"]
        lst.close()
    ok = (
        ok_count == n_ports
        and err == "EADDRNOTAVAIL"
        and results["1"] == "connected"
        and results["2"] != "connected"
    )
    return DemoResult(
        "port-exhaustion",
        "a client runs out of ephemeral ports when they all sit in TIME_WAIT "
        "(EADDRNOTAVAIL); tcp_tw_reuse=1 reuses them, the default 2 only on loopback",
        ok,
        facts,
        [
            f"{n_ports} ephemeral ports ({lo}-{hi}), tw_reuse=0: {ok_count} connections, then {err}",
            f"TIME_WAIT sockets on A: {facts['time_wait_on_A']}",
            f"tw_reuse=2 (default, loopback only): {results['2']}",
            f"tw_reuse=1: {results['1']}",
        ],
    )


def close_wait_leak(quick: bool = False) -> DemoResult:
    """CLOSE_WAIT leak: a server that never close()s fills its fd limit (RLIMIT_NOFILE) -> accept() EMFILE,
    then its accept queue, then new clients time out."""
    from tcpwise.lab.executor import AgentProc

    nofile, backlog = 16, 2
    with _lab() as (topo, _):
        agent = AgentProc("B", topo.hosts["B"].ns, nofile=nofile)
        try:
            _wait(lambda: any(r.get("ready") for r in agent.read()), 15)
            agent.send({"op": "listen", "port": 80, "backlog": backlog, "accept": True})
            time.sleep(0.2)
            outcomes: list[str] = []
            for _ in range(nofile + backlog + 3):
                c = _sock(topo, "A")
                c.settimeout(1.5)  # one SYN retransmission (1 s) and a little more
                try:
                    c.connect((B_ADDR, 80))
                    outcomes.append("ok")
                except TimeoutError:
                    outcomes.append("timeout")
                    c.close()
                    break
                except OSError as exc:
                    outcomes.append(errno.errorcode.get(exc.errno or 0, "error"))
                    c.close()
                    break
                c.close()  # the client is done: FIN -> the server's socket goes to CLOSE_WAIT, forever
                time.sleep(0.02)
            time.sleep(0.2)
            reports = agent.read()
            socks = _sockets(topo, "B")
            lst = next((s for s in socks if s.state == LISTEN), None)
            facts: dict[str, Any] = {
                "rlimit_nofile": nofile,
                "backlog": backlog,
                "clients_served": outcomes.count("ok"),
                "first_failure": next((o for o in outcomes if o != "ok"), None),
                "close_wait_on_B": _count(socks, CLOSE_WAIT),
                "accept_emfile": any(
                    r.get("call") == "accept" and r.get("errno") == "EMFILE" for r in reports
                ),
                "accept_queue": lst.rqueue if lst else None,
            }
        finally:
            agent.kill()
    ok = bool(
        facts["accept_emfile"]
        and facts["first_failure"] == "timeout"
        and facts["close_wait_on_B"] >= nofile - 6
    )
    return DemoResult(
        "close-wait-leak",
        "a server that never close()s piles up CLOSE_WAIT until accept() fails "
        "with EMFILE; then new clients time out",
        ok,
        facts,
        [
            f"server RLIMIT_NOFILE={nofile}, listen backlog={backlog}",
            f"clients served: {facts['clients_served']}, then: {facts['first_failure']}",
            f"CLOSE_WAIT on the server: {facts['close_wait_on_B']}, accept() EMFILE: "
            f"{facts['accept_emfile']}, accept queue: {facts['accept_queue']}",
        ],
    )


def keepalive(quick: bool = False) -> DemoResult:
    """Keepalive detects a silently dead peer after idle + intvl * probes seconds (tuned per socket)."""
    idle, intvl, probes = (1, 1, 2) if quick else (2, 1, 3)
    with _lab(faults=True) as (topo, faults):
        assert faults is not None
        lst = _listener(topo)
        c = _sock(topo, "A")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        c.setsockopt(socket.IPPROTO_TCP, TCP_KEEPIDLE, idle)
        c.setsockopt(socket.IPPROTO_TCP, TCP_KEEPINTVL, intvl)
        c.setsockopt(socket.IPPROTO_TCP, TCP_KEEPCNT, probes)
        c.connect((B_ADDR, 80))
        t0 = time.monotonic()  # last activity: the handshake's final ACK
        s, _ = lst.accept()
        faults.isolate("dead-B", B_ADDR)  # B's host dies silently: nothing in, nothing out
        c.settimeout(idle + intvl * probes + 5)
        try:
            c.recv(10)
            err = "EOF"
        except OSError as exc:
            err = errno.errorcode.get(exc.errno or 0, str(exc)) if exc.errno else "timeout"
        detected = round(time.monotonic() - t0, 2)
        dropped = faults.counters().get("dead-B-in", 0)
        c.close()
        s.close()
        lst.close()
        defaults = {
            k: int(open(f"/proc/sys/net/ipv4/tcp_{k}").read())
            for k in ("keepalive_time", "keepalive_intvl", "keepalive_probes")
        }
    expected = idle + intvl * probes
    default_s = defaults["keepalive_time"] + defaults["keepalive_intvl"] * defaults["keepalive_probes"]
    facts = {
        "idle": idle,
        "intvl": intvl,
        "probes": probes,
        "expected_s": expected,
        "detected_s": detected,
        "error": err,
        "probes_dropped_at_R": dropped,
        "default_detection_s": default_s,
    }
    # At R: the probes, then the RST Linux sends when it gives up (tcp_keepalive_timer -> tcp_send_active_reset).
    ok = err == "ETIMEDOUT" and expected - 0.5 <= detected <= expected + 1.5 and dropped == probes + 1
    return DemoResult(
        "keepalive",
        "keepalive finds a silently dead peer after idle + intvl x probes",
        ok,
        facts,
        [
            f"TCP_KEEPIDLE={idle} TCP_KEEPINTVL={intvl} TCP_KEEPCNT={probes}: expected {expected} s",
            f"measured: {detected} s, recv() -> {err}; {dropped} segments died at R ({probes} probes + the final RST)",
            f"with this host's defaults: {default_s} s "
            f"({defaults['keepalive_time']} + {defaults['keepalive_intvl']} x {defaults['keepalive_probes']})",
        ],
    )


def syn_flood(quick: bool = False) -> DemoResult:
    """SYN flood: half-open requests (SYN_RCVD) fill the SYN queue and a legitimate client is dropped; with
    syncookies the same client gets in."""
    backlog, flood = 8, 16
    sysctls = {"B": {"net.ipv4.tcp_syncookies": "0"}, "A": {"net.ipv4.ip_local_port_range": "32768 49999"}}
    with _lab(sysctls, faults=True) as (topo, faults):
        assert faults is not None
        # The flood's handshakes never complete: R drops every ACK from the flood's source ports, so B's
        # request socks stay in SYN_RCVD, retransmitting SYN-ACKs (tcp_synack_retries).
        faults.add(
            "flood-acks", f"ip saddr {A_ADDR} tcp sport 50000-50999 tcp flags & (syn|rst) == 0 counter drop"
        )
        lst = _listener(topo, backlog=backlog)
        flooders = []
        for i in range(flood):
            c = _sock(topo, "A")
            c.bind(("0.0.0.0", 50000 + i))
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect((B_ADDR, 80))
            flooders.append(c)
        time.sleep(0.3)
        # Request socks are dumped with idiag_state = TCP_SYN_RECV (3) by inet_req_diag_fill(); count 12 too.
        bsocks = _sockets(topo, "B")
        syn_rcvd = _count(bsocks, SYN_RECV) + _count(bsocks, NEW_SYN_RECV)

        def legit() -> str:
            c = _sock(topo, "A")
            c.settimeout(2.2)  # the SYN is retransmitted after 1 s and 3 s; give up in between
            try:
                c.connect((B_ADDR, 80))
                return "connected"
            except TimeoutError:
                return "timed out"
            except OSError as exc:
                return errno.errorcode.get(exc.errno or 0, "error")
            finally:
                c.close()

        without = legit()
        topo.set_sysctl("B", "net.ipv4.tcp_syncookies", "1")
        before = _netstat(topo, "B").get("SyncookiesSent", 0)
        with_cookies = legit()
        sent = _netstat(topo, "B").get("SyncookiesSent", 0) - before
        for c in flooders:
            c.close()
        lst.close()
    facts = {
        "backlog": backlog,
        "flood_syns": flood,
        "syn_rcvd_on_B": syn_rcvd,
        "legit_without_syncookies": without,
        "legit_with_syncookies": with_cookies,
        "syncookies_sent": sent,
    }
    # inet_csk_reqsk_queue_is_full() compares len > backlog, like the accept queue: backlog + 1 entries fit.
    ok = syn_rcvd == backlog + 1 and without == "timed out" and with_cookies == "connected" and sent >= 1
    return DemoResult(
        "syn-flood",
        "half-open requests fill the SYN queue (SYN_RCVD) and new clients are dropped; "
        "syncookies let them in",
        ok,
        facts,
        [
            f"listen backlog {backlog}, {flood} flood SYNs whose handshakes never complete",
            f"SYN_RCVD on B: {syn_rcvd} (backlog + 1: the SYN queue is full)",
            f"legitimate client, tcp_syncookies=0: {without}",
            f"legitimate client, tcp_syncookies=1: {with_cookies} ({sent} cookie(s) sent)",
        ],
    )


def accept_queue_overflow(quick: bool = False) -> DemoResult:
    """A server that does not accept(): the accept queue holds backlog+1 connections, then the kernel drops
    SYNs (ListenOverflows/ListenDrops) and clients wait in SYN_SENT."""
    backlog, clients = 2, 6
    with _lab() as (topo, _):
        lst = _listener(topo, backlog=backlog)
        cs = []
        for _ in range(clients):
            c = _sock(topo, "A")
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect((B_ADDR, 80))
            cs.append(c)
            time.sleep(0.01)
        time.sleep(0.3)
        b = _sockets(topo, "B")
        a = _sockets(topo, "A")
        listener = next(s for s in b if s.state == LISTEN)
        ns = _netstat(topo, "B")
        facts = {
            "backlog": backlog,
            "clients": clients,
            "accept_queue": listener.rqueue,
            "established_on_A": _count(a, ESTABLISHED),
            "syn_sent_on_A": _count(a, SYN_SENT),
            "listen_overflows": ns.get("ListenOverflows", 0),
            "listen_drops": ns.get("ListenDrops", 0),
        }
        for c in cs:
            c.close()
        lst.close()
    ok = (
        facts["accept_queue"] == backlog + 1
        and facts["listen_overflows"] >= 1
        and facts["syn_sent_on_A"] >= 1
    )
    return DemoResult(
        "accept-queue-overflow",
        "with nobody calling accept(), the queue holds backlog+1 "
        "connections and further handshakes are dropped",
        ok,
        facts,
        [
            f"listen backlog {backlog}, {clients} clients, no accept()",
            f"accept queue: {facts['accept_queue']} (backlog + 1: sk_acceptq_is_full() tests '>')",
            f"clients ESTABLISHED: {facts['established_on_A']}, still in SYN_SENT: {facts['syn_sent_on_A']}",
            f"B's ListenOverflows {facts['listen_overflows']}, ListenDrops {facts['listen_drops']}",
        ],
    )


def rst_on_linger(quick: bool = False) -> DemoResult:
    """close() with SO_LINGER {1, 0} sends RST: no TIME_WAIT, and the peer's recv() fails with ECONNRESET."""
    with _lab() as (topo, _):
        lst = _listener(topo)
        results = {}
        for mode in ("close", "linger0"):
            c = _sock(topo, "A")
            c.connect((B_ADDR, 80))
            port = c.getsockname()[1]
            s, _ = lst.accept()
            if mode == "linger0":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            s.settimeout(2)
            try:
                got = "EOF" if s.recv(10) == b"" else "data"
            except OSError as exc:
                got = errno.errorcode.get(exc.errno or 0, "error")
            s.close()
            time.sleep(0.05)
            st = next((x.state for x in _sockets(topo, "A") if x.sport == port), None)
            results[mode] = {"peer_recv": got, "time_wait": st == TIME_WAIT}
        lst.close()
    ok = results["close"] == {"peer_recv": "EOF", "time_wait": True} and results["linger0"] == {
        "peer_recv": "ECONNRESET",
        "time_wait": False,
    }
    return DemoResult(
        "rst-on-linger",
        "SO_LINGER {1, 0} turns close() into RST: no TIME_WAIT, peer sees ECONNRESET",
        ok,
        results,
        [
            f"plain close(): peer recv() -> {results['close']['peer_recv']}, "
            f"TIME_WAIT on closer: {results['close']['time_wait']}",
            f"SO_LINGER {{1, 0}}: peer recv() -> {results['linger0']['peer_recv']}, "
            f"TIME_WAIT on closer: {results['linger0']['time_wait']}",
        ],
    )


def middlebox_idle_timeout(quick: bool = False) -> DemoResult:
    """A firewall that forgets idle flows drops their next segment silently; keepalive below its timeout
    keeps the flow alive."""
    timeout = 2 if quick else 5
    with _lab(faults=True) as (topo, faults):
        assert faults is not None
        faults.middlebox_idle_timeout(timeout)
        lst = _listener(topo)
        conns = {}
        for name, ka in (("plain", False), ("keepalive", True)):
            c = _sock(topo, "A")
            if ka:  # probes every second, well below the middlebox's timeout
                c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                c.setsockopt(socket.IPPROTO_TCP, TCP_KEEPIDLE, 1)
                c.setsockopt(socket.IPPROTO_TCP, TCP_KEEPINTVL, 1)
            c.connect((B_ADDR, 80))
            s, _ = lst.accept()
            s.settimeout(1.5)
            conns[name] = (c, s)
        time.sleep(timeout + 1.0)  # both connections idle longer than the middlebox remembers
        got = {}
        for name, (c, s) in conns.items():
            c.send(b"hello")
            try:
                got[name] = "delivered" if s.recv(10) == b"hello" else "other"
            except TimeoutError:
                got[name] = "lost (A retransmits into the void)"
        dropped = faults.counters().get("middlebox-idle", 0)
        states = {
            name: next((x.state for x in _sockets(topo, "A") if x.sport == c.getsockname()[1]), None)
            for name, (c, _s) in conns.items()
        }
        for c, s in conns.values():
            c.close()
            s.close()
        lst.close()
    facts = {
        "middlebox_timeout_s": timeout,
        "plain": got["plain"],
        "with_keepalive_1s": got["keepalive"],
        "segments_dropped_by_middlebox": dropped,
        "plain_state_on_A": states["plain"],
    }
    ok = (
        got["plain"].startswith("lost")
        and got["keepalive"] == "delivered"
        and dropped >= 1
        and states["plain"] == ESTABLISHED
    )
    return DemoResult(
        "middlebox-idle-timeout",
        "a middlebox that forgets idle flows silently drops their next "
        "segment; keepalive below its timeout keeps the flow",
        ok,
        facts,
        [
            f"stateful firewall at R forgets TCP flows after {timeout} s idle",
            f"idle {timeout + 1} s, then send: without keepalive -> {got['plain']} "
            f"(A still ESTABLISHED: {states['plain'] == ESTABLISHED})",
            f"with keepalive every 1 s -> {got['keepalive']}",
            f"segments dropped by the middlebox: {dropped}",
        ],
    )


DEMOS: dict[str, Callable[[bool], DemoResult]] = {
    "time-wait": time_wait,
    "port-exhaustion": port_exhaustion,
    "close-wait-leak": close_wait_leak,
    "keepalive": keepalive,
    "syn-flood": syn_flood,
    "accept-queue-overflow": accept_queue_overflow,
    "rst-on-linger": rst_on_linger,
    "middlebox-idle-timeout": middlebox_idle_timeout,
}


SUMMARY: dict[str, str] = {
    "time-wait": "TIME_WAIT is 60 s whatever tcp_fin_timeout says (it bounds FIN_WAIT_2)",
    "port-exhaustion": "ephemeral ports all in TIME_WAIT -> EADDRNOTAVAIL; tcp_tw_reuse",
    "close-wait-leak": "server never close()s: CLOSE_WAIT to the fd limit, EMFILE, timeouts",
    "keepalive": "keepalive detection time with tuned knobs vs the defaults",
    "syn-flood": "SYN queue full of SYN_RCVD drops clients; syncookies let them in",
    "accept-queue-overflow": "no accept(): queue holds backlog+1, further SYNs dropped",
    "rst-on-linger": "SO_LINGER {1, 0}: RST, no TIME_WAIT, peer gets ECONNRESET",
    "middlebox-idle-timeout": "firewall forgets idle flows; keepalive keeps them",
}


def run_demo(name: str, quick: bool = False) -> DemoResult:
    from tcpwise.lab.netns import check_capabilities

    fn = DEMOS.get(name)
    if fn is None:
        raise UsageError(f"unknown lab demo {name!r}; valid: {', '.join(DEMOS)}")
    check_capabilities()
    return fn(quick)

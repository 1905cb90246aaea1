"""The lab agent: a small process inside one host namespace that performs socket steps on command.

Theory of operation
-------------------
The executor starts one agent per host with ``ip netns exec tcpwise-<run>-a python -m tcpwise.lab.agent``, so
every socket the agent makes lives in that host's network namespace and belongs to a process the Crash step can
SIGKILL. Commands arrive on stdin and reports leave on stdout, one JSON object per line::

    -> {"op": "connect", "sock": "c", "to": "198.18.1.1", "port": 80, "opts": {"keepalive": true}}
    <- {"t": 12345.678, "sock": "c", "call": "connect"}
    <- {"t": 12345.779, "sock": "c", "call": "connected"}

A report's ``call`` and fields (``errno``, ``nbytes``, ``port``, ``backlog``, ``why``, ``text``) are those of an
``app`` event of the schema (tcpwise.events): the executor turns each report into one, validated there.

``t`` is ``time.monotonic()``: CLOCK_MONOTONIC is one clock for the whole machine (no time namespaces here), so
the executor can put agent reports, captured packets and sock_diag samples on one time axis.

The agent is single-threaded around a :mod:`selectors` loop with non-blocking sockets. Threads would be wrong
here: a thread blocked in ``recv()`` keeps the socket alive, so ``close()`` from another thread would not send
the FIN when the script says (the kernel releases the socket only when the last syscall returns). Like the
model's application, the agent reads whatever arrives at once (so that ``close()`` never meets unread data,
which would make Linux send RST instead of FIN — RFC 2525 §2.17, tcp_close() in net/ipv4/tcp.c).

Only the standard library is imported: the agent starts in the time of a bare interpreter.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import socket
import struct
import sys
import time
from typing import Any

__all__ = ["Agent", "main"]

# linux/tcp.h option numbers (not all are in the socket module of every Python).
TCP_USER_TIMEOUT = 18
TCP_KEEPIDLE = 4
TCP_KEEPINTVL = 5
TCP_KEEPCNT = 6


# The script op -> the call an app event names when the op fails with an OSError.
_CALL_OF_OP = {
    "listen": "listen",
    "accept": "accept",
    "connect": "connect",
    "send": "send",
    "shutdown": "shutdown",
    "close": "close",
    "abort": "abort",
}


class Agent:
    def __init__(self, out: Any = None) -> None:
        self.sel = selectors.DefaultSelector()
        self.socks: dict[str, socket.socket] = {}
        self.listeners: dict[int, socket.socket] = {}
        self.listen_cfg: dict[int, dict[str, Any]] = {}
        self.pending_accept: dict[int, list[str]] = {}
        self.on_eof: dict[str, str] = {}
        self.outbuf: dict[str, bytes] = {}
        self.connecting: set[str] = set()
        self.ends: dict[str, tuple[int, str, int]] = {}  # label -> (local port, peer address, peer port)
        self.stalled: set[int] = set()  # listeners whose accept() failed for lack of descriptors
        self.paused: set[str] = set()  # sockets whose application does not read (until resume_reads)
        self.out = out or sys.stdout
        self.inbuf = b""
        self.running = True

    # --- reporting ---------------------------------------------------------------------------------------------
    def report(self, call: str, sock: str | None = None, **extra: Any) -> None:
        d: dict[str, Any] = {"call": call}
        s = self.socks.get(sock) if sock is not None else None
        if s is not None:
            # The socket's state at this instant, measured: tcp_info.tcpi_state is the first byte of struct
            # tcp_info (linux/tcp.h). It catches states too short for sock_diag polling to see (CLOSE_WAIT when
            # the application closes on EOF at once, SYN_SENT at connect()).
            try:
                d["kstate"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
            except OSError:
                pass
        d["t"] = time.monotonic()
        if sock is not None:
            d["sock"] = sock
            if sock in self.ends:
                d["lport"], d["raddr"], d["rport"] = self.ends[sock]
        d.update(extra)
        self.out.write(json.dumps(d) + "\n")
        self.out.flush()

    # --- socket options from the host's EndpointConfig ---------------------------------------------------------
    @staticmethod
    def apply_opts(s: socket.socket, opts: dict[str, Any]) -> None:
        if opts.get("keepalive"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            # Per-socket copies of the sysctls (tcp(7)): the socket wins over the namespace default.
            if "keepalive_time" in opts:
                s.setsockopt(socket.IPPROTO_TCP, TCP_KEEPIDLE, max(1, int(opts["keepalive_time"])))
            if "keepalive_intvl" in opts:
                s.setsockopt(socket.IPPROTO_TCP, TCP_KEEPINTVL, max(1, int(opts["keepalive_intvl"])))
            if "keepalive_probes" in opts:
                s.setsockopt(socket.IPPROTO_TCP, TCP_KEEPCNT, max(1, int(opts["keepalive_probes"])))
        if opts.get("user_timeout"):
            s.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, int(float(opts["user_timeout"]) * 1000))
        if opts.get("mss") and int(opts["mss"]) != 1460:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, int(opts["mss"]))

    @staticmethod
    def _family(addr: str) -> int:
        return socket.AF_INET6 if ":" in addr else socket.AF_INET

    # --- commands ------------------------------------------------------------------------------------------------
    def do(self, cmd: dict[str, Any]) -> None:
        op = cmd.get("op")
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            self.report("error", errno="EINVAL", text=f"unknown op {op!r}")
            return
        try:
            handler(cmd)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "EIO")
            self.report(_CALL_OF_OP.get(str(op), "error"), cmd.get("sock"), errno=name)

    def op_listen(self, cmd: dict[str, Any]) -> None:
        port = int(cmd.get("port", 80))
        fam = socket.AF_INET6 if cmd.get("ipv6") else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.apply_opts(s, cmd.get("opts", {}))
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", port))
        backlog = int(cmd.get("backlog") or 128)
        s.listen(backlog)
        s.setblocking(False)
        self.listeners[port] = s
        self.listen_cfg[port] = {
            "accept": bool(cmd.get("accept", True)),
            "on_eof": cmd.get("on_eof", ""),
            "n": 0,
        }
        self.pending_accept[port] = []
        self.report("listen", port=port, backlog=backlog)
        # A never-accepting server is not watched at all: a readable listener would wake the loop forever.
        if self.listen_cfg[port]["accept"]:
            self.sel.register(s, selectors.EVENT_READ, ("listen", port))

    def op_accept(self, cmd: dict[str, Any]) -> None:
        port = int(cmd.get("port", 80))
        lst = self.listeners.get(port)
        if lst is None:
            self.report("accept", errno="EINVAL", text=f"no listener on port {port}")
            return
        # One non-blocking accept(), like the model's Accept step: an empty queue is EAGAIN, not a wait.
        self.pending_accept.setdefault(port, []).append(cmd.get("sock", "s"))
        before = len(self.pending_accept[port])
        self._try_accept(port, once=True)
        if len(self.pending_accept[port]) == before:
            self.pending_accept[port].pop()
            self.report("accept", errno="EAGAIN", why="nothing_queued")

    def _label_for(self, port: int) -> str:
        cfg = self.listen_cfg[port]
        cfg["n"] += 1
        return "s" if cfg["n"] == 1 else f"s{cfg['n']}"

    def _try_accept(self, port: int, once: bool = False) -> None:
        lst = self.listeners.get(port)
        if lst is None:
            return
        cfg = self.listen_cfg[port]
        while True:
            if not cfg["accept"] and not self.pending_accept.get(port):
                try:
                    self.sel.unregister(lst)
                except KeyError:
                    pass
                return
            try:
                conn, peer = lst.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE etc.: the application learns it, the connection stays queued
                name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                self.report("accept", errno=name)
                # The listener stays readable: stop watching it until a descriptor is freed, or the loop spins.
                try:
                    self.sel.unregister(lst)
                except KeyError:
                    pass
                self.stalled.add(port)
                return
            label = (
                self.pending_accept[port].pop(0) if self.pending_accept.get(port) else self._label_for(port)
            )
            conn.setblocking(False)
            self.socks[label] = conn
            self.ends[label] = (port, peer[0], peer[1])
            self.on_eof[label] = cfg["on_eof"] if not once else ""
            self._want(label, selectors.EVENT_READ)
            self.report("accept", label)
            if once:
                return

    def op_connect(self, cmd: dict[str, Any]) -> None:
        label = cmd.get("sock", "c")
        to = cmd["to"]
        s = socket.socket(self._family(to), socket.SOCK_STREAM)
        self.apply_opts(s, cmd.get("opts", {}))
        if cmd.get("sport"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::" if ":" in to else "0.0.0.0", int(cmd["sport"])))
        s.setblocking(False)
        self.socks[label] = s
        self.on_eof[label] = cmd.get("on_eof", "")
        rc = s.connect_ex((to, int(cmd.get("port", 80))))
        self.ends[label] = (s.getsockname()[1], to, int(cmd.get("port", 80)))
        self.report("connect", label)
        if rc in (0, errno.EISCONN):
            self._connected(label)
        elif rc == errno.EINPROGRESS:
            self.connecting.add(label)
            self.sel.register(s, selectors.EVENT_WRITE, ("conn", label))
        else:
            self.report("connect", label, errno=errno.errorcode.get(rc, "EIO"))
            self._drop(label)

    def _connected(self, label: str) -> None:
        self.report("connected", label)

    def op_send(self, cmd: dict[str, Any]) -> None:
        label = cmd.get("sock", "c")
        data = bytes.fromhex(cmd.get("data", "")) if cmd.get("data") else b"x" * int(cmd.get("nbytes", 0))
        s = self._sock(label)
        if s is None:
            return
        pending = self.outbuf.get(label, b"") + data
        try:
            n = s.send(pending) if pending else 0
        except BlockingIOError:
            n = 0
        self.report("send", label, nbytes=len(data))
        self.outbuf[label] = pending[n:]
        if self.outbuf[label]:
            self._want(label, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def op_shutdown(self, cmd: dict[str, Any]) -> None:
        label = cmd.get("sock", "c")
        s = self._sock(label)
        if s is not None:
            s.shutdown(socket.SHUT_WR)
            self.report("shutdown", label)

    def op_close(self, cmd: dict[str, Any]) -> None:
        label = cmd.get("sock", "c")
        if self._sock(label) is not None:
            self.report("close", label)
            self._drop(label)

    def op_abort(self, cmd: dict[str, Any]) -> None:
        label = cmd.get("sock", "c")
        s = self._sock(label)
        if s is not None:
            # SO_LINGER {l_onoff=1, l_linger=0}: close() sends RST and skips TIME_WAIT (socket(7), tcp_close()).
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.report("abort", label)
            self._drop(label)

    def op_quit(self, cmd: dict[str, Any]) -> None:
        self.running = False

    # --- helpers -------------------------------------------------------------------------------------------------
    def _sock(self, label: str) -> socket.socket | None:
        s = self.socks.get(label)
        if s is None:
            self.report("error", label, errno="EBADF", text=f"no socket {label!r}")
        return s

    def _want(self, label: str, events: int) -> None:
        s = self.socks[label]
        if label in self.paused:
            events &= ~selectors.EVENT_READ
        if not events:
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            return
        try:
            self.sel.modify(s, events, ("conn", label))
        except KeyError:
            self.sel.register(s, events, ("conn", label))

    def op_pause_reads(self, cmd: dict[str, Any]) -> None:
        """The application stops reading this socket (it may not exist yet): its receive window fills up."""
        label = cmd.get("sock", "c")
        self.paused.add(label)
        s = self.socks.get(label)
        if s is not None:
            try:
                events = self.sel.get_key(s).events
            except KeyError:
                return
            self._want(label, events)

    def op_resume_reads(self, cmd: dict[str, Any]) -> None:
        label = cmd.get("sock", "c")
        self.paused.discard(label)
        if label in self.socks:
            self._want(label, selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbuf.get(label) else 0))

    def _drop(self, label: str) -> None:
        s = self.socks.pop(label, None)
        self.connecting.discard(label)
        self.outbuf.pop(label, None)
        if s is not None:
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
            for port in list(self.stalled):  # a descriptor is free again: retry the stalled listeners
                self.stalled.discard(port)
                if self.listen_cfg[port]["accept"]:
                    self.sel.register(self.listeners[port], selectors.EVENT_READ, ("listen", port))

    def _on_conn(self, label: str, mask: int) -> None:
        s = self.socks.get(label)
        if s is None:
            return
        if label in self.connecting and mask & selectors.EVENT_WRITE:
            self.connecting.discard(label)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                name = errno.errorcode.get(err, str(err))
                self.report("error", label, errno=name)
                self._drop(label)
                return
            self._connected(label)
            self._want(label, selectors.EVENT_READ)
            return
        if mask & selectors.EVENT_WRITE and self.outbuf.get(label):
            try:
                n = s.send(self.outbuf[label])
                self.outbuf[label] = self.outbuf[label][n:]
            except BlockingIOError:
                pass
            except OSError as exc:
                self._error(label, exc)
                return
            if not self.outbuf[label]:
                self._want(label, selectors.EVENT_READ)
        if mask & selectors.EVENT_READ:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                self._error(label, exc)
                return
            if data:
                self.report("recv", label, nbytes=len(data))
                return
            self.report("eof", label)
            if self.on_eof.get(label) == "close":
                self.report("close", label)
                self._drop(label)
            else:
                # EOF stays readable forever: stop watching for reads, keep the socket (CLOSE_WAIT) open.
                self.sel.unregister(s)

    def _error(self, label: str, exc: OSError) -> None:
        name = errno.errorcode.get(exc.errno or 0, "EIO")
        self.report("error", label, errno=name)
        # The socket is dead in the kernel (CLOSED); the application closes its descriptor.
        self._drop(label)

    # --- main loop -------------------------------------------------------------------------------------------------
    def run(self, infd: int) -> None:
        os.set_blocking(infd, False)
        self.sel.register(infd, selectors.EVENT_READ, ("stdin", None))
        self.out.write(json.dumps({"ready": True, "pid": os.getpid(), "t": time.monotonic()}) + "\n")
        self.out.flush()
        while self.running:
            for key, mask in self.sel.select(timeout=1.0):
                kind, arg = key.data
                if kind == "stdin":
                    self._on_stdin(infd)
                elif kind == "listen":
                    self._try_accept(arg)
                else:
                    self._on_conn(arg, mask)

    def _on_stdin(self, infd: int) -> None:
        try:
            chunk = os.read(infd, 65536)
        except BlockingIOError:
            return
        if not chunk:  # the executor went away: nothing more to do
            self.running = False
            return
        self.inbuf += chunk
        while b"\n" in self.inbuf:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if line.strip():
                self.do(json.loads(line))


def main() -> None:
    Agent().run(sys.stdin.fileno())


if __name__ == "__main__":
    main()

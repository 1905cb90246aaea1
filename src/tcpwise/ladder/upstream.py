"""A minimal HTTP/1.1 keep-alive server: the "Python upstream" of the real-software reproducer.

It behaves like the Python app servers the ladder warns about (uvicorn's ``--timeout-keep-alive``, gunicorn's
``keepalive``): after it has written a response it waits ``--keepalive`` seconds for the next request on the same
connection and then closes the connection with ``close()`` — a FIN, or a RST when a request has already arrived
that it has not read yet (Linux ``tcp_close``: unread data in the receive queue -> RST, RFC 2525 §2.17).

Stdlib only (selectors, one thread) so it starts in a few milliseconds inside a lab namespace:
``python -m tcpwise.ladder.upstream --port 8000 --keepalive 1.0``. Every response is ``200 OK`` with a short body;
request bodies (``Content-Length``) are read and ignored. It logs one line per event to stdout:
``<monotonic time> accept|request|close-idle|eof <peer>``.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
import time

__all__ = ["main", "serve"]

BODY = b"ok\n"


class _Conn:
    __slots__ = ("sock", "peer", "buf", "idle_since")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.buf = b""
        self.idle_since = time.monotonic()


def _log(what: str, peer: str) -> None:
    sys.stdout.write(f"{time.monotonic():.6f} {what} {peer}\n")
    sys.stdout.flush()


def _one_request(c: _Conn) -> bool:
    """Answer one complete request in ``c.buf`` if there is one; True when it did."""
    head_end = c.buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = c.buf[:head_end].decode("latin-1")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip() or 0)
    end = head_end + 4 + length
    if len(c.buf) < end:
        return False
    c.buf = c.buf[end:]
    _log("request", c.peer)
    c.sock.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )
    c.idle_since = time.monotonic()  # the keep-alive clock starts when the response is written (as uvicorn's)
    return True


def serve(port: int, keepalive: float, duration: float, host: str = "0.0.0.0") -> None:
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(128)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    conns: dict[int, _Conn] = {}
    _log("listen", f"{host}:{port}")
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        now = time.monotonic()
        wake = min([c.idle_since + keepalive for c in conns.values()] + [deadline]) - now
        for key, _ in sel.select(max(0.0, wake)):
            if key.data is None:
                s, addr = lsock.accept()
                s.setblocking(True)
                c = _Conn(s, f"{addr[0]}:{addr[1]}")
                conns[s.fileno()] = c
                sel.register(s, selectors.EVENT_READ, c)
                _log("accept", c.peer)
                continue
            c = key.data
            data = c.sock.recv(65536)
            if not data:
                _log("eof", c.peer)
                sel.unregister(c.sock)
                conns.pop(c.sock.fileno(), None)
                c.sock.close()
                continue
            c.buf += data
            while _one_request(c):
                pass
        now = time.monotonic()
        for fd, c in list(conns.items()):
            if not c.buf and now - c.idle_since >= keepalive:
                # The keep-alive timer fired. What arrived in the kernel meanwhile is not looked at: a real
                # server's timer callback closes the transport just the same.
                _log("close-idle", c.peer)
                sel.unregister(c.sock)
                del conns[fd]
                c.sock.close()
    for c in conns.values():
        c.sock.close()
    lsock.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tcpwise.ladder.upstream", description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8000, help="TCP port [8000]")
    ap.add_argument("--keepalive", type=float, default=1.0, help="keep-alive idle timeout in seconds [1.0]")
    ap.add_argument("--duration", type=float, default=120.0, help="exit after this many seconds [120]")
    args = ap.parse_args(argv)
    serve(args.port, args.keepalive, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())

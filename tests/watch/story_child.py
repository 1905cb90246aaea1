"""Scripted connections with known stories, run inside a test's own network namespace (``ip netns exec``).

Usage: ``python story_child.py SCENARIO [SCENARIO ...]``. Every scenario uses loopback only, a listener of its
own, and prints nothing; at the end one JSON line maps each scenario to the ports it used:
``{"client-close": {"server": 40001, "client": 51234}, ...}``. What each side must have lived through is written
next to the scenario (tests/watch/test_watch_kernel.py checks the watch against it).
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time

LO = "127.0.0.1"
LINGER0 = struct.pack("ii", 1, 0)


def pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    ls = socket.socket()
    ls.bind((LO, 0))
    ls.listen(8)
    c = socket.create_connection(ls.getsockname(), timeout=5)
    s, _ = ls.accept()
    return ls, c, s


def ports(ls: socket.socket, c: socket.socket) -> dict[str, int]:
    return {"server": ls.getsockname()[1], "client": c.getsockname()[1]}


def client_close() -> dict[str, int]:
    # client: ... ESTABLISHED > FIN_WAIT_1 > FIN_WAIT_2 > TIME_WAIT; server: ... CLOSE_WAIT > LAST_ACK > CLOSED
    ls, c, s = pair()
    p = ports(ls, c)
    c.close()
    time.sleep(0.03)
    s.close()
    ls.close()
    return p


def server_close() -> dict[str, int]:
    # server: ... FIN_WAIT_1 > FIN_WAIT_2 > TIME_WAIT; client: ... CLOSE_WAIT > LAST_ACK > CLOSED
    ls, c, s = pair()
    p = ports(ls, c)
    s.close()
    assert c.recv(10) == b""
    time.sleep(0.01)
    c.close()
    ls.close()
    return p


def rst_established() -> dict[str, int]:
    # server: RST sent in ESTABLISHED (abortive close); client: RST received in ESTABLISHED
    ls, c, s = pair()
    p = ports(ls, c)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    s.close()
    try:
        c.recv(10)
    except ConnectionResetError:
        pass
    c.close()
    ls.close()
    return p


def refused() -> dict[str, int]:
    # client: CLOSED > SYN_SENT > CLOSED, RST received in SYN_SENT
    t = socket.socket()
    t.bind((LO, 0))
    port = t.getsockname()[1]
    t.close()
    c = socket.socket()
    try:
        c.connect((LO, port))
    except ConnectionRefusedError:
        pass
    p = {"server": port, "client": c.getsockname()[1]}
    c.close()
    return p


def rst_close_wait() -> dict[str, int]:
    # client half-closes (shutdown: not orphaned, stays a full FIN_WAIT_2 socket); server in CLOSE_WAIT aborts:
    # server RST sent in CLOSE_WAIT; client RST received in FIN_WAIT_2
    ls, c, s = pair()
    p = ports(ls, c)
    c.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    time.sleep(0.01)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    s.close()
    time.sleep(0.01)
    c.close()
    ls.close()
    return p


def abort_unread() -> dict[str, int]:
    # client closes with unread data: RST instead of FIN (RFC 2525 2.17): client RST sent in ESTABLISHED,
    # server RST received in ESTABLISHED
    ls, c, s = pair()
    p = ports(ls, c)
    s.sendall(b"unread")
    time.sleep(0.01)
    c.close()
    time.sleep(0.01)
    s.close()
    ls.close()
    return p


def _nft(*args: str) -> None:
    subprocess.run(["nft", *args], check=True, capture_output=True, timeout=10)


def simultaneous() -> dict[str, int]:
    # The client's first FIN is dropped on arrival (nft input hook: a drop on output would only make the
    # sender try again, not retransmit), so the server's FIN reaches the client in FIN_WAIT_1:
    # client FIN_WAIT_1 > CLOSING > TIME_WAIT (simultaneous close, one retransmission of its FIN);
    # server FIN_WAIT_1 > FIN_WAIT_2 > TIME_WAIT. Both closed first, both hold TIME_WAIT.
    ls, c, s = pair()
    p = ports(ls, c)
    _nft("add", "table", "inet", "storychild")
    _nft("add", "chain", "inet", "storychild", "in", "{ type filter hook input priority 0; }")
    _nft(
        "add",
        "rule",
        "inet",
        "storychild",
        "in",
        "tcp",
        "sport",
        str(p["client"]),
        "tcp",
        "flags",
        "&",
        "fin",
        "==",
        "fin",
        "drop",
    )
    try:
        c.shutdown(socket.SHUT_WR)
        time.sleep(0.02)
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.02)
    finally:
        _nft("delete", "table", "inet", "storychild")
    deadline = time.time() + 5
    assert c.recv(10) == b""
    while time.time() < deadline:  # the client's retransmitted FIN reaches the server (RTO >= 200 ms)
        try:
            s.setblocking(False)
            if s.recv(10) == b"":
                break
        except BlockingIOError:
            time.sleep(0.02)
    c.close()
    s.close()
    ls.close()
    return p


def retransmit() -> dict[str, int]:
    # One data segment from the client is dropped once: the client retransmits it (retransmits >= 1).
    ls, c, s = pair()
    p = ports(ls, c)
    _nft("add", "table", "inet", "storychild2")
    _nft("add", "chain", "inet", "storychild2", "in", "{ type filter hook input priority 0; }")
    _nft(
        "add",
        "rule",
        "inet",
        "storychild2",
        "in",
        "tcp",
        "sport",
        str(p["client"]),
        "meta",
        "length",
        "gt",
        "60",
        "drop",
    )
    try:
        c.sendall(b"x" * 100)
        # Long enough to also drop the tail loss probe (sent after ~2 RTTs; not reported by the tracepoint),
        # short of the retransmission timeout (TCP_RTO_MIN 200 ms), whose retransmission gets through.
        time.sleep(0.12)
    finally:
        _nft("delete", "table", "inet", "storychild2")
    got = b""
    s.settimeout(5)
    while len(got) < 100:
        got += s.recv(100)
    s.close()
    assert c.recv(10) == b""
    c.close()
    ls.close()
    return p


SCENARIOS = {
    "client-close": client_close,
    "server-close": server_close,
    "rst-established": rst_established,
    "refused": refused,
    "rst-close-wait": rst_close_wait,
    "abort-unread": abort_unread,
    "simultaneous": simultaneous,
    "retransmit": retransmit,
}


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    out = {}
    for name in sys.argv[1:]:
        out[name] = SCENARIOS[name]()
        time.sleep(0.01)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

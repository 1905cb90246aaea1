"""The Linux behaviours the liveness scenarios rely on, checked on real loopback sockets (no root needed).

* heartbeat-asymmetry: a peer that close()d answers later data with RST, and a RST received in CLOSE_WAIT makes
  the next write fail with EPIPE, not ECONNRESET (tcp_reset; the model's linux profile does the same).
* rst-on-timeout: data already in the receive buffer stays readable after a RST; recv() reports ECONNRESET only
  once it is drained (tcp_recvmsg copies the queue before sk_err).
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux TCP behaviour")


def _pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = socket.create_connection(srv.getsockname(), timeout=5)
    acc, _ = srv.accept()
    return srv, cli, acc


def test_rst_in_close_wait_reports_epipe() -> None:
    srv, cli, acc = _pair()
    try:
        acc.close()  # server closes: FIN; the client does not read (CLOSE_WAIT)
        time.sleep(0.05)
        assert (
            cli.send(b"PING....") == 8
        )  # accepted by the client's kernel; the closed server socket answers RST
        time.sleep(0.1)
        with pytest.raises(OSError) as exc:
            cli.send(b"PING....")
        assert exc.value.errno == errno.EPIPE
    finally:
        cli.close()
        srv.close()


def test_unread_data_survives_a_reset() -> None:
    srv, cli, acc = _pair()
    try:
        acc.sendall(b"x" * 1000)
        time.sleep(0.05)
        acc.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        acc.close()  # RST
        time.sleep(0.1)
        assert len(cli.recv(100_000)) == 1000
        with pytest.raises(OSError) as exc:
            cli.recv(100_000)
        assert exc.value.errno == errno.ECONNRESET
    finally:
        cli.close()
        srv.close()

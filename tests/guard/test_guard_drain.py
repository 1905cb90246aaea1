"""SIGTERM drain of the example server (a real process): in-flight requests finish, new connections are
refused at the listener, connections still open at the deadline are closed with reason ``shutdown``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "guard_server.py"


def test_guard_sigterm_drain_example_server() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0", "--drain", "1.0", "--log-level", "INFO"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        assert first.startswith("listening on "), first + proc.stderr.read()
        port = int(first.rsplit(":", 1)[1])
        busy = socket.create_connection(("127.0.0.1", port), timeout=5)
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        idle.sendall(b"hello\n")
        assert idle.recv(100) == b"hello\n"
        busy.sendall(b"sleep 0.6\n")
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        assert refused, "the listener must close as soon as the drain starts"
        assert busy.recv(100) == b"slept 0.6\n"  # the in-flight request completed during the drain
        busy.close()  # the client ends its session: its handler returns
        assert idle.recv(100) == b""  # the idle one is closed at the 1 s deadline (FIN, graceful mode)
        idle.close()
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["drained"] and stats["closed_at_deadline"] == 1
        assert stats["closes_total"] == {"peer_closed": 1, "shutdown": 1}, stats
        # Structured log: one JSON record per non-routine close, with the reason as a field.
        recs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert any(r.get("event") == "close" and r.get("reason") == "shutdown" for r in recs), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

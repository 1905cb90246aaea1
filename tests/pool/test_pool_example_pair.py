"""The example pair runs as documented: guard_server.py + pool_client.py, pauses longer than the server's idle
timeout, zero failed requests, and the server reports every close with a reason."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

EX = Path(__file__).resolve().parents[2] / "examples"


def test_pool_example_pair() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    srv = subprocess.Popen(
        [sys.executable, str(EX / "guard_server.py"), "--port", "0", "--idle", "0.4", "--drain", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert srv.stdout is not None
        port = srv.stdout.readline().rsplit(":", 1)[1].strip()
        cl = subprocess.run(
            [
                sys.executable,
                str(EX / "pool_client.py"),
                "--port",
                port,
                "--server-idle",
                "0.4",
                "--requests",
                "120",
                "--bursts",
                "3",
                "--pause",
                "0.5",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert cl.returncode == 0, cl.stdout + cl.stderr
        stats = json.loads(cl.stdout.strip().splitlines()[-1])
        assert stats["failures"] == 0 and stats["borrows_total"] >= 120
        assert stats["validation_failures_total"].get("idle", 0) > 0  # retired before the server's timeout
        srv.send_signal(signal.SIGTERM)
        out, _ = srv.communicate(timeout=20)
        closes = json.loads(out.strip().splitlines()[-1])["closes_total"]
        assert sum(closes.values()) == stats["opened_total"]  # every connection closed, each with a reason
        assert "idle_timeout" not in closes  # the pool always closed first
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait(timeout=10)

"""`tcpwise guard ...`: exit codes and messages, Guard.check_client_heartbeat, and `guard serve` as a real
process under a bounded flood beyond its descriptor limit."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from typing import Any

import pytest

from tcpwise.cli import main
from tcpwise.guard import Guard, GuardConfig, HeartbeatMismatch, Timeouts
from tcpwise.guard.hostile import FloodPlan, flood, legit_clients
from tcpwise.sockets.testing import run


def test_guard_cli_heartbeat_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["guard", "heartbeat", "--interval", "30", "--server-idle", "10"]) == 1
    assert "MISMATCH: client heartbeat interval 30 s >= server idle timeout 10 s" in capsys.readouterr().out
    assert main(["guard", "heartbeat", "--interval", "6", "--server-idle", "10"]) == 0
    assert capsys.readouterr().out.startswith("WARNING:")
    assert main(["guard", "heartbeat", "--interval", "5", "--server-idle", "10"]) == 0
    assert capsys.readouterr().out.startswith("ok:")


def test_guard_cli_bad_input_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["guard", "heartbeat", "--interval", "0", "--server-idle", "10"]) == 2
    assert main(["guard", "serve", "--host", "192.0.2.1"]) == 2
    err = capsys.readouterr().err
    assert "--host must be a loopback address" in err and "Traceback" not in err
    for bad in (["--idle", "-1"], ["--min-rate", "nan"], ["--backlog", "0"], ["--first-byte", "inf"]):
        with pytest.raises(SystemExit) as exc:
            main(["guard", "serve", *bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]  # argparse: the usage, then one error line
        assert last.startswith("tcpwise guard serve: error: ") and "must be > 0 and finite" in last
        assert err.count("error") == 1 and "Traceback" not in err


def test_guard_serve_backlog_and_fd_headroom_are_bounded_before_listening(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--backlog 2**63 was an OverflowError (exit 70); --fd-headroom at or past the descriptor limit left accepting
    paused and every client waiting, silently. Both: one line, exit 2, before anything listens."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    monkeypatch.setattr(
        resource, "getrlimit", lambda what: (2000, hard) if what == resource.RLIMIT_NOFILE else (soft, hard)
    )
    for bad, needle in (
        (["--backlog", "9223372036854775808"], "--backlog must be between 1 and 65535"),
        (["--backlog", "65536"], "--backlog must be between 1 and 65535"),
        (
            ["--fd-headroom", "3000"],
            "leaves no descriptor for a connection: the limit (RLIMIT_NOFILE, ulimit -n) is 2000",
        ),
        (["--fd-headroom", "2000"], "leaves no descriptor"),
    ):
        assert main(["guard", "serve", "--port", "0", *bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("tcpwise: error: ") and needle in err and err.count("\n") == 1, err


def test_guard_check_client_heartbeat() -> None:
    async def h(r: object, w: object) -> None: ...

    g = Guard(h, GuardConfig(timeouts=Timeouts(idle=10)))  # type: ignore[arg-type]
    with pytest.raises(HeartbeatMismatch):
        g.check_client_heartbeat(30)
    assert g.check_client_heartbeat(4).startswith("ok")
    assert Guard(h).check_client_heartbeat(3600).startswith("ok: no idle timeout")  # type: ignore[arg-type]


SERVE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from tcpwise.cli import main
sys.exit(main(["guard", "serve", "--port", "0", "--first-byte", "1", "--log-rate", "2"]))
"""


def _serve_under_flood() -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]
        port = int(banner[0].split(":")[1].split()[0])

        async def attack_and_use() -> dict[str, Any]:
            plan = FloodPlan(conns=300, sources=10, seconds=2.5, rate=1000, max_attempts=5000)
            att = asyncio.ensure_future(flood("127.0.0.1", port, plan))
            await asyncio.sleep(0.5)
            legit = await legit_clients("127.0.0.1", port, 30, 0.05, 2, expect=b"GET\n")
            await att
            return legit

        legit = run(attack_and_use())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return {"banner": banner, "legit": legit, "rc": proc.returncode, "stats": json.loads(out), "err": err}


@pytest.mark.slow
def test_guard_serve_holds_under_a_flood_beyond_its_fd_limit() -> None:
    res = _serve_under_flood()
    assert "cap " in res["banner"][1] and "RLIMIT_NOFILE 128" in res["banner"][1]
    assert res["rc"] == 0
    err = res["err"]
    assert "Traceback" not in err
    # Per kind of record (refused, evicted, first-byte timeout, ...): a burst of 20, then 2 per second.
    assert len(err.splitlines()) <= 4 * (20 + 2 * 4), f"{len(err.splitlines())} log lines"
    assert "similar records suppressed" in err  # the limiter was needed, and said so
    assert res["legit"]["ok"] >= 0.9 * res["legit"]["requests"], res["legit"]
    st = res["stats"]
    assert st["peak_active"] <= st["connection_cap"] < 128 and st["accept_errors_total"] == {}

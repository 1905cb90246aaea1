"""`tcpwise guard ...` exit codes and messages, and Guard.check_client_heartbeat."""

from __future__ import annotations

import pytest

from tcpwise.cli import main
from tcpwise.guard import Guard, GuardConfig, HeartbeatMismatch, Timeouts


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
    assert main(["guard", "serve", "--idle", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--host must be a loopback address" in err and "Traceback" not in err
    assert "timeout idle must be > 0" in err


def test_guard_check_client_heartbeat() -> None:
    async def h(r: object, w: object) -> None: ...

    g = Guard(h, GuardConfig(timeouts=Timeouts(idle=10)))  # type: ignore[arg-type]
    with pytest.raises(HeartbeatMismatch):
        g.check_client_heartbeat(30)
    assert g.check_client_heartbeat(4).startswith("ok")
    assert Guard(h).check_client_heartbeat(3600).startswith("ok: no idle timeout")  # type: ignore[arg-type]

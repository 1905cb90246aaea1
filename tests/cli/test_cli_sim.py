"""The CLI as a user meets it: exit codes, one-line errors, the JSON schema other tools consume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tcpwise.cli import main
from tcpwise.vocab import FLAG_ORDER, STATE_NAMES

FOUNDATION = [
    "handshake",
    "simultaneous-open",
    "close",
    "close-three-segments",
    "half-close",
    "simultaneous-close",
    "lost-last-ack",
    "server-close",
]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcpwise.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_scenarios_json_lists_the_foundation() -> None:
    r = run_cli("scenarios", "--json")
    assert r.returncode == 0
    ids = [s["id"] for s in json.loads(r.stdout)]
    assert set(FOUNDATION) <= set(ids)


@pytest.mark.parametrize("sid", FOUNDATION)
def test_sim_json_schema(sid: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", sid, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"scenario", "seed", "params", "hosts", "events", "checks", "summary"} <= set(doc)
    assert doc["scenario"] == sid and all(c["ok"] for c in doc["checks"])
    for ev in doc["events"]:
        assert ev["kind"] in ("send", "recv", "drop", "state", "timer", "app", "note")
        assert isinstance(ev["t"], float | int) and "host" in ev
        if ev["kind"] == "state":
            assert ev["from"] in STATE_NAMES and ev["to"] in STATE_NAMES
        if "segment" in ev:
            seg = ev["segment"]
            assert {"src", "dst", "sport", "dport", "seq", "ack", "flags", "len", "win"} <= set(seg)
            assert "".join(sorted(seg["flags"], key=FLAG_ORDER.index)) == seg["flags"]


def test_sim_text_is_a_sequence_diagram(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "close"]) == 0
    out = capsys.readouterr().out
    for needle in ("FIN_WAIT_1", "TIME_WAIT", "LAST_ACK", "FA", "seq=", "ack="):
        assert needle in out
    assert main(["sim", "close", "--absolute"]) == 0
    assert "seq=0 " not in capsys.readouterr().out


def test_unknown_scenario_is_one_line_exit_2() -> None:
    r = run_cli("sim", "no-such-thing")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "handshake" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("bad", ["nokey", "foo=1", "time_wait=abc"])
def test_bad_set_is_one_line_exit_2(bad: str) -> None:
    r = run_cli("sim", "close", "--set", bad)
    assert r.returncode == 2 and r.stderr.startswith("tcpwise: error:") and r.stderr.count("\n") == 1


def test_failed_check_exits_1(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from tcpwise.scenarios import claim, get_scenario

    sc = get_scenario("close")
    real = sc.check
    monkeypatch.setattr(
        sc, "check", lambda run, p: real(run, p) + [claim("an impossible claim", "不可能", False)]
    )
    assert main(["sim", "close", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [c["claim"] for c in doc["checks"] if not c["ok"]] == ["an impossible claim"]


def test_seed_changes_nothing_on_a_clean_link(capsys: pytest.CaptureFixture[str]) -> None:
    main(["sim", "handshake", "--format", "json", "--seed", "1"])
    one = json.loads(capsys.readouterr().out)
    main(["sim", "handshake", "--format", "json", "--seed", "1"])
    assert json.loads(capsys.readouterr().out) == one


def test_output_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "close.json"
    r = run_cli("sim", "close", "--format", "json", "-o", str(out))
    assert r.returncode == 0 and json.loads(out.read_text())["scenario"] == "close"


def test_help_lists_commands() -> None:
    r = run_cli("--help")
    assert r.returncode == 0 and "sim" in r.stdout and "scenarios" in r.stdout

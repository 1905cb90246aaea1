"""``tcpwise watch`` as users meet it: help, bad input, the fallback, outputs (zeek, --conn drawings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tcpwise.watch.output import ZeekRows, conn_run, endpoints, history, story, zeek_state
from tcpwise.watch.record import ConnRecord, ResetInfo, Transition


def tcpwise(
    *args: str, env: dict[str, str] | None = None, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tcpwise.cli", *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    e = dict(os.environ, COLUMNS="80", **(env or {}))
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=e)


def test_help_fits_80_columns() -> None:
    r = tcpwise("watch", "--help")
    assert r.returncode == 0
    long = [line for line in r.stdout.splitlines() if len(line) > 80]
    assert not long, long
    assert "--format {table,json,zeek}" in r.stdout and "examples:" in r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "0"], "not a TCP port"),
        (["--state", "HALF_OPEN"], "unknown state"),
        (["--duration", "-1"], "must be a finite number > 0"),
        (["--duration", "nan"], "must be a finite number > 0"),
        (["--netns", "no-such-ns-tcpwise"], "no network namespace"),
        (["--netns", ""], "the network namespace name is empty"),
        (["--comm", "a-process-named-longer"], "longer than 15 bytes and can never match"),
        (["--comm", ""], "the process name is empty"),
        (["--conn", "--conn-format", "svg"], "needs -o FILE"),
        (["-o", "x.txt"], "-o/--output is for --conn"),
        (["--buffer-kb", "1"], "--buffer-kb must be between"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str) -> None:
    r = tcpwise("watch", *args)
    assert r.returncode == 2, r
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert "Traceback" not in r.stderr
    errors = [x for x in lines if "error:" in x]
    assert len(errors) == 1 and needle in errors[0] and errors[0] == lines[-1]  # argparse prints usage first


def test_poll_fallback_states_its_limit() -> None:
    r = tcpwise("watch", "--poll", "--interval", "0.05", "--duration", "0.3", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert "connections shorter than 0.05 s are missed" in r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert summary["source"] == "sock_diag" and summary["lost"] == 0 and "limit" in summary


def test_without_root_it_says_why_and_falls_back(nobody: tuple[list[str], str]) -> None:
    prefix, stage = nobody
    r = subprocess.run(
        [*prefix, "-m", "tcpwise.cli", "watch", "--duration", "0.3", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=stage,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": stage, "HOME": stage, "COLUMNS": "80"},
    )
    assert r.returncode == 0, r.stderr
    note = [x for x in r.stderr.splitlines() if x]
    assert len(note) == 1 and "tracepoints unavailable" in note[0] and "sock_diag polling" in note[0]
    assert json.loads(r.stdout.splitlines()[-1])["summary"]["source"] == "sock_diag"


def _rec(**kw: object) -> ConnRecord:
    base: dict[str, object] = {
        "laddr": "127.0.0.1",
        "lport": 40000,
        "raddr": "127.0.0.1",
        "rport": 80,
        "family": 4,
        "netns": 1,
        "pid": 42,
        "comm": "curl",
        "role": "client",
        "start": 100.0,
        "end": 100.5,
        "transitions": (
            Transition(100.0, "CLOSED", "SYN_SENT"),
            Transition(100.001, "SYN_SENT", "ESTABLISHED"),
            Transition(100.4, "ESTABLISHED", "FIN_WAIT_1"),
            Transition(100.401, "FIN_WAIT_1", "FIN_WAIT_2"),
            Transition(100.5, "FIN_WAIT_2", "TIME_WAIT"),
        ),
        "closer": "local",
        "simultaneous_close": False,
        "time_wait": True,
        "resets": (),
        "retransmits": 0,
        "synack_retransmits": 0,
        "end_reason": "fin",
        "open": False,
        "partial": False,
    }
    base.update(kw)
    return ConnRecord(**base)  # type: ignore[arg-type]


def test_zeek_state_and_history_from_one_side() -> None:
    r = _rec()
    assert zeek_state(r) == "SF" and history(r) == "ShAFf"
    refused = _rec(
        transitions=(Transition(100.0, "CLOSED", "SYN_SENT"), Transition(100.0, "SYN_SENT", "CLOSED")),
        resets=(ResetInfo(100.0, "received", "SYN_SENT"),),
        end_reason="refused",
        closer="none",
        time_wait=False,
    )
    assert zeek_state(refused) == "REJ" and history(refused) == "Sr"
    rst = _rec(
        transitions=r.transitions[:2] + (Transition(100.2, "ESTABLISHED", "CLOSED"),),
        resets=(ResetInfo(100.2, "sent", "ESTABLISHED"),),
        end_reason="reset",
        closer="none",
    )
    assert zeek_state(rst) == "RSTO"


def test_zeek_rows_have_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    buf = io.StringIO()
    z = ZeekRows(buf)
    z.write(_rec())
    lines = buf.getvalue().splitlines()
    fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
    row = lines[-1].split("\t")
    assert len(row) == len(fields)
    assert dict(zip(fields, row, strict=True))["conn_state"] == "SF"


def test_table_story_and_endpoints_fit() -> None:
    assert story(_rec()) == "we closed → TIME_WAIT"
    assert endpoints(_rec()) == "127.0.0.1:40000>:80"
    six = _rec(laddr="fd00:1234:5678::1", raddr="fd00:abcd:ef01::2", family=6)
    got = endpoints(six, 27)
    assert len(got) <= 27 and got.endswith(":80") and ":40000>" in got


def test_conn_draws_both_ends_with_the_shared_renderers() -> None:
    from tcpwise.render import render

    client = _rec()
    server = _rec(
        laddr="127.0.0.1",
        lport=80,
        rport=40000,
        role="server",
        closer="remote",
        time_wait=False,
        transitions=(
            Transition(100.0005, "LISTEN", "SYN_RCVD"),
            Transition(100.0006, "SYN_RCVD", "ESTABLISHED"),
            Transition(100.4001, "ESTABLISHED", "CLOSE_WAIT"),
            Transition(100.5, "CLOSE_WAIT", "LAST_ACK"),
            Transition(100.5001, "LAST_ACK", "CLOSED"),
        ),
    )
    run = conn_run(client, server)
    states = [(e.host, e.to_state) for e in run.events if e.kind == "state"]
    assert ("A", "TIME_WAIT") in states and ("B", "LAST_ACK") in states
    text = render(run, "text")
    assert isinstance(text, str) and "TIME_WAIT" in text and "CLOSE_WAIT" in text
    svg = render(run, "svg")
    assert isinstance(svg, str) and svg.lstrip().startswith("<svg")


def test_fast_json_is_the_same_object_as_to_dict() -> None:
    recs = [
        _rec(),
        _rec(comm='we"ird\\name\u00e9', pid=None, netns=None, end=None, open=True, time_wait=None),
        _rec(resets=(ResetInfo(100.2, "sent", "ESTABLISHED", "TCP_ABORT_ON_CLOSE"),), family=6, laddr="::1"),
    ]
    for r in recs:
        assert json.loads(r.to_json()) == r.to_dict()

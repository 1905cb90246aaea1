"""The probe without root: the command line, the JSON contract, the reports, and behaviours judged against
in-process tcpwise targets (two hosts joined in memory) — including the RFC 5961 flip, which no Linux target
can show (every Linux since 3.6 passes)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable

import pytest
from contract import check_contract

from tcpwise.cli import main
from tcpwise.doctor.findings import Finding
from tcpwise.endpoint import LINUX
from tcpwise.endpoint.tcb import Endpoint
from tcpwise.probe.behaviours import BEHAVIOURS
from tcpwise.probe.core import HostObserver, Options, Result
from tcpwise.probe.report import to_html, to_json, to_table
from tcpwise.probe.runner import probe
from tcpwise.stack import Host, memory_pair, start_server

P4, T4 = "198.18.64.1", "198.18.64.254"


def _cli(*args: str) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "tcpwise.cli", "probe", *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def test_list_names_every_behaviour_in_80_columns() -> None:
    rc, out, err = _cli("--list")
    assert rc == 0 and not err
    for name in BEHAVIOURS:
        assert f"\n{name} " in "\n" + out
    assert max(len(line) for line in out.splitlines()) <= 80
    rc, out, _ = _cli("--list", "--format", "json")
    assert [b["name"] for b in json.loads(out)] == list(BEHAVIOURS)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "80", "--all"], "--serve CMD or --netns NS"),
        (["--serve", "x", "--all"], "--port P is required"),
        (["--serve", "x", "--port", "80"], "--behaviour NAME"),
        (["--serve", "x", "--port", "80", "--behaviour", "nope"], "unknown behaviour 'nope'"),
        (["--serve", "x", "--port", "80", "--all", "--deadline", "0"], "--deadline"),
        (["--serve", "x", "--port", "80", "--all", "--sysctl", "oops"], "expected KEY=VALUE"),
        (["--serve", "x", "--port", "80", "--all", "-o", "/nonexistent/dir/x.html"], "no such directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tcpwise: error: ") and needle in err, err


def test_an_empty_netns_is_refused_before_any_work() -> None:
    """``--netns ''`` (an unset shell variable) reached setns(2) on /run/netns itself: exit 70."""
    rc, _out, err = _cli("--netns", "", "--port", "80", "--all")
    assert rc == 2 and "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("the network namespace name is empty: give a name from `ip netns list`")
    )


def _result(name: str, verdict: str, closed: float | None = None) -> Result:
    finding = None
    if verdict == "fail":
        finding = Finding("no-idle-timeout", "warn", None, "held " * 30, {"x": 1}, "set a timeout " * 20)
    return Result(
        name=name,
        verdict=verdict,
        closed_after_s=closed,
        closed_by="target" if closed is not None else None,
        how="FIN" if closed is not None else None,
        states={"ESTABLISHED": 1} if verdict == "fail" else {},
        fds=1 if verdict == "fail" else 0,
        finding=finding,
    )


TARGET = {"serve": "python3 -m http.server 8080", "netns": None, "addr": T4, "port": 8080}


def test_json_contract_and_a_planted_break_is_caught() -> None:
    doc = json.loads(to_json(TARGET, [_result("vanish", "fail"), _result("half-close", "pass", 0.03)]))
    check_contract(doc)
    assert doc["behaviours"][1]["closed_after_s"] == 0.03
    broken = json.loads(json.dumps(doc))
    del broken["behaviours"][0]["how"]  # a planted bug: a key scripts depend on goes missing
    with pytest.raises(AssertionError):
        check_contract(broken)
    broken = json.loads(json.dumps(doc))
    broken["behaviours"][0]["verdict"] = "FAIL"
    with pytest.raises(AssertionError):
        check_contract(broken)


def test_table_fits_80_columns_and_honours_no_color() -> None:
    text = to_table(TARGET, [_result("vanish", "fail"), _result("half-close", "pass", 0.03)])
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "\x1b[" not in text and "1 of 2 passed." in text and "advice: set a timeout" in text
    assert "\x1b[" in to_table(TARGET, [_result("vanish", "fail")], color=True)


# ----------------------------------------------------------------------------------------------------------
# behaviours against in-process targets
# ----------------------------------------------------------------------------------------------------------
def _probe_in_memory(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    names: list[str],
    **opts: object,
) -> list[Result]:
    async def run() -> list[Result]:
        la, lb = memory_pair()
        cfg = LINUX.with_(wscale=7, rcv_buf=1 << 20)
        host = Host(la, [P4], cfg, name="probe", record=True, peer_names={T4: "target"})
        target = Host(lb, [T4], LINUX, name="target")
        host.start()
        target.start()
        await start_server(target, handler, port=8080)
        o = Options(port=8080, target_addr=T4, deadline=1.5, interval=0.2, flood=50, cfg=cfg, **opts)  # type: ignore[arg-type]
        try:
            return await probe(host, HostObserver(target, 8080), o, names)
        finally:
            host.close()
            target.close()

    return asyncio.run(run())


async def _http(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle: float | None = None
) -> None:
    while True:
        try:
            req = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), idle)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except TimeoutError:
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await writer.drain()
        if b"close" in req.lower():
            writer.close()
            return


async def _no_timeout(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await _http(r, w)


async def _idle_timeout(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await _http(r, w, idle=0.5)


def test_vanish_flips_with_an_idle_timeout_in_memory() -> None:
    bad = _probe_in_memory(_no_timeout, ["vanish"])[0]
    good = _probe_in_memory(_idle_timeout, ["vanish"])[0]
    assert (bad.verdict, good.verdict) == ("fail", "pass")
    assert bad.states == {"ESTABLISHED": 1} and bad.fds is None  # an in-process target has no fds to count
    assert good.closed_by == "target" and good.how == "FIN" and 0.4 <= (good.closed_after_s or 0) <= 1.2
    doc = json.loads(to_json(TARGET, [bad, good]))
    check_contract(doc, allow_null_fds=True)


def test_blind_injection_flips_between_rfc5961_and_rfc793(monkeypatch: pytest.MonkeyPatch) -> None:
    good = _probe_in_memory(_no_timeout, ["blind-injection"])[0]
    assert (
        good.verdict == "pass" and good.evidence["rst_challenge_ack"] and good.evidence["syn_challenge_ack"]
    )

    # The unprotected target: RFC 793's rule, an in-window RST (or SYN) resets the connection.
    def rfc793(self: Endpoint, now: float) -> None:
        self._on_reset(now)

    monkeypatch.setattr(Endpoint, "_challenge_ack", rfc793)
    bad = _probe_in_memory(_no_timeout, ["blind-injection"])[0]
    assert bad.verdict == "fail" and bad.finding is not None and bad.finding.id == "rfc5961-missing"
    assert bad.closed_by == "probe" and bad.how == "RST"


def test_the_picture_has_both_views_of_the_connection() -> None:
    res = _probe_in_memory(_idle_timeout, ["vanish"])[0]
    run = res.run
    assert run is not None and [h.name for h in run.hosts] == ["probe", "target"]
    kinds = {(e.host, e.kind) for e in run.events}
    assert {("probe", "send"), ("target", "recv"), ("target", "send"), ("probe", "recv")} <= kinds
    assert ("target", "drop") in kinds  # the target's FIN that the vanished probe ignored
    target_states = [e.to_state for e in run.events if e.host == "target" and e.kind == "state"]
    assert "ESTABLISHED" in target_states and "FIN_WAIT_1" in target_states
    page = to_html(TARGET, [res])
    assert page.count("<svg") == 1 and "FIN_WAIT_1" in page


def test_target_view_births_and_vanishes() -> None:
    """The target's samples hold only its accepted connections: one first seen open is born from LISTEN, one
    first seen closing from CLOSED; a vanished one ends in CLOSED and is remembered as gone."""
    from tcpwise.probe.core import TargetView

    samples = [
        {("10.0.0.1", 8080, "p", 1): "ESTABLISHED", ("10.0.0.1", 8080, "p", 2): "CLOSE_WAIT"},
        {("10.0.0.1", 8080, "p", 2): "LAST_ACK"},
    ]

    class Fake:
        def sample(self) -> dict:  # type: ignore[type-arg]
            return samples.pop(0)

    v = TargetView(Fake(), {"p": "probe"})  # type: ignore[arg-type]
    v.poll(1.0)
    v.poll(2.0)
    assert [(e.t, e.conn, e.from_state, e.to_state) for e in v.events] == [
        (1.0, "target:8080>probe:1", "LISTEN", "ESTABLISHED"),
        (1.0, "target:8080>probe:2", "CLOSED", "CLOSE_WAIT"),
        (2.0, "target:8080>probe:2", "CLOSE_WAIT", "LAST_ACK"),
        (2.0, "target:8080>probe:1", "ESTABLISHED", "CLOSED"),
    ]
    assert v.gone == {("10.0.0.1", 8080, "p", 1): 2.0}
    assert v.seen[("10.0.0.1", 8080, "p", 2)] == {"CLOSE_WAIT": 1.0, "LAST_ACK": 2.0}

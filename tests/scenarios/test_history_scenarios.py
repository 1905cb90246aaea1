"""why-three and old-duplicate: every check holds for the defaults and the documented variants, the measured
values are the ones the claims name, and nonsense parameters are one-line usage errors."""

from __future__ import annotations

import pytest

from tcpwise.errors import UsageError
from tcpwise.scenarios import query as q
from tcpwise.scenarios import run_scenario
from tcpwise.vocab import AppCall, AppWhy


def _failed(run):  # type: ignore[no-untyped-def]
    return [(c.claim, c.detail) for c in run.checks if not c.ok]


def test_why_three_three_way_rst_clears_the_bogus_half() -> None:
    run = run_scenario("why-three")
    assert run.ok, _failed(run)
    v = run.summary["values"]
    assert v["ghosts"] == 0 and v["syn_queue_at_end"] == 0
    # A's RST answers the SYN-ACK of the old SYN: seq = the SYN-ACK's ack = J_old + 1.
    rst = [e for e in q.sends(run, "A") if "R" in e.segment.flags]
    assert len(rst) == 1 and rst[0].segment.seq == (v["old_syn_seq"] + 1) & 0xFFFFFFFF
    assert "ESTABLISHED" in q.state_path(run, "A")  # the real connection afterwards


def test_why_three_client_gone_answers_from_closed() -> None:
    run = run_scenario("why-three", overrides={"client": "gone"})
    assert run.ok, _failed(run)
    # No SYN_SENT at A when the SYN-ACK arrives: the RST comes from the stack's CLOSED-state rule.
    t_rst = next(e.t for e in q.sends(run, "A") if "R" in e.segment.flags)
    assert not [e for e in q.state_events(run, "A") if 0.5 < e.t <= t_rst]


def test_why_three_two_way_opens_a_ghost() -> None:
    run = run_scenario("why-three", overrides={"handshake": "2"})
    assert run.ok, _failed(run)
    assert run.summary["values"]["ghosts"] == 1
    assert q.apps(run, "B", AppCall.ACCEPT, why=AppWhy.TWO_WAY)  # the ghost was accept()ed by the application
    assert len(run.checks) == 5


def test_why_three_checks_can_fail() -> None:
    # The same run judged against the other variant's claims must fail: the checks read the events.
    three = run_scenario("why-three")
    from tcpwise.scenarios import get_scenario

    sc = get_scenario("why-three")
    judged = sc.check(three, {**three.params, "handshake": 2})
    assert not all(c.ok for c in judged)


def test_old_duplicate_time_wait_protects() -> None:
    run = run_scenario("old-duplicate")
    assert run.ok, _failed(run)
    v = run.summary["values"]
    assert v["reconnect_error"] == "EADDRINUSE" and v["new_received"] == 0 and v["old_intact"]


def test_old_duplicate_short_time_wait_corrupts_byte_by_byte() -> None:
    run = run_scenario("old-duplicate", overrides={"time_wait": "1"})
    assert run.ok, _failed(run)
    v = run.summary["values"]
    assert v["isn_distance"] == 750_000  # RFC 6528 clock: 4 us ticks * 3 s
    assert 0 <= v["held_off_new"] < 65535
    assert v["corrupted"] > 0 and v["new_received"] == v["new_sent"] == 4000
    # The corrupted bytes are the old upload's (lowercase/digits), where A sent uppercase letters.
    assert v["got_excerpt"] != v["sent_excerpt"] and v["sent_excerpt"].isupper()
    assert "corruption" in run.summary["text"] and v["got_excerpt"] in run.summary["text"]
    # The bulk transfer is summarised, not recorded segment by segment.
    assert len(run.events) < 200 and any(
        e.kind == "note" and "not shown" in (e.text or "") for e in run.events
    )


def test_old_duplicate_paws_catches_it() -> None:
    run = run_scenario("old-duplicate", overrides={"time_wait": "1", "timestamps": "1"})
    assert run.ok, _failed(run)
    v = run.summary["values"]
    assert v["corrupted"] == 0 and v["new_received"] == 4000 and v["held_ts"] is not None
    assert v["delivered_at"] is not None  # it did arrive; PAWS threw it away


@pytest.mark.parametrize(
    "sid,bad",
    [
        ("why-three", {"handshake": "4"}),
        ("why-three", {"old_syn_at": "0.1"}),
        ("why-three", {"client": "asleep"}),
        ("old-duplicate", {"old_bytes": "1000"}),
        ("old-duplicate", {"reconnect_at": "0.5"}),
        ("old-duplicate", {"land_at": "-1"}),
        ("old-duplicate", {"old_down": "9999999"}),
    ],
)
def test_bad_parameters_are_usage_errors(sid: str, bad: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        run_scenario(sid, overrides=bad)


def test_old_duplicate_without_time_wait_at_all() -> None:
    # time_wait=0 (model only): the active closer forgets the connection at once; the story still holds.
    run = run_scenario("old-duplicate", overrides={"time_wait": "0"})
    assert run.ok, _failed(run)
    assert run.summary["values"]["corrupted"] > 0


@pytest.mark.parametrize("old_down,corrupts", [("700000", False), ("2400000", True)])
def test_old_duplicate_needs_an_acceptable_ack_field(old_down: str, corrupts: bool) -> None:
    # 10 s of ISN clock = 2.5M: with only 700 kB downloaded the old ACK field is 1.8M behind, beyond the 1 MB
    # window, and RFC 5961 §5.2 drops the segment; with 2.4 MB downloaded it passes and corrupts.
    run = run_scenario(
        "old-duplicate",
        overrides={"time_wait": "1", "reconnect_at": "10", "old_bytes": "3000000", "old_down": old_down},
    )
    assert run.ok, _failed(run)
    assert (run.summary["values"]["corrupted"] > 0) is corrupts

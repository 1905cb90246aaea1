"""RFC 7323 timestamps, judged by the kernel: the model's TSecr must echo what Linux's echoes.

For every segment a host sends, its TSecr names one earlier segment of the peer — the one whose TSval it echoes
(RFC 7323 §4.3: TS.Recent follows the Last.ACK.sent rule). The *echo pattern* of a run is, segment by segment,
which of the peer's segments that is (by its position among the peer's segments). A model that froze TS.Recent at
the SYN (the bug this test was written for) echoes the peer's first segment for ever; Linux echoes the latest
in-window one. The pattern of the model's run and of the same script on the real kernel must be equal.
"""

from __future__ import annotations

import os

import pytest

from tcpwise.events import Run

pytestmark = pytest.mark.kernel


def echo_pattern(run: Run) -> list[tuple[str, str, int | None]]:
    """(sender, flags, index of the peer segment whose TSval this segment's TSecr echoes) per sent segment."""
    sent: dict[str, list[int]] = {}  # sender address -> its TSvals in order
    out: list[tuple[str, str, int | None]] = []
    names = {h.addr: h.name for h in run.hosts}
    for ev in run.events:
        seg = ev.segment
        if ev.kind != "send" or seg is None or not seg.opts or "ts" not in seg.opts:
            continue
        val, ecr = int(seg.opts["ts"][0]), int(seg.opts["ts"][1])
        peer = sent.get(seg.dst, [])
        echoed = None
        if ecr:
            idx = [i for i, v in enumerate(peer) if v == ecr]
            echoed = idx[-1] if idx else -1  # -1: echoes something the peer never sent (a bug either side)
        out.append((names.get(seg.src, seg.src), seg.flags, echoed))
        sent.setdefault(seg.src, []).append(val)
    return out


def _frozen_ts_recent(pattern: list[tuple[str, str, int | None]]) -> bool:
    """True when every echo names the peer's first segment: TS.Recent never moved after the SYN."""
    echoes = [e for _, _, e in pattern if e is not None]
    return bool(echoes) and all(e == 0 for e in echoes)


@pytest.mark.parametrize("sid", ["half-close", "close"])
def test_model_echoes_timestamps_like_the_kernel(sid: str) -> None:
    """Compared on a kernel run whose segments line up with the model's: on a loaded machine the kernel now and
    then merges a data segment with the FIN that follows it at once (one segment where the model sends two),
    which moves every later index. Such a run says nothing about echoes, so it is run again (at most 4 times)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from tcpwise.lab.conform import lab_scenario_run
    from tcpwise.scenarios import run_scenario

    model = echo_pattern(run_scenario(sid))
    tries = []
    for _ in range(4):
        kernel = echo_pattern(lab_scenario_run(sid))
        assert not _frozen_ts_recent(kernel), "the kernel's echo moves on: the lab must see that"
        if [(h, f) for h, f, _ in kernel] == [(h, f) for h, f, _ in model]:
            assert model == kernel, f"model:  {model}\nkernel: {kernel}"
            return
        tries.append(kernel)
    pytest.fail(f"no kernel run lined up with the model's segments in 4 tries: {tries}")


def test_a_frozen_ts_recent_is_caught() -> None:
    """Planted bug: TS.Recent stuck at the SYN's TSval (the old model). The pattern shows it at once."""
    from tcpwise.endpoint import tcb
    from tcpwise.scenarios import run_scenario

    mp = pytest.MonkeyPatch()
    mp.setattr(tcb.Endpoint, "_update_ts_recent", lambda self, seg, now: None)
    try:
        frozen = echo_pattern(run_scenario("half-close"))
    finally:
        mp.undo()
    assert _frozen_ts_recent(frozen)
    assert not _frozen_ts_recent(echo_pattern(run_scenario("half-close")))

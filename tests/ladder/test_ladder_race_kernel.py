"""The keep-alive race on real software (root, network namespaces, nginx/HAProxy from apt).

The judge is independent: nginx's (HAProxy's) own access log counts the 502s. Short timeouts (upstream 1 s,
nginx 3 s, 50 ms one-way delay) keep each run to a few seconds.
"""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def _need(tool: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
        pytest.skip(f"{tool} is not installed (make test installs it: apt-get install {tool})")


def test_nginx_502s_inverted_and_none_with_the_ladders_fix() -> None:
    _need("nginx")
    from tcpwise.lab.netns import list_lab_namespaces
    from tcpwise.ladder.lab_race import lab_run_id, run_race
    from tcpwise.ladder.race import ladder_fix

    bad = run_race("nginx", upstream_idle=1.0, proxy_idle=3.0, requests=6)
    assert bad.log_502 > 0, bad.to_dict()
    assert any("upstream prematurely closed" in ln for ln in bad.error_lines)
    assert bad.failed is not None  # the packets of one failed request, through tcpwise.trace
    finding = ladder_fix("nginx", 3.0, 1.0)
    assert finding is not None and finding.id == "idle-inversion"
    good = run_race(
        "nginx", upstream_idle=1.0, proxy_idle=float(finding.setting["value"]), requests=6, draw=False
    )
    assert good.log_502 == 0 and good.requests == 6, good.to_dict()
    assert not [n for n in list_lab_namespaces() if lab_run_id() in n]  # nothing left behind


def test_haproxy_502s_without_retry_on() -> None:
    _need("haproxy")
    from tcpwise.ladder.lab_race import run_race

    bad = run_race("haproxy", upstream_idle=1.0, requests=4, draw=False)
    assert bad.log_502 > 0, bad.to_dict()
    good = run_race("haproxy", upstream_idle=1.0, requests=4, haproxy_retry=True, draw=False)
    assert good.log_502 == 0, good.to_dict()


def test_a_blind_counter_turns_red(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: a log reader that never finds a 502 must make the inverted check fail."""
    _need("nginx")
    from tcpwise.ladder import lab_race

    monkeypatch.setattr(lab_race, "_count_log", lambda proxy, text, res: None)
    bad = lab_race.run_race("nginx", upstream_idle=1.0, proxy_idle=3.0, requests=3, draw=False)
    assert bad.log_502 == 0  # the inverted assertion above would now be red

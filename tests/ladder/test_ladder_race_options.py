"""``tcpwise ladder-race`` options are refused before the lab is built (no root, namespaces or proxy needed)."""

from __future__ import annotations

import pytest

from tcpwise.cli import main
from tcpwise.ladder import lab_race


@pytest.mark.parametrize("value", ["1e-12", "0.0009", "0", "-1", "nan", "inf", "121"])
def test_proxy_idle_the_proxy_cannot_be_given_is_refused_up_front(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--proxy-idle 1e-12 passed, built the lab for 2 s, then failed reading '1e-12s' as a duration."""

    def built(*_a: object, **_k: object) -> None:
        raise AssertionError("the lab was touched before the options were checked")

    import tcpwise.lab.netns as netns

    monkeypatch.setattr(netns, "check_capabilities", built)
    monkeypatch.setattr(lab_race, "_need", built)
    assert main(["ladder-race", "--proxy-idle", value]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and err.startswith("tcpwise: error: ") and "1 ms <= proxy idle <= 120 s" in err
    )

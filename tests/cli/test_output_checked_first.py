"""An -o that cannot be written is refused before the work, not after it: a lab run, a keep-alive race, a probe
and a watch used to build namespaces or wait for connections, then fail on the path. Each entry point behind the
option checks is replaced by one that fails the test if it is reached."""

from __future__ import annotations

import pytest

from tcpwise.cli import main


def _blocked(*_a: object, **_k: object) -> None:
    raise AssertionError("the work started before -o was checked")


CASES = {
    "lab run": (["lab", "run", "close"], "tcpwise.lab.conform", "lab_scenario_run"),
    "ladder-race": (["ladder-race"], "tcpwise.ladder.lab_race", "run_race"),
    "probe": (
        ["probe", "--serve", "true", "--port", "8080", "--behaviour", "vanish"],
        "tcpwise.probe.runner",
        "run_in_namespace",
    ),
    "watch --conn": (["watch", "--conn", "--conn-format", "svg"], "tcpwise.watch.run", "watch_cmd"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("where", ["directory", "missing-parent", "empty"])
def test_unwritable_output_refused_before_the_work(case, where, tmp_path, monkeypatch, capsys) -> None:
    import importlib

    argv, module, attr = CASES[case]
    monkeypatch.setattr(importlib.import_module(module), attr, _blocked)
    target = {"directory": str(tmp_path), "missing-parent": str(tmp_path / "no" / "x.out"), "empty": ""}[
        where
    ]
    assert main([*argv, "-o", target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tcpwise: error: "), err
    assert {
        "directory": "it is a directory",
        "missing-parent": "no such directory",
        "empty": "path is empty",
    }[where] in err

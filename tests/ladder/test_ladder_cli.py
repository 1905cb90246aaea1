"""The ladder's findings, the JSON contract, --fail-on, path files, and the defaults table in docs/ladder.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpwise.cli import main
from tcpwise.ladder import rules
from tcpwise.ladder.path import hop_from_spec
from tcpwise.ladder.presets import defaults_markdown

CFG = Path(__file__).parent / "configs"
ROOT = Path(__file__).resolve().parents[2]


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    rc = main(["ladder", *argv, "--format", "json"])
    return rc, json.loads(capsys.readouterr().out)


def test_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = _json(capsys, "--hop", "nginx", "--hop", "uvicorn")
    assert rc == 0 and set(doc) == {"hops", "findings"}
    assert [h["name"] for h in doc["hops"]] == ["nginx", "uvicorn"]
    f = doc["findings"][0]
    assert {"id", "severity", "hops", "message", "fix"} <= set(f)
    assert f["id"] == "idle-inversion" and f["severity"] == "crit" and f["hops"] == ["nginx", "uvicorn"]
    assert isinstance(f["message"], str) and "keepalive_timeout 4s;" in f["fix"]
    assert f["setting"]["text"].startswith("keepalive_timeout 4s;")
    assert "client_idle=60" in f["reproduce"]


def test_fail_on_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ladder", "--hop", "nginx", "--hop", "uvicorn", "--fail-on", "crit"]) == 1
    assert main(["ladder", "--hop", "nginx:pool_idle=4s", "--hop", "uvicorn", "--fail-on", "crit"]) == 0
    # 4.5 s against 5 s: below, but by less than the 1 s margin -> warn only
    assert main(["ladder", "--hop", "nginx:pool_idle=4500ms", "--hop", "uvicorn", "--fail-on", "crit"]) == 0
    assert main(["ladder", "--hop", "nginx:pool_idle=4500ms", "--hop", "uvicorn", "--fail-on", "warn"]) == 1
    capsys.readouterr()


def test_path_toml_with_real_configs(capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = _json(capsys, str(CFG / "path.toml"))
    names = [h["name"] for h in doc["hops"]]
    assert names == ["client", "proxy", "app"]
    ids = {(f["id"], tuple(f["hops"])) for f in doc["findings"]}
    assert ("idle-inversion", ("proxy", "app")) in ids  # nginx upstream 1m vs uvicorn 5 (Procfile)
    assert ("idle-inversion", ("client", "proxy")) not in ids  # aiohttp 15 s < nginx 65 s
    fix = next(f for f in doc["findings"] if f["hops"] == ["proxy", "app"])
    assert fix["setting"]["where"].endswith("conf.d/app.conf:4")
    assert "upstream app" in fix["setting"]["text"]


def test_path_yaml_middlebox(capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = _json(capsys, str(CFG / "path.yaml"))
    f = next(f for f in doc["findings"] if f["id"] == "middlebox-cutoff")
    assert f["hops"] == ["client", "aws-nat"] and "RST" in f["consequence"]


def test_keepalive_and_sysctl(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = ["--hop", "requests:keepalive=on", "--hop", "aws-nat", "--hop", "go-server:idle=10m,keepalive=off"]
    rc, doc = _json(capsys, *base)  # SO_KEEPALIVE with the kernel's 2 h: too slow for the NAT's 350 s
    f = next(f for f in doc["findings"] if f["id"] == "keepalive-too-slow")
    assert "2h" in f["message"] and "net.ipv4.tcp_keepalive_time" in f["fix"]
    rc, doc = _json(capsys, *base, "--sysctl", str(CFG / "sysctl.conf"))  # 600 s: still too slow
    f = next(f for f in doc["findings"] if f["id"] == "keepalive-too-slow")
    assert "10m" in f["message"]
    fast = tmp_path / "fast.conf"
    fast.write_text("net.ipv4.tcp_keepalive_time = 120\n")
    rc, doc = _json(capsys, *base, "--sysctl", str(fast))
    assert not any(f["id"] in ("keepalive-too-slow", "middlebox-cutoff") for f in doc["findings"])


def test_heartbeat_lifetime_read_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = _json(
        capsys, "--hop", "hikaricp:heartbeat=10m", "--hop", "azure-nat", "--hop", "mysql:hard_limit=20m"
    )
    ids = {f["id"] for f in doc["findings"]}
    assert {"heartbeat-too-slow", "lifetime-exceeds-limit", "keepalive-too-slow"} <= ids
    rc, doc = _json(capsys, "--hop", "aws-alb", "--hop", "nginx")
    assert (
        any(f["id"] == "read-timeout-exceeds-idle" for f in doc["findings"]) is False
    )  # 60 s read = 60 s idle
    rc, doc = _json(capsys, "--hop", "aws-alb", "--hop", "nginx:read_timeout=5m")
    assert any(f["id"] == "read-timeout-exceeds-idle" for f in doc["findings"])


def test_managed_lb_fix_raises_the_backend(capsys: pytest.CaptureFixture[str]) -> None:
    rc, doc = _json(capsys, "--hop", "aws-alb", "--hop", "gunicorn:idle=5s")
    f = doc["findings"][0]
    assert f["setting"]["hop"] == "gunicorn" and f["setting"]["text"].startswith("keepalive = 66")


@pytest.mark.parametrize(
    "argv,msg",
    [(["--hop", "nosuch"], "unknown hop kind"), (["--hop", "nginx:idle=5q", "--hop", "uvicorn"], "idle"),
     (["--hop", "nginx"], "at least two"), (["--hop", "nginx:bogus=1", "--hop", "uvicorn"], "unknown key"),
     (["--nginx", "/nonexistent.conf", "--hop", "uvicorn"], "no such file"),
     (["--hop", "nginx", "--hop", "uvicorn", "--margin", "200%"], "percentage")],
)  # fmt: skip
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], msg: str) -> None:
    assert main(["ladder", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tcpwise: error:") and msg in err[0]


def test_text_output_fits_80_columns(capsys: pytest.CaptureFixture[str]) -> None:
    main(["ladder", "--hop", "requests", "--hop", "aws-nat", "--hop", "aws-alb", "--nginx", str(CFG / "nginx.conf"),
          "--hop", "uvicorn"])  # fmt: skip
    out = capsys.readouterr().out
    assert "CRIT idle-inversion" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_a_broken_rule_turns_red(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: a margin rule that compares the wrong way round finds nothing on the classic inversion."""
    hops = [hop_from_spec("nginx"), hop_from_spec("uvicorn")]
    assert [f.id for f in rules.analyze(hops)] == ["idle-inversion"]
    monkeypatch.setattr(rules, "margin_for", lambda inner, spec: -1e9)
    assert [f.id for f in rules.analyze(hops)] != ["idle-inversion"]


def test_defaults_table_is_in_the_docs() -> None:
    doc = (ROOT / "docs" / "ladder.md").read_text(encoding="utf-8")
    assert defaults_markdown() in doc, (
        "docs/ladder.md: paste `tcpwise ladder --defaults --wide` into the table section"
    )

"""``tcpwise report``: gallery structure, offline links, the CLI, and a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from render_fixtures import close_run, series_run

from tcpwise.cli import main
from tcpwise.render.report import ReportEntry, build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _entries() -> list[ReportEntry]:
    return [
        ReportEntry("close", "Four-way teardown", "A FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT", close_run()),
        ReportEntry("close-broken", "A failing one", "must show as failing", close_run(fail=True)),
        ReportEntry("timewait-pileup", "TIME_WAIT pile-up", "rate R gives ~R*60 TIME_WAIT", series_run()),
        ReportEntry("crashed", "Crashed scenario", "raises", error="RuntimeError: boom"),
    ]


def _links(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"#]+)"', html)


def test_report_writes_gallery_pages_and_files_with_working_relative_links(tmp_path: Path) -> None:
    result = build_report(str(tmp_path), _entries())
    assert [e.id for e in result.failing] == ["close-broken", "crashed"]
    index = (tmp_path / "index.html").read_text()
    assert index.count('class="card ') == 4
    assert 'class="card bad" href="close-broken.html"' in index and "✗ 1/2" in index
    assert "RuntimeError: boom" in index
    pages = [index] + [
        (tmp_path / f"{i}.html").read_text() for i in ("close", "close-broken", "timewait-pileup", "crashed")
    ]
    for page in pages:
        assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "https://" not in page
        for link in _links(page):
            assert not link.startswith("/") and ".." not in link, link
            assert (tmp_path / link).is_file(), link
    close = (tmp_path / "close.html").read_text()
    assert "files/close.pcap" in close and "A FIN_WAIT_1 -&gt; FIN_WAIT_2 -&gt; TIME_WAIT" in close
    assert (tmp_path / "files" / "close.pcap").read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"
    assert not (tmp_path / "files" / "timewait-pileup.pcap").exists()  # a series run has no segments


def test_report_in_chinese(tmp_path: Path) -> None:
    build_report(str(tmp_path), _entries()[:1], lang="zh")
    assert "tcpwise 场景库" in (tmp_path / "index.html").read_text()
    assert "A 先关闭" in (tmp_path / "close.html").read_text()


def test_report_cli_runs_the_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["report", "-o", str(tmp_path / "r"), "--only", "close", "handshake"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "(2 scenarios, 2 passing)" in out
    assert (tmp_path / "r" / "close.html").is_file() and (
        tmp_path / "r" / "files" / "handshake.svg"
    ).is_file()


def test_report_cli_rejects_unknown_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "-o", str(tmp_path), "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tcpwise: error: unknown scenario nope (valid: ") and "close" in err
    (tmp_path / "file").write_text("x")
    assert main(["report", "-o", str(tmp_path / "file"), "--only", "close"]) == 2


# -- a real browser ---------------------------------------------------------------------------------------------
def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    profile = tempfile.mkdtemp(prefix="tcpwise-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _load(path: Path) -> tuple[str, list[str]]:
    """The page's data-js verdict after load, and any console errors Chromium logged."""
    p = _chromium("--dump-dom", path.as_uri())
    m = re.search(r'<html[^>]*data-js="([^"]*)"', p.stdout)
    console = [
        ln for ln in p.stderr.splitlines() if "CONSOLE" in ln and re.search(r"Uncaught|Error|Failed", ln)
    ]
    return (m.group(1) if m else f"no data-js in dump (rc={p.returncode})"), console


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")
def test_gallery_and_pages_load_cleanly_in_headless_chromium(tmp_path: Path) -> None:
    site = tmp_path / "report"
    build_report(str(site), _entries())
    for page in ("index.html", "close.html", "timewait-pileup.html", "crashed.html"):
        verdict, console = _load(site / page)
        assert verdict == "ok" and not console, (page, verdict, console)
    for name, page, size in (
        ("gallery.png", "index.html", "1280,900"),
        ("close.png", "close.html", "1280,1800"),
    ):
        shot = tmp_path / name
        p = _chromium(f"--window-size={size}", f"--screenshot={shot}", (site / page).as_uri())
        assert shot.is_file() and shot.stat().st_size > 20_000, p.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshots: {tmp_path / 'gallery.png'} {tmp_path / 'close.png'}")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make test installs it)")
def test_browser_check_catches_script_errors_and_broken_links(tmp_path: Path) -> None:
    site = tmp_path / "report"
    build_report(str(site), _entries()[:1])
    os.remove(site / "files" / "close.svg")  # the gallery thumbnail is now a broken link
    verdict, _ = _load(site / "index.html")
    assert verdict.startswith("ERR: cannot load") and "close.svg" in verdict
    page = site / "close.html"
    page.write_text(page.read_text().replace("</body>", "<script>undefinedFunction()</script></body>"))
    verdict, console = _load(page)
    assert verdict.startswith("ERR: ") and "undefinedFunction" in verdict
    assert any("undefinedFunction" in ln for ln in console)

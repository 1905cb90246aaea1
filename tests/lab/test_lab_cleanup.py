"""Topology life cycle and cleanup on every exit path (real kernel, root)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tcpwise.lab import netns

pytestmark = pytest.mark.kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A lab run that lasts 30 s unless killed: listen, connect, keep the connection open.
LONG_RUN = """
import sys
import tcpwise.script as S
from tcpwise.lab.executor import run_script
sc = S.Script(hosts=(S.HostSpec("A", "198.18.0.1"), S.HostSpec("B", "198.18.1.1")),
              steps=(S.Listen(0.0, "B"), S.Connect(0.1, "A", "B")), duration=30.0)
def started(topo):
    print("RUN", topo.run_id, flush=True)
run_script(sc, on_start=started)
print("DONE", flush=True)
"""


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


def _leftovers(run_id: str) -> list[str]:
    """Namespaces of the run, veths or TUN devices in the root namespace that look like ours."""
    found = [ns for ns in netns.list_lab_namespaces() if run_id in ns]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [m for m in re.findall(r"^\d+: ([^:@]+)", links, re.M) if m in ("ra", "rb", "tw0")]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    if f"tcpwise_{run_id}" in tables:
        found.append(f"nft table tcpwise_{run_id}")
    return found


def _start_long_run() -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen(
        [sys.executable, "-c", LONG_RUN],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")},
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    m = re.match(r"RUN (lab[0-9a-f]{6})", line)
    assert m, f"lab run did not start: {line!r}"
    run_id = m.group(1)
    time.sleep(0.5)  # let the connection establish: sockets and agents exist now
    assert len([ns for ns in netns.list_lab_namespaces() if run_id in ns]) == 4
    return p, run_id


def test_topology_context_manager_leaves_nothing() -> None:
    _need_root()
    with netns.Topology() as topo:
        run_id = topo.run_id
        assert len([ns for ns in netns.list_lab_namespaces() if run_id in ns]) == 4
        out = netns.sh("ip", "netns", "exec", topo.hosts["A"].ns, "ip", "-o", "addr")
        assert "198.18.0.1/24" in out and "fd00::1/64" in out
    assert _leftovers(run_id) == []


def test_exception_inside_topology_cleans_up() -> None:
    _need_root()
    run_id = ""
    with pytest.raises(RuntimeError):
        with netns.Topology() as topo:
            run_id = topo.run_id
            raise RuntimeError("boom")
    assert run_id and _leftovers(run_id) == []


def test_sigkill_then_lab_clean_leaves_nothing() -> None:
    _need_root()
    p, run_id = _start_long_run()
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    assert len([ns for ns in netns.list_lab_namespaces() if run_id in ns]) == 4  # SIGKILL cleans nothing
    from tcpwise.cli import main

    assert main(["lab", "clean", "--run", run_id]) == 0
    assert _leftovers(run_id) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_leave_nothing(sig: int) -> None:
    _need_root()
    p, run_id = _start_long_run()
    p.send_signal(sig)
    p.wait(timeout=20)
    assert p.returncode != 0
    assert _leftovers(run_id) == []


def test_clean_rejects_bad_run_id() -> None:
    from tcpwise.errors import UsageError

    with pytest.raises(UsageError):
        netns.clean("not-a-run")


def test_not_root_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tcpwise.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "clean"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "root" in err[0]

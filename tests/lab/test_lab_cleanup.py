"""Topology life cycle and cleanup on every exit path (real kernel, root)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def _instances(pid: int) -> list[str]:
    """The tracefs instances a lab process made (its tracepoint state times), named after the process."""
    base = "/sys/kernel/tracing/instances"
    names = os.listdir(base) if os.path.isdir(base) else []
    return [n for n in names if n.startswith(f"tcpwise-lab-{pid}-")]


def _leftovers(run_id: str, pid: int | None = None) -> list[str]:
    """Namespaces of the run, veths or TUN devices in the root namespace that look like ours, and the tracefs
    instance of the run's process."""
    found = [ns for ns in netns.list_lab_namespaces() if run_id in ns]
    if pid is not None:
        found += _instances(pid)
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
    assert os.path.isdir("/sys/kernel/tracing/instances") <= (len(_instances(p.pid)) == 1)
    from tcpwise.cli import main

    assert main(["lab", "clean", "--run", run_id]) == 0
    assert _leftovers(run_id, p.pid) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_and_sigterm_leave_nothing(sig: int) -> None:
    """SIGHUP (the terminal closed, the ssh session dropped) too: its default action left the four namespaces."""
    _need_root()
    p, run_id = _start_long_run()
    p.send_signal(sig)
    p.wait(timeout=20)
    assert p.returncode != 0
    assert _leftovers(run_id, p.pid) == []


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


# --- signals during teardown (issue 17) -------------------------------------------------------------------------
# The same long run, with a teardown slowed down so that signals land inside it (each namespace deletion waits).
SLOW_TEARDOWN = LONG_RUN.replace(
    "from tcpwise.lab.executor import run_script",
    "from tcpwise.lab.executor import run_script\n"
    "import time as _t, tcpwise.lab.netns as _n\n"
    "_real = _n.delete_ns\n"
    "def _slow(ns):\n"
    "    _t.sleep(0.4)\n"
    "    _real(ns)\n"
    "_n.delete_ns = _slow\n",
)


def _start(code: str) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")},
    )
    assert p.stdout is not None
    m = re.match(r"RUN (lab[0-9a-f]{6})", p.stdout.readline())
    assert m, "lab run did not start"
    time.sleep(0.5)
    return p, m.group(1)


def test_second_signal_during_teardown_says_please_wait_and_leaves_nothing() -> None:
    _need_root()
    p, run_id = _start(SLOW_TEARDOWN)
    p.send_signal(signal.SIGINT)
    time.sleep(0.05)  # 20-80 ms after the first: inside the teardown
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert "cleaning up, please wait" in err
    assert _leftovers(run_id, p.pid) == []


def test_third_signal_forces_out_and_says_what_is_left() -> None:
    _need_root()
    p, run_id = _start(SLOW_TEARDOWN)
    p.send_signal(signal.SIGINT)
    time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert "cleanup interrupted; left behind:" in err
    assert f"tcpwise lab clean --run {run_id}" in err
    left = [line.strip() for line in err.splitlines() if line.startswith("  namespace ")]
    assert left and all(run_id in x for x in left)
    # What it said is exactly what is there; the command it gave removes it.
    assert sorted(x.split()[1] for x in left) == sorted(n for n in netns.list_lab_namespaces() if run_id in n)
    from tcpwise.cli import main

    assert main(["lab", "clean", "--run", run_id]) == 0
    assert _leftovers(run_id, p.pid) == []


# --- lab clean never touches a run in progress ------------------------------------------------------------------
def test_clean_without_run_keeps_a_run_in_progress_and_removes_a_dead_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _need_root()
    p, run_id = _start(LONG_RUN)
    # Only this test's run is looked at: other lab runs on the machine belong to others.
    real_runs = netns.lab_runs
    monkeypatch.setattr(netns, "lab_runs", lambda: {k: v for k, v in real_runs().items() if k == run_id})
    try:
        rep = netns.clean_runs()
        assert rep.removed == [] and rep.running == {run_id: p.pid}
        assert len([ns for ns in netns.list_lab_namespaces() if run_id in ns]) == 4
        assert os.path.isdir("/sys/kernel/tracing/instances") <= (len(_instances(p.pid)) == 1)  # kept too
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
    rep = netns.clean_runs()  # the owner is dead now
    assert len(rep.removed) == 4 and _leftovers(run_id, p.pid) == []


def test_owner_identity_survives_pid_reuse(tmp_path: Path) -> None:
    from tcpwise.lab import owner

    me = owner.write_owner("lab123456", base=str(tmp_path))
    assert owner.read_owner("lab123456", base=str(tmp_path)) == me and owner.owner_alive(me)
    # Same pid, another start time: another process took the pid over; the run's owner is gone.
    assert not owner.owner_alive(owner.Owner(me.pid, me.start + 1))
    assert not owner.owner_alive(owner.Owner(2**22 + 12345, 0))
    owner.remove_owner("lab123456", base=str(tmp_path))
    assert owner.read_owner("lab123456", base=str(tmp_path)) is None

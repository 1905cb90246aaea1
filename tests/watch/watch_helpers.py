"""Helpers for the watch tests: private network namespaces and a child that runs scripted connections there.

Every namespace is named ``tcpwise-w<pid>-<n>`` and deleted by its fixture; the tracepoints see every namespace
on the host (other tests run at the same time), so the kernel tests always filter on their own namespace's
inode and tolerate unrelated traffic.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "story_child.py")
_seq = itertools.count()


@dataclass
class Netns:
    name: str
    inode: int

    def run_child(self, *scenarios: str, timeout: float = 60) -> dict[str, dict[str, int]]:
        r = subprocess.run(
            ["ip", "netns", "exec", self.name, sys.executable, CHILD, *scenarios],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise AssertionError(f"story child failed ({r.returncode}): {r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def new_netns() -> Netns:
    name = f"tcpwise-w{os.getpid()}-{next(_seq)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=20)
    return Netns(name, os.stat(f"/run/netns/{name}").st_ino)


def del_netns(ns: Netns) -> None:
    subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=20)


@dataclass
class Watched:
    """Records of one in-process watch run."""

    records: list[Any] = field(default_factory=list)
    summary: Any = None

    def by_ports(self, local: int, remote: int) -> list[Any]:
        return [r for r in self.records if r.lport == local and r.rport == remote]

    def one(self, local: int, remote: int) -> Any:
        got = self.by_ports(local, remote)
        assert len(got) == 1, f"expected one record {local}>{remote}, got {len(got)}: {got}"
        return got[0]


def watch_while(netns_inode: int | None, action: Any, settle: float = 0.3) -> Watched:
    """Run a tracepoint watch (filtered to one namespace) around ``action()``; returns its records."""
    from tcpwise.watch.live import Watch
    from tcpwise.watch.tracker import Filter

    out = Watched()
    w = Watch(out.records.append, Filter(netns=netns_inode))
    stop = threading.Event()
    err: list[BaseException] = []

    def run() -> None:
        try:
            out.summary = w.run(duration=120, stop=stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            err.append(exc)

    th = threading.Thread(target=run)
    th.start()
    try:
        assert w.started.wait(10), "watch did not start"
        action()
        time.sleep(settle)
    finally:
        stop.set()
        th.join(30)
    if err:
        raise err[0]
    return out

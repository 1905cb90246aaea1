"""Doctor output: the stable JSON document and the rich tables, from one Snapshot and its findings.

JSON shape (docs/doctor.md), ``schema`` 2::

    {"schema": 2, "host": "web-1", "timestamp": "2026-12-03T04:10:00.123Z", "kernel": "6.18.44",
     "netns": null,
     "states": {"LISTEN": 3, "ESTABLISHED": 120, ...},
     "processes": [{"pid": 1234, "comm": "nginx", "cmdline": ["nginx", "-g", "daemon off;"],
                    "states": {...}, "fds": 210, "fd_limit": 1024}, ...],
     "findings": [{"id", "severity", "pid", "message", "evidence", "advice"}, ...],
     "elapsed_s": 0.21}

``processes`` lists every process holding a TCP socket (most sockets first); a process without one is left out
(it may still be named by a finding, e.g. fd-headroom) unless it is the one ``--pid`` asked for. ``cmdline`` is
null when the process is gone or unreadable. ``json`` is imported here, not rich: ``doctor --json`` must start
fast. Every number the text view prints carries its label.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from tcpwise.doctor.collect import Snapshot
from tcpwise.doctor.findings import Finding

__all__ = ["to_dict", "write_json", "write_text", "SCHEMA"]


SCHEMA = 2


def _processes(snap: Snapshot, findings: list[Finding], pid: int | None = None) -> list[dict[str, Any]]:
    from tcpwise.linux.tasks import read_cmdline

    rows: list[dict[str, Any]] = []
    for p_pid, p in snap.procs.items():
        if not p.inodes and p_pid != pid:
            continue
        rows.append(
            {
                "pid": p_pid,
                "comm": p.comm,
                "cmdline": read_cmdline(p_pid),
                "states": snap.proc_states(p_pid),
                "fds": p.fds,
                "fd_limit": p.fd_limit,
            }
        )
    rows.sort(key=lambda r: (-sum(r["states"].values()), r["pid"]))
    return rows


def to_dict(
    snap: Snapshot, findings: list[Finding], elapsed_s: float, pid: int | None = None
) -> dict[str, Any]:
    import os
    import socket
    import time

    taken = snap.taken or time.time()
    return {
        "schema": SCHEMA,
        "host": socket.gethostname(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(taken))
        + f".{int(taken % 1 * 1000):03d}Z",
        "kernel": os.uname().release,
        "netns": snap.netns,
        "states": snap.states(),
        "processes": _processes(snap, findings, pid),
        "findings": [f.to_dict() for f in findings],
        "elapsed_s": round(elapsed_s, 4),
    }


def write_json(doc: dict[str, Any], out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
    out.write("\n")


_SEV_STYLE = {"crit": "bold red", "warn": "yellow", "info": "cyan"}


def write_text(
    doc: dict[str, Any],
    lang: str = "en",
    top: int = 15,
    netns: str | None = None,
    *,
    color: bool | None = None,
    width: int | None = None,
) -> None:
    """Rich tables: states, top processes, findings with evidence and advice. ``color``: ANSI styles or none
    (None: rich decides); ``width``: columns to fit (None: the terminal's)."""
    from rich.console import Console
    from rich.table import Table

    zh = lang == "zh"
    con = Console(width=width, force_terminal=color, no_color=None if color is None else not color)
    where = f" (netns {netns})" if netns else ""
    total = sum(doc["states"].values())
    con.print(f"[bold]{total}[/] " + ("个 TCP 套接字" if zh else "TCP sockets") + where, highlight=False)
    st = Table(title="按状态" if zh else "by state", title_justify="left")
    st.add_column("state" if not zh else "状态")
    st.add_column("count" if not zh else "数量", justify="right")
    for name, n in doc["states"].items():
        if n:
            st.add_row(name, str(n))
    con.print(st)
    w = doc.get("watch")
    if w:
        src = "tracepoints" if w["source"] == "tracepoints" else f"sock_diag polling ({w.get('limit', '')})"
        con.print(
            f"watched {w['seconds']:.1f} s: {w['connections']} sockets ended or open, {w['events']} events, "
            f"{w['lost']} lost, from {src}",
            highlight=False,
        )
    procs = doc["processes"][:top]
    if procs:
        pt = Table(
            title="进程（套接字最多者）" if zh else "Processes (most sockets first)", title_justify="left"
        )
        for col, just in (
            ("pid", "right"),
            ("comm", "left"),
            ("sockets", "right"),
            ("states", "left"),
            ("fds", "right"),
            ("fd limit", "right"),
        ):
            pt.add_column(col, justify=just)  # type: ignore[arg-type]
        for p in procs:
            states = " ".join(f"{k}={v}" for k, v in sorted(p["states"].items(), key=lambda kv: -kv[1]))
            pt.add_row(
                str(p["pid"]),
                p["comm"],
                str(sum(p["states"].values())),
                states,
                str(p["fds"]),
                str(p["fd_limit"] if p["fd_limit"] is not None else "∞"),
            )
        con.print(pt)
    if not doc["findings"]:
        con.print("[green]" + ("未发现问题。" if zh else "No findings.") + "[/green]")
    for f in doc["findings"]:
        sev = f["severity"]
        pid = f" pid {f['pid']}" if f["pid"] is not None else ""
        con.print(
            f"[{_SEV_STYLE[sev]}]{sev.upper():4}[/] [bold]{f['id']}[/]{pid}: {f['message']}", highlight=False
        )
        ev = ", ".join(f"{k}={v}" for k, v in f["evidence"].items() if v not in (None, {}, []))
        con.print(f"     [dim]{'证据' if zh else 'evidence'}: {ev}[/]", highlight=False)
        con.print(f"     {'建议' if zh else 'advice'}: {f['advice']}", highlight=False)
    took = "采集与分析用时" if zh else "collected and analysed in"
    con.print(
        f"[dim]{took} {doc['elapsed_s']:.3f} s · {doc['host']} · Linux {doc['kernel']}[/]", highlight=False
    )

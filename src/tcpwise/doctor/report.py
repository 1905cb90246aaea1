"""Doctor output: the stable JSON document and the rich tables, from one Snapshot and its findings.

JSON shape (docs/doctor.md)::

    {"states": {"LISTEN": 3, "ESTABLISHED": 120, ...},
     "processes": [{"pid": 1234, "comm": "nginx", "states": {...}, "fds": 210, "fd_limit": 1024}, ...],
     "findings": [{"id", "severity", "pid", "message", "evidence", "advice"}, ...],
     "elapsed_s": 0.21}

``processes`` lists every process holding a TCP socket (most sockets first), plus processes that appear in a
finding. ``json`` is imported here, not rich: ``doctor --json`` must start fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from tcpwise.doctor.collect import Snapshot
from tcpwise.doctor.findings import Finding

__all__ = ["to_dict", "write_json", "write_text"]


def _processes(snap: Snapshot, findings: list[Finding]) -> list[dict[str, Any]]:
    named = {f.pid for f in findings if f.pid is not None}
    rows: list[dict[str, Any]] = []
    for pid, p in snap.procs.items():
        if not p.inodes and pid not in named and len(snap.procs) > 1:  # `--pid`: always show that process
            continue
        rows.append(
            {
                "pid": pid,
                "comm": p.comm,
                "states": snap.proc_states(pid),
                "fds": p.fds,
                "fd_limit": p.fd_limit,
            }
        )
    rows.sort(key=lambda r: (-sum(r["states"].values()), r["pid"]))
    return rows


def to_dict(snap: Snapshot, findings: list[Finding], elapsed_s: float) -> dict[str, Any]:
    return {
        "states": snap.states(),
        "processes": _processes(snap, findings),
        "findings": [f.to_dict() for f in findings],
        "elapsed_s": round(elapsed_s, 4),
    }


def write_json(doc: dict[str, Any], out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
    out.write("\n")


_SEV_STYLE = {"crit": "bold red", "warn": "yellow", "info": "cyan"}


def write_text(doc: dict[str, Any], lang: str = "en", top: int = 15, netns: str | None = None) -> None:
    """Rich tables: states, top processes, findings with evidence and advice."""
    from rich.console import Console
    from rich.table import Table

    zh = lang == "zh"
    con = Console()
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
    con.print(f"[dim]{doc['elapsed_s']:.3f} s[/]")

"""``tcpwise top``: a live terminal view of TCP sockets per state and per process, growth highlighted.

Theory of operation
-------------------
Every ``--interval`` seconds (1 s) take a doctor snapshot (collect.take: sock_diag dump + /proc attribution)
and redraw three panels with rich: states with the change since the previous refresh, the processes holding
the most sockets with their per-state counts and change, and the current findings (with the previous snapshot
passed in, so close-wait-leak reports growth). Growth is red, shrinkage green. Rich's Live runs with
``auto_refresh=False`` so no refresh thread exists and collect.take may fork its /proc scanner safely. ``q``
(on a terminal) or Ctrl-C quits; ``--count N`` stops after N refreshes (scripts, tests).
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
from typing import Any

from tcpwise.doctor import collect, findings

__all__ = ["run", "render"]

_COLS = ("ESTABLISHED", "CLOSE_WAIT", "LISTEN")  # the rest are summed under "other" (80 columns)


def _delta(now: int, before: int | None) -> str:
    if before is None or now == before:
        return ""
    d = now - before
    return f"[red]+{d}[/]" if d > 0 else f"[green]{d}[/]"


def render(
    snap: collect.Snapshot, prev: collect.Snapshot | None, found: list[findings.Finding], rows: int, lang: str
) -> Any:
    """The renderable for one refresh (a rich Group)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    zh = lang == "zh"
    states = snap.states()
    pstates = prev.states() if prev else {}
    total = sum(states.values())
    where = f" netns {snap.netns}" if snap.netns else ""
    head = Text.from_markup(
        f"[bold]tcpwise top[/]{where}  {time.strftime('%H:%M:%S', time.localtime(snap.taken))}  "
        f"{total} {'个套接字' if zh else 'sockets'}  {'采集用时' if zh else 'collected in'} {snap.elapsed_s * 1000:.0f} ms"
        + ("  [yellow](not root: reduced attribution)[/]" if snap.denied and not snap.privileged else "")
    )
    st = Table(title="状态" if zh else "states", title_justify="left", expand=False)
    st.add_column("state")
    st.add_column("count", justify="right")
    st.add_column("Δ", justify="right")
    for name, n in states.items():
        if n or pstates.get(name):
            st.add_row(name, str(n), _delta(n, pstates.get(name, 0) if prev else None))
    pt = Table(title="进程" if zh else "processes", title_justify="left")
    for col, just in (("pid", "right"), ("comm", "left"), ("sockets", "right"), ("Δ", "right")):
        pt.add_column(col, justify=just)  # type: ignore[arg-type]
    for col in _COLS:
        pt.add_column(col.replace("ESTABLISHED", "ESTAB"), justify="right")
    pt.add_column("other", justify="right")
    pt.add_column("fds/limit", justify="right")
    procs = sorted(snap.procs.values(), key=lambda p: -len(p.inodes))
    for p in procs[:rows]:
        if not p.inodes:
            break
        ps = snap.proc_states(p.pid)
        before = prev.proc_states(p.pid) if prev else {}
        n = sum(ps.values())
        cells = []
        for col in _COLS:
            v = ps.get(col, 0)
            d = _delta(v, before.get(col, 0)) if prev and col == "CLOSE_WAIT" else ""
            cells.append(f"{v or ''}{(' ' + d) if d else ''}")
        other = n - sum(ps.get(col, 0) for col in _COLS)
        cells.append(str(other or ""))
        lim = p.fd_limit if p.fd_limit else "∞"
        pt.add_row(
            str(p.pid),
            p.comm,
            str(n),
            _delta(n, sum(before.values())) if prev else "",
            *cells,
            f"{p.fds}/{lim}",
        )
    ft = Table(title="发现" if zh else "findings", title_justify="left", show_header=False)
    ft.add_column("sev")
    ft.add_column("finding")
    style = {"crit": "bold red", "warn": "yellow", "info": "cyan"}
    for f in found[:8]:
        ft.add_row(f"[{style[f.severity]}]{f.severity}[/]", f"[bold]{f.id}[/] {f.message}")
    if not found:
        ft.add_row("", "未发现问题" if zh else "no findings")
    return Group(head, st, pt, ft)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    th = findings.Thresholds(idle_s=args.idle)
    console = Console()
    prev: collect.Snapshot | None = None
    tty = sys.stdin.isatty() and console.is_terminal
    old_attrs = None
    if tty:
        import termios
        import tty as ttymod

        fd = sys.stdin.fileno()
        old_attrs = termios.tcgetattr(fd)
        ttymod.setcbreak(fd)  # single keys (q) without Enter; restored in finally
    n = 0
    try:
        snap = collect.take(netns=args.netns, idle_s=args.idle)
        with Live(console=console, auto_refresh=False, screen=False, transient=False) as live:
            while True:
                found = findings.analyze(snap, th, lang=args.lang, prev=prev)
                live.update(render(snap, prev, found, args.rows, args.lang), refresh=True)
                n += 1
                if args.count is not None and n >= args.count:
                    break
                deadline = time.monotonic() + args.interval
                quit_ = False
                while (left := deadline - time.monotonic()) > 0:
                    if tty:
                        r, _, _ = select.select([sys.stdin], [], [], left)
                        if r and os.read(sys.stdin.fileno(), 1) in (b"q", b"Q"):
                            quit_ = True
                            break
                    else:
                        time.sleep(left)
                if quit_:
                    break
                prev, snap = snap, collect.take(netns=args.netns, idle_s=args.idle)
    except KeyboardInterrupt:
        pass
    finally:
        if old_attrs is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, old_attrs)
    return 0

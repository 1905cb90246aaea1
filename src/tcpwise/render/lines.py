"""The canonical one-line-per-event trace of a run (``--format lines``): grep-able, and what golden files hold.

Every event becomes one line with fixed columns — time, host, kind — and then only the event's typed fields, in
a fixed order. Sequence and acknowledgment numbers are relative to each direction's ISN (as Wireshark shows
them) and timestamps relative to each sender's first TSval, so a behaviour change shows up as a small, readable
diff and not as a new random ISN on every line::

      0.050000 B  recv  S seq=0 len=0 win=65535 mss=1460 ts=0/0              A:32768>B:80
      0.050000 B  state LISTEN -> SYN_RCVD (rcv SYN)                         B:80>A:32768

The checks follow, one per line (claim, verdict, measured detail). Narratives are left out on purpose: they are
prose, and a reworded sentence is not a change of behaviour.
"""

from __future__ import annotations

from typing import Any

from tcpwise.events import Event, Run, SegmentInfo
from tcpwise.i18n import event_text
from tcpwise.render.diagram import Numbering
from tcpwise.vocab import EventKind
from tcpwise.wire.seq import seq_diff

__all__ = ["render_lines", "event_line"]


class _Clocks:
    """Each sender's first TSval, so timestamps print as milliseconds since that host's first segment."""

    def __init__(self) -> None:
        self.first: dict[str, int] = {}

    def ts(self, seg: SegmentInfo) -> str | None:
        opts = seg.opts or {}
        ts = opts.get("ts")
        if not ts:
            return None
        val, ecr = int(ts[0]), int(ts[1])
        base = self.first.setdefault(seg.src, val)
        peer = self.first.get(seg.dst)
        # "-": no echo (a SYN's TSecr is zero); "@N": an echo of a TSval this trace never showed
        rel_ecr = "-" if ecr == 0 else (str(seq_diff(ecr, peer)) if peer is not None else f"@{ecr}")
        return f"ts={seq_diff(val, base)}/{rel_ecr}"


def _options(seg: SegmentInfo, clocks: _Clocks) -> list[str]:
    opts: dict[str, Any] = seg.opts or {}
    out = []
    if "mss" in opts:
        out.append(f"mss={opts['mss']}")
    if "ws" in opts:
        out.append(f"ws={opts['ws']}")
    if opts.get("sackok"):
        out.append("sackok")
    if "sack" in opts:
        out.append("sack=" + ",".join(f"{a}-{b}" for a, b in opts["sack"]))
    ts = clocks.ts(seg)
    if ts is not None:
        out.append(ts)
    return out


def event_line(ev: Event, numbering: Numbering, clocks: _Clocks) -> str:
    """One event as its canonical line (without the trailing connection label)."""
    kind = ev.kind
    head = f"{ev.t:11.6f} {ev.host or '-':<3} {kind.value:<5}"
    if ev.segment is not None:
        body = " ".join([numbering.label(ev.segment), *_options(ev.segment, clocks)])
        if kind is EventKind.DROP:
            body += (
                f" [{ev.reason}" + (f": {ev.text}" if ev.text else "") + "]"
            )  # the typed reason, not prose
    elif kind is EventKind.STATE:
        body = f"{ev.from_state} -> {ev.to_state}" + (f" ({ev.cause})" if ev.cause is not None else "")
    elif kind is EventKind.APP:
        fields = [str(ev.call)]
        for name in ("errno", "nbytes", "port", "backlog", "why", "value", "text"):
            v = getattr(ev, name)
            if v is not None:
                fields.append(f"{name}={v:g}" if isinstance(v, float) else f"{name}={v}")
        body = " ".join(fields)
    else:
        body = event_text(ev)
    return f"{head} {body}" + (f"  [{ev.conn}]" if ev.conn else "")


def render_lines(run: Run) -> str:
    numbering = Numbering(absolute=False)
    clocks = _Clocks()
    params = " ".join(f"{k}={v}" for k, v in sorted(run.params.items()))
    out = [f"# {run.scenario} world={run.world} seed={run.seed}" + (f" {params}" if params else "")]
    out += [event_line(ev, numbering, clocks) for ev in run.events]
    for c in run.checks:
        verdict = "ok" if c.ok else ("not-observed" if not c.observed else "FAIL")
        out.append(f"check {verdict}: {c.claim}" + (f" | {c.detail}" if c.detail else ""))
    if run.series is not None:
        for name, values in run.series.items():
            out.append(f"series {name}: " + " ".join(f"{v:g}" for v in values))
    return "\n".join(out) + "\n"

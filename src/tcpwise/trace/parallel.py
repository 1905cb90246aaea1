"""``tcpwise trace --jobs N``: the same JSON / Zeek output, computed by N forked worker processes.

Theory of operation
-------------------
Every worker reads and decodes the whole capture (decoding is vectorised and cheap) but tracks only the
connections whose endpoint pair falls in its partition (:func:`tcpwise.trace.decode.partition_of`). A
connection's life depends only on its own packets and on the batch clock (the time of each batch's last TCP
packet, which every worker sees), so each worker finishes each of its connections exactly when one tracker would.

The single tracker hands connections to its sink in a well-defined order, which every worker can key locally:

* a connection ended by a new SYN on its 4-tuple: ``(batch, 0, packet number of that SYN)``;
* connections expired at the end of a batch: ``(batch, 1, first packet)`` — the tracker expires them in
  connection-number order, and numbers follow first packets;
* connections still open at the end: ``(last, 2, first packet)``.

Each worker writes one line per finished connection (its key, first packet, local number, uid salt candidate and
the formatted text after the uid) to its own temporary file, plus the sorted first-packet numbers of all its
connections. The parent merges the files by key; the global connection number is the local number plus the
number of the other workers' connections that started earlier (a binary search), the uid salt is the first
merged connection's, exactly as the single-process sinks choose it. Memory per worker follows its open
connections; the parent holds 8 bytes per connection (the first-packet arrays) and streams the rest.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import os
import pickle
import shutil
import signal
import tempfile
from array import array
from collections.abc import Iterator
from typing import Any, TextIO

from tcpwise.trace.decode import AddrTable, DecodeStats, decode_batch
from tcpwise.trace.output import TraceResult, conn_json
from tcpwise.trace.reader import CaptureError, open_capture
from tcpwise.trace.tracker import Conn, Tracker
from tcpwise.trace.zeek import ZeekWriter, uid_of

__all__ = ["trace_parallel"]

_KIND = 1 << 40  # packet numbers stay below 2^40; key = (batch * 4 + kind) * 2^40 + packet number


class _PartTracker(Tracker):
    """A tracker that knows which of its three finishing paths is calling the sink."""

    phase = 0

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.peaks: list[int] = []  # open connections after each batch, before expiry (as Tracker.peak)

    def expire(self, now: float) -> None:
        self.peaks.append(len(self.conns))
        self.phase = 1
        super().expire(now)
        self.phase = 0

    def flush(self) -> None:
        self.phase = 2
        super().flush()


def _worker(path: str, index: int, jobs: int, fmt: str, tmp: str, batch: int, linger: float) -> None:
    addrs = AddrTable()
    stats = DecodeStats()
    name = addrs.name
    rec = open(os.path.join(tmp, f"w{index}.rec"), "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
    firsts = array("q")
    bno = 0
    zw = ZeekWriter.__new__(ZeekWriter)  # only its row(): the header is the parent's
    zw.name_of = name
    zw.salt = 1
    write = rec.write

    def sink(c: Conn) -> None:
        ph = tracker.phase
        if ph == 0:
            key = (bno * 4) * _KIND + tracker.fin_pno
        elif ph == 1:
            key = (bno * 4 + 1) * _KIND + c.first_index
        else:
            key = ((1 << 22) * 4 + 2) * _KIND + c.first_index
        firsts.append(c.first_index)
        if fmt == "json":
            text = conn_json(c, name, 1)
            rest = text[text.index('","ts":') + 1 :]
            head = ""
        else:
            row = zw.row(c)
            head = row[0]
            rest = "\t".join(row[2:])
        write(f"{key}\t{c.first_index}\t{c.n}\t{int(c.ts * 1e6) or 1}\t{head}\t{rest}\n")

    tracker = _PartTracker(sink, addrs, linger=linger)
    err: CaptureError | None = None
    part = (index, jobs)
    with open_capture(path) as cap:
        try:
            for rb in cap.batches(batch):
                tracker.feed(decode_batch(cap.buf, rb, addrs, stats, path, part))  # type: ignore[arg-type]
                bno += 1
        except CaptureError as exc:
            if cap.packets_read == 0:
                raise
            err = exc
        tracker.flush()
        linktypes = sorted(cap.linktypes)
        cformat = cap.format
    rec.close()
    firsts = array("q", sorted(firsts))
    with open(os.path.join(tmp, f"w{index}.first"), "wb") as f:
        firsts.tofile(f)
    out = {
        "stats": stats,
        "count": tracker.count,
        "peaks": tracker.peaks,
        "linktypes": linktypes,
        "format": cformat,
        "error": None if err is None else (type(err).__name__, str(err)),
        "warnings": stats.warnings(),
    }
    with open(os.path.join(tmp, f"w{index}.pkl"), "wb") as f:
        pickle.dump(("ok", out), f)


def _records(path: str, w: int) -> Iterator[tuple[int, int, list[str]]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = line.split("\t", 5)
            yield int(p[0]), w, p


def _raise_from(info: tuple[str, str]) -> None:
    from tcpwise import errors
    from tcpwise.trace import reader

    cls = getattr(reader, info[0], None) or getattr(errors, info[0], None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        raise cls(info[1])
    raise RuntimeError(f"trace worker failed: {info[0]}: {info[1]}")


def _child(path: str, index: int, jobs: int, fmt: str, tmp: str, batch: int, linger: float) -> None:
    """Runs in the forked worker; never returns (os._exit, so no inherited buffer is flushed twice)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        gc.disable()  # as trace_file: the tracker makes no cycles
        _worker(path, index, jobs, fmt, tmp, batch, linger)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        try:
            with open(os.path.join(tmp, f"w{index}.pkl"), "wb") as f:
                pickle.dump(("raise", (type(exc).__name__, str(exc))), f)
        except BaseException:  # noqa: BLE001, S110
            pass
    finally:
        os._exit(0)


def trace_parallel(
    path: str,
    fmt: str,
    out: TextIO,
    jobs: int,
    summary: Any = None,
    batch: int = 65536,
    linger: float = 5.0,
) -> TraceResult:
    """Write ``fmt`` ("json" or "zeek") for ``path`` to ``out`` using ``jobs`` worker processes.

    ``summary(result) -> dict`` builds the JSON summary object. The bytes written are those of the
    single-process sinks (:class:`~tcpwise.trace.output.JsonSink`, :class:`~tcpwise.trace.zeek.ZeekWriter`).
    """
    if fmt not in ("json", "zeek"):
        raise ValueError(f"--jobs supports json and zeek, not {fmt!r}")
    # The headers first, as the single-process sinks write them (Zeek's #open is the start time).
    zw = ZeekWriter(out, str) if fmt == "zeek" else None
    if zw is None:
        out.write('{"connections": [\n')
    out.flush()  # nothing buffered may be inherited by the workers
    tmp = tempfile.mkdtemp(prefix="tcpwise-trace-")
    pids: list[int] = []
    try:
        for i in range(jobs):
            pid = os.fork()
            if pid == 0:
                _child(path, i, jobs, fmt, tmp, batch, linger)
            pids.append(pid)
        while pids:
            os.waitpid(pids[0], 0)
            pids.pop(0)
        results = []
        for i in range(jobs):
            try:
                with open(os.path.join(tmp, f"w{i}.pkl"), "rb") as f:
                    results.append(pickle.load(f))
            except OSError:
                raise RuntimeError("a trace worker died without a result") from None
        for kind, val in results:
            if kind == "raise":
                _raise_from(val)
        r0 = results[0][1]
        firsts = []
        for i in range(jobs):
            a = array("q")
            with open(os.path.join(tmp, f"w{i}.first"), "rb") as f:
                a.frombytes(f.read())
            firsts.append(a)
        _merge(out, fmt, [os.path.join(tmp, f"w{i}.rec") for i in range(jobs)], firsts)
        peaks = [sum(x) for x in zip(*(r[1]["peaks"] for r in results), strict=True)]
        err = r0["error"]
        res = TraceResult(
            stats=r0["stats"],
            connections=sum(r[1]["count"] for r in results),
            peak_open=max([0, *peaks]),
            linktypes=r0["linktypes"],
            format=r0["format"],
        )
        if err is not None:
            try:
                _raise_from(err)
            except CaptureError as exc:
                res.error = exc
        res.warnings = r0["warnings"]
        if zw is not None:
            zw.close()
        else:
            import json

            out.write("\n],\n")
            out.write('"summary": ' + json.dumps(summary(res) if summary else {}) + "}\n")
        return res
    finally:
        for pid in pids:  # interrupted: stop the workers we started
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


def _merge(out: TextIO, fmt: str, recs: list[str], firsts: list[array]) -> None:  # type: ignore[type-arg]
    jobs = len(recs)
    others = [[firsts[o] for o in range(jobs) if o != w] for w in range(jobs)]
    bl = bisect.bisect_left
    salt = 0
    chunk: list[str] = []
    sep = ""
    json_fmt = fmt == "json"
    for _key, w, p in heapq.merge(*(_records(r, w) for w, r in enumerate(recs))):
        first = int(p[1])
        n = int(p[2])
        for a in others[w]:
            n += bl(a, first)
        if not salt:
            salt = int(p[3])
        u = uid_of(n, salt)
        if json_fmt:
            chunk.append(f'{sep}{{"n":{n},"uid":"{u}"{p[5][:-1]}')
            sep = ",\n"
        else:
            chunk.append(f"{p[4]}\t{u}\t{p[5]}")
        if len(chunk) >= 4096:
            out.write("".join(chunk))
            chunk.clear()
    out.write("".join(chunk))

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

After every batch each worker sends the parent, through a pipe, one block: the first-packet numbers of the
connections it created in that batch and the connections it finished (key, first packet, local number, uid salt
candidate, and the formatted text after the uid). The parent reads block b of every worker, then b+1 (the
workers run ahead by what the pipe holds), sorts the step's connections by key and writes them: the global
connection number is the local number plus the number of the other workers' connections that started earlier
(a binary search in their creation lists), the uid salt is the first written connection's, exactly as the
single-process sinks choose it. Workers hold their open connections; the parent holds one step's finished
connections and 8 bytes per connection (the creation lists); nothing touches the disk.
"""

from __future__ import annotations

import bisect
import fcntl
import gc
import heapq
import os
import pickle
import re
import signal
from array import array
from collections.abc import Iterator
from operator import itemgetter
from typing import Any, TextIO

from tcpwise.trace.decode import AddrTable, DecodeStats, decode_batch
from tcpwise.trace.output import BATCH, TraceResult, conn_json
from tcpwise.trace.reader import CaptureError, open_capture
from tcpwise.trace.tracker import Conn, Tracker, ZeekTimers
from tcpwise.trace.zeek import ZeekWriter, uid_of

__all__ = ["trace_parallel"]

_MARK = re.compile("\x03(\\d+):(\\d+)\x04")


def _renumber(text: str, others: list[Any]) -> str:
    """Replace a worker's local row-number markers by single-process numbers (plus the other workers' rows
    that started earlier)."""

    def one(m: re.Match[str]) -> str:
        return str(int(m[1]) + sum(bisect.bisect_left(a, int(m[2])) for a in others))

    return _MARK.sub(one, text)


_KIND = 1 << 40  # packet numbers stay below 2^40; key = (batch * 4 + kind) * 2^40 + packet number


class _PartTracker(Tracker):
    """A tracker that knows which of its three finishing paths is calling the sink, logs creations, and sends
    the connections it finishes to the parent as the protocol of this module says."""

    phase = 0

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.peaks: list[int] = []  # open connections after each batch, before the sweep (as Tracker.peak)
        self.created: list[int] = []  # first packets of the connections created since the last block
        self.send_created: Any = None  # set by the worker

    def _created(self, pno: int) -> None:
        self.created.append(pno)

    def sweep(self, now: float) -> None:
        self.peaks.append(self.open_count())
        self.send_created()
        self.phase = 1
        super().sweep(now)
        self.phase = 0

    def flush(self) -> None:
        self.send_created()
        self.phase = 2
        super().flush()


_CHUNK = 2048  # records per message: a step's records stream through bounded memory


def _worker(
    path: str, out: Any, index: int, jobs: int, fmt: str, batch: int, timers: ZeekTimers, checksums: str
) -> None:
    """Track partition ``index``. Per step (each batch, then the end-of-capture flush) send ``("blk", created)``,
    then the step's finished connections in key order as ``("rec", [...])`` chunks, then ``("eos",)``."""
    addrs = AddrTable()
    stats = DecodeStats()
    name = addrs.name
    recs: list[tuple[int, int, int, int, str, str]] = []
    bno = 0
    zw = ZeekWriter.__new__(ZeekWriter)  # only its row(): the header is the parent's
    zw.name_of = name
    zw.salt = 1
    dump = pickle.dump
    hp = pickle.HIGHEST_PROTOCOL

    def send_recs() -> None:
        if recs:
            dump(("rec", recs), out, protocol=hp)
            recs.clear()

    def sink(c: Conn) -> None:
        ph = tracker.phase
        if ph == 0:
            key = (bno * 4) * _KIND + tracker.fin_pno
        elif ph == 1:
            key = (bno * 4 + 1) * _KIND + c.first_index
        else:
            key = ((1 << 22) * 4 + 2) * _KIND + c.first_index
        if fmt == "json":
            text = conn_json(c, name, 1)
            if c.prev_n is not None:
                # The earlier row's number is local to this worker: leave a marker the parent renumbers.
                mark = f"\x03{c.prev_n}:{c.prev_first}\x04"
                text = text.replace(f"continues #{c.prev_n}", "continues #" + mark, 1)
                text = text[: text.rindex('"continues":')] + f'"continues":{mark}}}'
            recs.append(
                (key, c.first_index, c.n, int(c.ts * 1e6) or 1, "", text[text.index('","ts":') + 1 :])
            )
        else:
            row = zw.row(c)
            recs.append((key, c.first_index, c.n, int(c.ts * 1e6) or 1, row[0], "\t".join(row[2:])))
        if ph and len(recs) >= _CHUNK:  # sweep and flush records come after the step's created list
            send_recs()

    def send_created() -> None:
        dump(("blk", tracker.created), out, protocol=hp)
        tracker.created = []
        send_recs()  # this step's records so far (finished at packets, before the sweep)

    def end_step() -> None:
        send_recs()
        dump(("eos",), out, protocol=hp)
        out.flush()

    tracker = _PartTracker(sink, addrs, timers=timers)
    tracker.send_created = send_created
    err: CaptureError | None = None
    part = (index, jobs)
    with open_capture(path) as cap:
        try:
            for rb in cap.batches(batch):
                tracker.feed(decode_batch(rb.buf, rb, addrs, stats, path, part, checksums))
                end_step()
                bno += 1
        except CaptureError as exc:
            if cap.packets_read == 0:
                raise
            err = exc
        tracker.flush()
        end_step()
        info = {
            "stats": stats,
            "count": tracker.count,
            "peaks": tracker.peaks,
            "linktypes": sorted(cap.linktypes),
            "format": cap.format,
            "error": None if err is None else (type(err).__name__, str(err)),
            "warnings": stats.warnings(),
            "packets_read": cap.packets_read,
        }
    pickle.dump(("end", info), out)
    out.flush()


def _raise_from(info: tuple[str, str]) -> None:
    from tcpwise import errors
    from tcpwise.trace import reader

    cls = getattr(reader, info[0], None) or getattr(errors, info[0], None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        raise cls(info[1])
    raise RuntimeError(f"trace worker failed: {info[0]}: {info[1]}")


def _child(
    path: str, wfd: int, index: int, jobs: int, fmt: str, batch: int, timers: ZeekTimers, checksums: str
) -> None:
    """Runs in the forked worker; never returns (os._exit, so no inherited buffer is flushed twice)."""
    out = os.fdopen(wfd, "wb", buffering=1 << 20)
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        gc.disable()  # as trace_file: the tracker makes no cycles
        _worker(path, out, index, jobs, fmt, batch, timers, checksums)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        try:
            pickle.dump(("raise", (type(exc).__name__, str(exc))), out)
            out.flush()
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
    batch: int = BATCH,
    timers: ZeekTimers | None = None,
    checksums: str = "auto",
) -> TraceResult:
    """Write ``fmt`` ("json" or "zeek") for ``path`` to ``out`` using ``jobs`` worker processes.

    ``summary(result) -> dict`` builds the JSON summary object. The bytes written are those of the
    single-process sinks (:class:`~tcpwise.trace.output.JsonSink`, :class:`~tcpwise.trace.zeek.ZeekWriter`).
    """
    if fmt not in ("json", "zeek"):
        raise ValueError(f"--jobs supports json and zeek, not {fmt!r}")
    # The headers first, as the single-process sinks write them (Zeek's #open is the start time). The caller
    # has already checked that the input is a capture.
    zw = ZeekWriter(out, str) if fmt == "zeek" else None
    if zw is None:
        out.write('{"connections": [\n')
    else:
        zw.start()
    out.flush()  # nothing buffered may be inherited by the workers
    pids: list[int] = []
    feeds: list[Any] = []
    try:
        for i in range(jobs):
            rfd, wfd = os.pipe()
            try:
                fcntl.fcntl(wfd, 1031, 1 << 20)  # F_SETPIPE_SZ (fcntl(2)): let a worker run a batch ahead
            except OSError:
                pass
            pid = os.fork()
            if pid == 0:
                os.close(rfd)
                for f in feeds:
                    os.close(f.fileno())
                _child(path, wfd, i, jobs, fmt, batch, timers or ZeekTimers(), checksums)
            os.close(wfd)
            pids.append(pid)
            feeds.append(os.fdopen(rfd, "rb", buffering=1 << 20))
        infos = _merge(out, fmt, feeds)
        while pids:
            os.waitpid(pids[0], 0)
            pids.pop(0)
        r0 = infos[0]
        peaks = [sum(x) for x in zip(*(r["peaks"] for r in infos), strict=True)]
        stats = r0[
            "stats"
        ]  # every worker counts every packet, but checks checksums only of its own connections
        stats.bad_checksums = sum(r["stats"].bad_checksums for r in infos)
        stats.offloaded = sum(r["stats"].offloaded for r in infos)
        res = TraceResult(
            stats=stats,
            connections=sum(r["count"] for r in infos),
            peak_open=max([0, *peaks]),
            linktypes=r0["linktypes"],
            format=r0["format"],
            packets_read=r0["packets_read"],
        )
        if r0["error"] is not None:
            try:
                _raise_from(r0["error"])
            except CaptureError as exc:
                res.error = exc
        res.warnings = stats.warnings()
        if zw is not None:
            zw.close()
        else:
            import json

            out.write("\n],\n")
            out.write('"summary": ' + json.dumps(summary(res) if summary else {}) + "}\n")
        return res
    finally:
        for f in feeds:
            f.close()
        for pid in pids:  # interrupted or failed: stop the workers we started
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass


def _merge(out: TextIO, fmt: str, feeds: list[Any]) -> list[dict[str, Any]]:
    """Read the workers' steps in lock step (step b of every worker, then b+1): first every worker's created
    list, then a k-way merge of their record streams (each sorted by key), written numbered as it goes.
    Returns the workers' final reports."""
    jobs = len(feeds)
    created = [array("q") for _ in range(jobs)]  # first packets of every worker's connections so far
    others = [[created[o] for o in range(jobs) if o != w] for w in range(jobs)]
    infos: list[dict[str, Any] | None] = [None] * jobs
    state = {"salt": 0, "sep": ""}
    while True:
        live = []
        for w, f in enumerate(feeds):
            if infos[w] is not None:
                continue
            msg = _load(f)
            if msg[0] == "end":
                infos[w] = msg[1]
                continue
            created[w].extend(msg[1])
            live.append(w)
        if not live:
            return infos  # type: ignore[return-value]
        merged = heapq.merge(*(_step_records(feeds[w], w) for w in live), key=itemgetter(0))
        _write_step(out, fmt, merged, others, state)


def _load(f: Any) -> Any:
    try:
        msg = pickle.load(f)
    except EOFError:
        raise RuntimeError("a trace worker died without a result") from None
    if msg[0] == "raise":
        _raise_from(msg[1])
    return msg


def _step_records(f: Any, w: int) -> Iterator[tuple[int, int, int, int, str, str, int]]:
    """Worker ``w``'s records of the current step, in key order, read chunk by chunk."""
    while True:
        msg = _load(f)
        if msg[0] == "eos":
            return
        for r in msg[1]:
            yield (*r, w)


def _write_step(
    out: TextIO, fmt: str, merged: Iterator[tuple[int, int, int, int, str, str, int]], others: list[Any],
    state: dict[str, Any],
) -> None:  # fmt: skip
    bl = bisect.bisect_left
    json_fmt = fmt == "json"
    chunk: list[str] = []
    salt, sep = state["salt"], state["sep"]
    for _key, first, n, s, head, rest, w in merged:
        for a in others[w]:
            n += bl(a, first)
        if not salt:
            salt = s
        u = uid_of(n, salt)
        if "\x03" in rest:
            rest = _renumber(rest, others[w])
        if json_fmt:
            chunk.append(f'{sep}{{"n":{n},"uid":"{u}"{rest}')
            sep = ",\n"
        else:
            chunk.append(f"{head}\t{u}\t{rest}\n")
        if len(chunk) >= _CHUNK:
            out.write("".join(chunk))
            chunk.clear()
    out.write("".join(chunk))
    state["salt"], state["sep"] = salt, sep

"""``tcpwise trace --jobs N``: the same JSON / Zeek output, tracked by N forked worker processes.

Theory of operation
-------------------
The parent reads and decodes the capture once, batch by batch (in a thread), splits each batch's packets by the
hash of their endpoint pair (:func:`tcpwise.trace.decode.partition_of`) and sends each worker its share as numpy
columns (one sender thread per worker, so that a worker that is behind never starves another). A connection's
life depends only on its own packets and on the batch clock (the time of each batch's last TCP packet, which
every worker receives), so each worker finishes each of its connections exactly when one tracker would.

The single tracker hands connections to its sink in a well-defined order, which every worker can key locally:

* a connection ended at a packet (a new SYN on its 4-tuple, or its timer found due when its next packet came):
  ``(batch, 0, number of that packet)``;
* connections swept at the end of a batch: ``(batch, 1, first packet)`` — the tracker writes them in
  connection-number order, and numbers follow first packets;
* connections still open at the end: ``(last, 2, first packet)``.

Per batch ("step") each worker sends the parent the first-packet numbers of the connections it created, then the
connections it finished, in key order, in chunks of :data:`_CHUNK` (key, first packet, local number, uid salt
candidate, and the formatted text after the uid), then an end-of-step mark. The parent takes every worker's
created list for the step, then merges the workers' record streams by key as they arrive and writes them: the
global connection number is the local number plus the number of the other workers' connections that started
earlier (a binary search in their creation lists; the same for the ``continues #N`` of a row), the uid salt is the
first written connection's, exactly as the single-process sinks choose it. Workers hold their open connections;
the parent holds a few batches in flight, one chunk per worker and 8 bytes per connection (the creation lists);
nothing touches the disk. The decoding statistics are the parent's (it saw every packet).
"""

from __future__ import annotations

import bisect
import fcntl
import gc
import heapq
import os
import pickle
import queue
import re
import signal
import threading
from array import array
from collections.abc import Iterator
from operator import itemgetter
from typing import Any, TextIO

import numpy as np

from tcpwise.errors import UNWIND_SIGNALS
from tcpwise.trace.decode import AddrTable, DecodeStats, Packets, decode_arrays, partition_of, to_decoded
from tcpwise.trace.output import BATCH, TraceResult, conn_json, sigint_to
from tcpwise.trace.reader import CaptureError, StopFlag, open_capture
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


def _worker(inp: Any, out: Any, fmt: str, timers: ZeekTimers) -> None:
    """Track the shares of packets the parent sends (``("batch", Packets, new IPv6 names)`` ... ``("end",)``);
    per step send ``("blk", created)``, then the finished connections in key order as ``("rec", [...])`` chunks,
    then ``("eos",)``; at the end ``("end", info)``."""
    addrs = AddrTable()
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
    while True:
        msg = pickle.load(inp)
        if msg[0] != "batch":
            break
        addrs.add_v6(msg[2])
        tracker.feed(to_decoded(msg[1]))
        end_step()
        bno += 1
    tracker.flush()
    end_step()
    dump(("end", {"count": tracker.count, "peaks": tracker.peaks}), out)
    out.flush()


def _raise_from(info: tuple[str, str]) -> None:
    from tcpwise import errors
    from tcpwise.trace import reader

    cls = getattr(reader, info[0], None) or getattr(errors, info[0], None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        raise cls(info[1])
    raise RuntimeError(f"trace worker failed: {info[0]}: {info[1]}")


def _child(rfd: int, wfd: int, fmt: str, timers: ZeekTimers) -> None:
    """Runs in the forked worker; never returns (os._exit, so no inherited buffer is flushed twice)."""
    out = os.fdopen(wfd, "wb", buffering=1 << 20)
    inp = os.fdopen(rfd, "rb", buffering=1 << 20)
    try:
        # Ctrl-C reaches the whole process group: the parent decides (it stops reading and lets every worker
        # finish what it was sent, so the output stays whole). SIGTERM and SIGHUP get their default back: the CLI's
        # handler, inherited by fork, would unwind the worker as if it were the CLI.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for sig in UNWIND_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        gc.disable()  # as trace_file: the tracker makes no cycles
        _worker(inp, out, fmt, timers)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        try:
            pickle.dump(("raise", (type(exc).__name__, str(exc))), out)
            out.flush()
        except BaseException:  # noqa: BLE001, S110
            pass
    finally:
        os._exit(0)


class _Feeder:
    """The parent's reading side: decode each batch once, send every worker its share (a thread per worker)."""

    def __init__(self, path: str, batch: int, checksums: str, inputs: list[Any], stop: StopFlag) -> None:
        self.path, self.batch, self.checksums, self.stop = path, batch, checksums, stop
        self.interrupted = False  # Ctrl-C: reading stopped early, the output covers packets_read packets
        self.inputs = inputs
        self.jobs = len(inputs)
        self.stats = DecodeStats()
        self.error: CaptureError | None = None  # damage after some packets: reported after the output
        self.fatal: BaseException | None = None  # nothing readable, or a failure: raised instead of output
        self.linktypes: list[int] = []
        self.format = ""
        self.packets_read = 0
        self.queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=4) for _ in inputs]
        self.threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(self.jobs)]
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.stopped = False

    def start(self) -> None:
        for t in self.threads:
            t.start()
        self.reader.start()

    def join(self) -> None:
        self.reader.join()
        for t in self.threads:
            t.join()

    def abort(self) -> None:
        """The main thread failed: let the reader and the senders finish without waiting for workers."""
        self.stopped = True
        for q in self.queues:
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
            q.put(("end",))

    def _read(self) -> None:
        addrs = AddrTable()
        sent_v6 = 0
        try:
            with open_capture(self.path, self.stop) as cap:
                self.format = cap.format
                try:
                    for rb in cap.batches(self.batch):
                        if self.stopped:
                            break
                        pk = decode_arrays(rb.buf, rb, addrs, self.stats, self.path, None, self.checksums)
                        names = addrs.v6_since(sent_v6)
                        sent_v6 += len(names)
                        self._share(pk, names)
                        if self.stop.requested:  # as trace_file: stop at a batch boundary, output stays whole
                            self.interrupted = True
                            break
                except CaptureError as exc:
                    if cap.packets_read == 0:
                        raise
                    self.error = exc
                self.linktypes = sorted(cap.linktypes)
                self.packets_read = cap.packets_read
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.fatal = exc
        finally:
            for q in self.queues:
                q.put(("end",))

    def _share(self, pk: Packets, names: list[str]) -> None:
        if pk.lo.size:
            part = partition_of(pk.lo, pk.hi, self.jobs)
            for w, q in enumerate(self.queues):
                q.put(("batch", pk.take(np.nonzero(part == w)[0]), names))
        else:
            for q in self.queues:
                q.put(("batch", pk, names))

    def _send(self, w: int) -> None:
        f, q = self.inputs[w], self.queues[w]
        try:
            while True:
                msg = q.get()
                pickle.dump(msg, f, protocol=pickle.HIGHEST_PROTOCOL)
                f.flush()
                if msg[0] == "end":
                    break
        except OSError:
            pass  # the worker is gone; the main thread reports it
        finally:
            try:
                f.close()
            except OSError:
                pass


def trace_parallel(
    path: str,
    fmt: str,
    out: TextIO,
    jobs: int,
    summary: Any = None,
    batch: int = BATCH,
    timers: ZeekTimers | None = None,
    checksums: str = "auto",
    stop: StopFlag | None = None,
) -> TraceResult:
    """Write ``fmt`` ("json" or "zeek") for ``path`` to ``out`` using ``jobs`` worker processes.

    ``summary(result) -> dict`` builds the JSON summary object. The bytes written are those of the
    single-process sinks (:class:`~tcpwise.trace.output.JsonSink`, :class:`~tcpwise.trace.zeek.ZeekWriter`).
    Ctrl-C as in :func:`~tcpwise.trace.output.trace_file`: the first stops reading at the next batch and the
    output is completed for what was read (``interrupted``); the third abandons the run.
    """
    stop = stop or StopFlag()
    with sigint_to(stop):
        return _trace_parallel(path, fmt, out, jobs, summary, batch, timers, checksums, stop)


def _trace_parallel(
    path: str, fmt: str, out: TextIO, jobs: int, summary: Any, batch: int, timers: ZeekTimers | None,
    checksums: str, stop: StopFlag,
) -> TraceResult:  # fmt: skip
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
    inputs: list[Any] = []
    feeder: _Feeder | None = None
    try:
        for _ in range(jobs):
            rfd, wfd = os.pipe()  # worker -> parent
            rin, win = os.pipe()  # parent -> worker
            for fd in (wfd, win):
                try:
                    fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ (fcntl(2)): room for a batch in flight
                except OSError:
                    pass
            pid = os.fork()
            if pid == 0:
                os.close(rfd)
                os.close(win)
                for f in feeds + inputs:
                    os.close(f.fileno())
                _child(rin, wfd, fmt, timers or ZeekTimers())
            os.close(wfd)
            os.close(rin)
            pids.append(pid)
            feeds.append(os.fdopen(rfd, "rb", buffering=1 << 20))
            inputs.append(os.fdopen(win, "wb", buffering=1 << 20))
        feeder = _Feeder(path, batch, checksums, inputs, stop)
        feeder.start()
        infos = _merge(out, fmt, feeds)
        feeder.join()
        if feeder.fatal is not None:
            raise feeder.fatal
        while pids:
            os.waitpid(pids[0], 0)
            pids.pop(0)
        peaks = [sum(x) for x in zip(*(r["peaks"] for r in infos), strict=True)]
        res = TraceResult(
            stats=feeder.stats,
            connections=sum(r["count"] for r in infos),
            peak_open=max([0, *peaks]),
            linktypes=feeder.linktypes,
            format=feeder.format,
            error=feeder.error,
            packets_read=feeder.packets_read,
            interrupted=feeder.interrupted,
        )
        res.warnings = feeder.stats.warnings()
        if zw is not None:
            zw.close()
        else:
            import json

            out.write("\n],\n")
            out.write('"summary": ' + json.dumps(summary(res) if summary else {}) + "}\n")
        return res
    finally:
        if feeder is not None and feeder.reader.is_alive():
            feeder.abort()
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

"""`tcpwise trace -`, /dev/stdin and FIFOs read as streams; Ctrl-C ends them cleanly with complete output.

The contract (issue 11): ``tcpwise trace - --format zeek|json`` reads a capture from standard input while its
writer runs; nothing is written before the input is known to be a capture; ``tcpdump -i lo -w - | tcpwise trace
- --format zeek`` stops cleanly on Ctrl-C with complete output.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tracecaps import Conv, eth, pcapng

from tcpwise.cli import main

REAL = Path(__file__).parent / "data" / "lo-small.pcap"
CLI = [sys.executable, "-m", "tcpwise.cli", "trace"]


def _no_clock(text: str) -> str:
    return "".join(ln for ln in text.splitlines(True) if not ln.startswith(("#open", "#close")))


def _file_output(path: Path, fmt: str, capsys) -> str:
    assert main(["trace", str(path), "--format", fmt]) == 0
    return capsys.readouterr().out


def _stream(data: bytes, *args: str, chunks: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Feed ``data`` to `tcpwise trace` on its standard input (in random pieces with pauses if ``chunks``)."""
    p = subprocess.Popen([*CLI, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdin is not None
    if chunks:
        rng = random.Random(7)
        i = 0
        while i < len(data):
            n = rng.choice((1, 3, 15, 16, 17, 100, 1000))
            p.stdin.write(data[i : i + n])
            p.stdin.flush()
            i += n
            if rng.random() < 0.05:
                time.sleep(0.01)
    else:
        p.stdin.write(data)
    out, err = p.communicate(timeout=60)  # closes standard input: the end of the stream
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.mark.parametrize("fmt", ["zeek", "json"])
def test_stdin_gives_the_file_output(fmt: str, capsys) -> None:
    want = _file_output(REAL, fmt, capsys)
    r = _stream(REAL.read_bytes(), "-", "--format", fmt, chunks=True)  # records split across reads
    assert r.returncode == 0, r.stderr
    assert _no_clock(r.stdout.decode()) == _no_clock(want)


def test_pcapng_and_dev_stdin(tmp_path, capsys) -> None:
    p = tmp_path / "c.pcapng"
    pkts = [(0, t, eth(x)) for t, x in Conv().handshake().c("PA", b"hi").s("FA").c("FA").s("A").pkts]
    pcapng(str(p), [(1, 9)], pkts)
    want = _file_output(p, "zeek", capsys)
    r = _stream(p.read_bytes(), "/dev/stdin", "--format", "zeek")
    assert r.returncode == 0 and _no_clock(r.stdout.decode()) == _no_clock(want)


def test_not_a_capture_on_stdin_writes_nothing(tmp_path) -> None:
    for fmt in ("zeek", "json", "table"):
        r = _stream(b"GET / HTTP/1.1\r\n\r\n" * 10, "-", "--format", fmt)
        assert r.returncode == 2 and r.stdout == b""
        assert r.stderr.decode().startswith("tcpwise: error: -: not a pcap or pcapng file")


def test_truncated_stream_prints_what_it_read_then_exits_2() -> None:
    data = REAL.read_bytes()
    r = _stream(data[:-30], "-", "--format", "json")
    assert r.returncode == 2 and "stream ended inside record" in r.stderr.decode()
    assert json.loads(r.stdout)["summary"]["packets"] == 62


def test_fifo_waits_for_its_writer(tmp_path, capsys) -> None:
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)

    def writer() -> None:
        time.sleep(1.5)  # long enough for the "waiting" notice
        with open(fifo, "wb") as f:
            f.write(REAL.read_bytes())

    t = threading.Thread(target=writer)
    t.start()
    r = subprocess.run([*CLI, str(fifo), "--format", "zeek"], capture_output=True, timeout=60)
    t.join()
    assert r.returncode == 0
    assert "waiting for capture data" in r.stderr.decode()
    assert _no_clock(r.stdout.decode()) == _no_clock(_file_output(REAL, "zeek", capsys))


def test_fifo_without_writer_stops_on_ctrl_c(tmp_path) -> None:
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    p = subprocess.Popen([*CLI, str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_polling(p.pid)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert time.monotonic() - t0 < 5
    assert p.returncode == 130 and out == b"" and "Traceback" not in err.decode()


def test_ctrl_c_on_an_open_stream_completes_the_output() -> None:
    """The writer sent half a capture and stays silent with the pipe open: one Ctrl-C drains (a second of
    silence) and ends the trace as a capture end: complete JSON, exit 0 (a live trace ends this way)."""
    data = REAL.read_bytes()
    cut = 24
    for _ in range(11):  # eleven whole records, then part of the twelfth
        cut += 16 + int.from_bytes(data[cut + 8 : cut + 12], "little")
    p = subprocess.Popen([*CLI, "-", "--format", "json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)  # fmt: skip
    assert p.stdin is not None
    p.stdin.write(data[: cut + 30])
    p.stdin.flush()
    _wait_polling(p.pid)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert time.monotonic() - t0 < 5
    assert p.returncode == 0, err
    doc = json.loads(out)
    assert doc["summary"]["interrupted"] is True and doc["summary"]["packets"] == 11
    assert doc["connections"], "the connections seen so far are written"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_interrupted_file_exits_130_with_complete_output(tmp_path, capsys, monkeypatch, jobs) -> None:
    """Ctrl-C while reading a file: stop at the next batch, write complete output, exit 130 (simulated: the stop
    flag is already set when reading starts), the same with worker processes as without."""
    from tcpwise.trace import reader

    class Pressed(reader.StopFlag):
        def __init__(self) -> None:
            super().__init__()
            self.requested = 1

    monkeypatch.setattr(reader, "StopFlag", Pressed)
    out = tmp_path / "o.json"
    assert main(["trace", str(REAL), "--format", "json", "--jobs", jobs, "-o", str(out)]) == 130
    assert "interrupted: the output covers the first 63 packets" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["summary"]["interrupted"] is True
    monkeypatch.undo()
    assert main(["trace", str(REAL), "--format", "json", "--jobs", "1", "-o", str(out)]) == 0
    whole = json.loads(out.read_text())
    assert doc["connections"] == whole["connections"]  # the whole file was one batch: nothing is missing


@pytest.fixture(scope="module")
def flood(tmp_path_factory) -> Path:
    """300,000 unanswered SYNs: seconds of work, long enough to signal a run in the middle (written once)."""
    from tracecaps import syn_flood

    cap = tmp_path_factory.mktemp("flood") / "flood.pcap"
    syn_flood(cap, 300_000)
    return cap


@pytest.mark.parametrize("fmt", ["json", "zeek"])
def test_ctrl_c_with_workers_keeps_the_output_whole(flood, fmt) -> None:
    """A real Ctrl-C (SIGINT to the process group, as a terminal sends it) while --jobs 2 workers run: the
    workers must not die with it; the parent stops reading and completes the document for what was read."""
    from tcpwise.linux.procfs import child_pids

    cap = flood
    p = subprocess.Popen([*CLI, str(cap), "--format", fmt, "--jobs", "2"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    end = time.monotonic() + 20
    while len(child_pids(p.pid)) < 2 and time.monotonic() < end and p.poll() is None:
        time.sleep(0.01)
    # Soon: the reader runs ahead of the workers by the queues' depth, and with the native decoder it reads this
    # whole file in ~0.3 s; a Ctrl-C after the last batch was read has nothing left to stop (exit 0, output whole).
    time.sleep(0.02)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err.decode()
    assert "interrupted: the output covers the first" in err.decode() and "Traceback" not in err.decode()
    text = out.decode()
    if fmt == "json":
        doc = json.loads(text)
        assert doc["summary"]["interrupted"] is True
        assert 0 < doc["summary"]["packets"] < 300_000
        assert len(doc["connections"]) == doc["summary"]["packets"]  # one S0 row per SYN that was read
    else:
        assert text.splitlines()[-1].startswith("#close")


def _wait_polling(*pids: int, budget: float = 20.0, settle: int = 1) -> None:
    """Wait (bounded) until every process sleeps in poll(2) — tcpwise's stream reader waiting for data, tcpdump
    waiting for packets — ``settle`` times in a row, 50 ms apart."""
    end = time.monotonic() + budget
    calm = 0
    while time.monotonic() < end:
        states = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/wchan") as f:
                    states.append("poll" in f.read())
            except OSError:
                return
        calm = calm + 1 if all(states) else 0
        if calm >= settle:
            return
        time.sleep(0.05)
    raise AssertionError("the processes never settled in their read loops")


def _wait_captured(dump: subprocess.Popen[bytes], budget: float = 20.0) -> None:
    """Ask tcpdump for its count (SIGUSR1) until it is above 0 and has not moved for 1.5 s (libpcap hands packets
    over in blocks, at the latest after its 1 s timeout)."""
    import select

    assert dump.stderr is not None
    end = time.monotonic() + budget
    last, same_for = -1, 0
    while time.monotonic() < end:
        dump.send_signal(signal.SIGUSR1)
        got = b""
        while select.select([dump.stderr], [], [], 0.1)[0]:
            chunk = os.read(dump.stderr.fileno(), 4096)
            if not chunk:
                break
            got += chunk
        counts = [int(m) for m in re.findall(r"(\d+) packets? captured", got.decode())]
        if counts:
            same_for = same_for + 1 if counts[-1] == last and last > 0 else 0
            last = counts[-1]
            if same_for >= 15:
                return
    raise AssertionError("tcpdump kept capturing")


@pytest.mark.kernel
def test_live_tcpdump_pipe_stops_cleanly_on_ctrl_c() -> None:
    """`tcpdump -i lo -w - | tcpwise trace - --format zeek` with a bounded loopback load (20 connections to a
    port of our own), then Ctrl-C to both, as a terminal sends it: every connection is a row, #close ends the
    log, exit 0."""
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        pytest.skip("needs root and tcpdump")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]

    def serve() -> None:
        srv.settimeout(10)
        for _ in range(20):
            c, _a = srv.accept()
            c.recv(100)
            c.sendall(b"ok")
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-w", "-", "-U", "-n", f"tcp port {port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, process_group=0)  # fmt: skip
    try:
        assert dump.stderr is not None and b"listening on" in dump.stderr.readline()
        tw = subprocess.Popen([*CLI, "-", "--format", "zeek"], stdin=dump.stdout, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, process_group=dump.pid)  # fmt: skip
        assert dump.stdout is not None
        dump.stdout.close()
        for i in range(20):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"hi %d" % i)
                s.recv(10)
        _wait_captured(dump)  # tcpdump has written every packet of the load
        _wait_polling(
            tw.pid, settle=3
        )  # tcpwise has read them and waits for more (its Ctrl-C handler is set)
        os.killpg(dump.pid, signal.SIGINT)  # what Ctrl-C in the terminal does to the pipeline
        out, err = tw.communicate(timeout=15)
    finally:
        if dump.poll() is None:
            dump.kill()
        dump.wait(5)
        srv.close()
    assert tw.returncode == 0, err
    lines = out.decode().splitlines()
    rows = [ln.split("\t") for ln in lines if not ln.startswith("#")]
    assert len(rows) == 20 and lines[-1].startswith("#close"), (out, err)
    assert all(r[5] == str(port) and r[11] in ("SF", "S1", "S3") for r in rows)


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_leaves_no_temporary_file(flood, tmp_path, jobs, sig) -> None:
    """SIGTERM (a supervisor stopping tcpwise) unwinds like Ctrl-C's third press: exit 143, the -o target is
    not written and no temporary file stays next to it (its default action would have left a half document).
    SIGHUP (the terminal closed) takes the same path and exits 129."""
    cap = flood
    target = tmp_path / "out" / "o.json"
    target.parent.mkdir()
    p = subprocess.Popen([*CLI, str(cap), "--format", "json", "--jobs", jobs, "-o", str(target)],
                         stderr=subprocess.PIPE)  # fmt: skip
    end = time.monotonic() + 20
    while not any(target.parent.iterdir()) and time.monotonic() < end and p.poll() is None:
        time.sleep(0.01)  # the temporary file exists: output has started
    p.send_signal(sig)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, err.decode()
    assert err.decode().strip() == "tcpwise: terminated" + (" (SIGHUP)" if sig == signal.SIGHUP else "")
    assert list(target.parent.iterdir()) == []
    left = subprocess.run(["pgrep", "-f", str(cap)], capture_output=True, text=True).stdout.split()
    assert left == [], "forked workers outlived their parent"


def test_one_ctrl_c_ends_a_stream_that_keeps_trickling() -> None:
    """A FIFO fed by another program: the writer never gets the Ctrl-C and keeps sending a packet every 0.2 s,
    so the stream is never silent for a second. One Ctrl-C must still end the trace within the drain's hard
    limit (5 s), with complete output."""
    data = REAL.read_bytes()
    recs, off = [], 24
    while off < len(data):
        n = 16 + int.from_bytes(data[off + 8 : off + 12], "little")
        recs.append(data[off : off + n])
        off += n
    r, w = os.pipe()  # not Popen's stdin pipe: communicate() would close it (an end of stream, not a trickle)
    p = subprocess.Popen(
        [*CLI, "-", "--format", "json"], stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    os.close(r)
    stdin = os.fdopen(w, "wb", buffering=0)
    done = threading.Event()

    def trickle() -> None:
        try:
            stdin.write(data[:24])
            for i in range(600):  # bounded: 120 s at most
                if done.wait(0.2):
                    return
                stdin.write(recs[i % len(recs)])
        except BrokenPipeError:
            pass  # tcpwise ended: what this test wants
        finally:
            stdin.close()

    t = threading.Thread(target=trickle)
    t.start()
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        done.set()
        t.join()
    assert p.returncode == 0, err
    assert took < 15, took  # the 5 s limit plus slack for a loaded machine; without a limit: never
    doc = json.loads(out)
    assert doc["summary"]["interrupted"] is True and doc["connections"]


def test_a_giant_pcapng_block_on_a_stream_fails_at_once(tmp_path) -> None:
    """A block header claiming 4 GiB on a pipe that stays open: the capture is damaged, said at once (exit 2,
    complete output for the packets before it), not buffered until the writer has sent 4 GiB."""
    good = tmp_path / "g.pcapng"
    pkts = [(0, t, eth(p)) for t, p in Conv().handshake().c("FA").s("FA").c("A").pkts]
    pcapng(str(good), [(1, None)], pkts)
    r, w = os.pipe()
    p = subprocess.Popen(
        [*CLI, "-", "--format", "json"], stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    os.close(r)
    try:
        os.write(w, good.read_bytes() + struct.pack("<II", 6, 0xFFFFFFF0) + b"\x00" * 65536)
        out, err = p.communicate(timeout=30)  # the pipe is still open: only the check can end the run
    finally:
        os.close(w)
    assert p.returncode == 2 and "block length 4294967280" in err.decode(), err
    assert len(json.loads(out)["connections"]) == 1

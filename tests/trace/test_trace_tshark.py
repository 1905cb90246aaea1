"""tshark judges trace's counting: packets and IP bytes per direction, and the window as users read it.

Wireshark's dissector is code we did not write. For every 4-tuple and direction in a capture, the packets
and IP bytes that trace's rows add up to must equal tshark's sums, even when Zeek's rules split one 4-tuple
into several rows. The last advertised window must equal tshark's calculated window (`tcp.window_size`, the
raw field shifted by the scale both SYNs negotiated) wherever tshark knows the scale.

The handshake's RTT too: Wireshark's `tcp.analysis.initial_rtt` runs from the SYN that was answered to the
ACK of the SYN+ACK, as trace's `handshake.rtt` does (its `syn_to_synack` runs from the first SYN: with SYN
retries that is the connect() latency). tshark leaves the field out for a conversation whose SYN is the very
first packet of the file (its time, relative 0, reads as unset), so those are not compared.

The captures: the model's pcap of every catalogue scenario (written by our pcap writer but read by tshark's
dissector, not ours) and a real loopback capture.
"""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tcpwise.cli import main
from tcpwise.scenarios import catalogue

HERE = Path(__file__).parent
REAL = HERE / "data" / "lo-small.pcap"

Flow = tuple[tuple[str, int], tuple[str, int]]  # (source, destination)


def _need_tshark() -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (make test installs it)")


def tshark_flows(
    path: Path,
) -> tuple[dict[Flow, int], dict[Flow, int], dict[Flow, tuple[int, int]], dict[frozenset[Any], list[float]]]:
    """Per direction: packets, IP bytes, and the last (calculated window, scale factor) as tshark reads them;
    per 4-tuple, the initial RTT of each of its streams that has one, in stream order."""
    fields = ["ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport", "ip.len", "ipv6.plen"]
    fields += ["tcp.window_size", "tcp.window_size_scalefactor", "tcp.stream", "tcp.analysis.initial_rtt"]
    cmd = ["tshark", "-r", str(path), "-Y", "tcp", "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    pkts: dict[Flow, int] = collections.Counter()
    ipb: dict[Flow, int] = collections.Counter()
    win: dict[Flow, tuple[int, int]] = {}
    irtt: dict[int, tuple[frozenset[Any], float]] = {}
    for line in out.splitlines():
        f = line.split("\t")
        flow = ((f[0] or f[1], int(f[2])), (f[3] or f[4], int(f[5])))
        pkts[flow] += 1
        ipb[flow] += int(f[6]) if f[6] else int(f[7]) + 40  # IPv6: payload length + the fixed header
        win[flow] = (int(f[8]), int(f[9]) if f[9] else -1)  # -1: scale unknown, -2: no scaling
        if f[11]:
            irtt[int(f[10])] = (frozenset(flow), float(f[11]))
    rtts: dict[frozenset[Any], list[float]] = collections.defaultdict(list)
    for _stream, (pair, v) in sorted(irtt.items()):
        rtts[pair].append(v)
    return pkts, ipb, win, rtts


def trace_flows(
    path: Path, tmp: Path
) -> tuple[dict[Flow, int], dict[Flow, int], dict[Flow, Any], dict[frozenset[Any], list[float]]]:
    """The same sums from trace's JSON rows (several rows of one 4-tuple add up), each direction's last window
    of the last row that carried a packet in that direction, and per 4-tuple its rows' handshake RTTs."""
    out = tmp / (path.stem + ".json")
    assert main(["trace", str(path), "--format", "json", "-o", str(out)]) == 0
    pkts: dict[Flow, int] = collections.Counter()
    ipb: dict[Flow, int] = collections.Counter()
    win: dict[Flow, Any] = {}
    rtts: dict[frozenset[Any], list[float]] = collections.defaultdict(list)
    for r in json.loads(out.read_text())["connections"]:
        o, p = (r["orig_h"], r["orig_p"]), (r["resp_h"], r["resp_p"])
        if r["handshake"] and "rtt" in r["handshake"]:
            rtts[frozenset((o, p))].append(r["handshake"]["rtt"])
        for flow, side in (((o, p), r["orig"]), ((p, o), r["resp"])):
            pkts[flow] += side["pkts"]
            ipb[flow] += side["ip_bytes"]
            if side["pkts"]:
                win[flow] = (side["window_scaled"], side["window"], side["window_scale"])
    return pkts, ipb, win, rtts


def differences(path: Path, tmp: Path) -> list[str]:
    tp, tb, tw, tr = tshark_flows(path)
    mp, mb, mw, mr = trace_flows(path, tmp)
    out = []
    for pair, theirs in sorted(tr.items(), key=str):
        ours = mr.get(pair, [])
        # tshark's streams of a 4-tuple that have an iRTT are the last of trace's rows that have one (the first
        # stream of the file may lack it, see above).
        mine = ours[len(ours) - len(theirs) :] if len(ours) >= len(theirs) else None
        if mine is None or any(abs(a - b) > 1.5e-6 for a, b in zip(theirs, mine, strict=True)):
            out.append(f"{sorted(pair)}: handshake RTT tshark {theirs}, trace {ours}")
    for flow in sorted(set(tp) | set(mp)):
        if tp.get(flow, 0) != mp.get(flow, 0):
            out.append(f"{flow}: packets tshark {tp.get(flow, 0)}, trace {mp.get(flow, 0)}")
        if tb.get(flow, 0) != mb.get(flow, 0):
            out.append(f"{flow}: IP bytes tshark {tb.get(flow, 0)}, trace {mb.get(flow, 0)}")
        t = tw.get(flow)
        if t is not None and t[1] != -1 and flow in mw and t[0] != mw[flow][0]:
            out.append(f"{flow}: window tshark {t[0]} (scale factor {t[1]}), trace {mw[flow]}")
    return out


@pytest.fixture(scope="module")
def pcaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sim-pcaps")
    out = {}
    for sc in catalogue():
        path = d / f"{sc.id}.pcap"
        assert main(["sim", sc.id, "--format", "pcap", "-o", str(path)]) == 0
        out[sc.id] = path
    out["real:lo-small"] = REAL
    return out


def test_tshark_agrees_on_every_catalogue_pcap_and_a_real_capture(
    pcaps: dict[str, Path], tmp_path: Path
) -> None:
    _need_tshark()
    bad = {name: d for name, p in pcaps.items() if (d := differences(p, tmp_path))}
    assert bad == {}, json.dumps(bad, indent=1)[:3000]


def test_a_planted_window_bug_turns_the_tshark_check_red(
    pcaps: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test must be able to fail: forget the scale on a row that continues a connection (Zeek split it after
    the middlebox's silence) and tshark's calculated window disagrees."""
    _need_tshark()
    from tcpwise.trace import tracker

    real = tracker.Tracker._continues

    def forgetful(self: Any, c: Any, prev: Any, ds: int, fl: int, seq: int | None) -> None:
        real(self, c, prev, ds, fl, seq)
        c.o.wshift = c.r.wshift = None

    monkeypatch.setattr(tracker.Tracker, "_continues", forgetful)
    d = differences(pcaps["middlebox-idle-timeout"], tmp_path)
    assert any("window" in x for x in d), d


def test_a_planted_counting_bug_turns_the_tshark_check_red(
    pcaps: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """And one in the counting: IP bytes that leave out the IP header."""
    _need_tshark()
    from tcpwise.trace import output

    real = output._side_json

    def short(s: Any) -> str:
        text = real(s)
        return text.replace(f'"ip_bytes":{s.ipbytes},', f'"ip_bytes":{max(0, s.ipbytes - 20 * s.pkts)},', 1)

    monkeypatch.setattr(output, "_side_json", short)
    monkeypatch.setattr(output, "conn_json", output._conn_json_py)  # the native row writer has its own copy
    d = differences(pcaps["close"], tmp_path)
    assert any("IP bytes" in x for x in d), d


def test_a_planted_rtt_bug_turns_the_tshark_check_red(
    pcaps: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """And one in the handshake: an RTT measured from the first SYN, retries included (accept-queue-overflow's
    third client retried its SYN for 4 s)."""
    _need_tshark()
    from tcpwise.trace import tracker

    real = tracker.Tracker._states

    def from_first(self: Any, c: Any, *a: Any) -> None:
        real(self, c, *a)
        c.syn_last_t = c.syn_t

    monkeypatch.setattr(tracker.Tracker, "_states", from_first)
    d = differences(pcaps["accept-queue-overflow"], tmp_path)
    assert any("handshake RTT" in x for x in d), d

"""tshark judges trace's counting: packets and IP bytes per direction, and the window as users read it.

Wireshark's dissector is code we did not write. For every 4-tuple and direction in a capture, the packets
and IP bytes that trace's rows add up to must equal tshark's sums, even when Zeek's rules split one 4-tuple
into several rows. The last advertised window must equal tshark's calculated window (`tcp.window_size`, the
raw field shifted by the scale both SYNs negotiated) wherever tshark knows the scale.

Not compared: the handshake time. Wireshark's `tcp.analysis.initial_rtt` runs from the SYN that was answered;
trace's `syn_to_synack` runs from the first SYN, so with SYN retries it is the connect() latency, as Zeek's
duration is. The captures: the model's pcap of every catalogue scenario (written by our pcap writer but read
by tshark's dissector, not ours) and a real loopback capture.
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


def tshark_flows(path: Path) -> tuple[dict[Flow, int], dict[Flow, int], dict[Flow, tuple[int, int]]]:
    """Per direction: packets, IP bytes, and the last (calculated window, scale factor) as tshark reads them."""
    fields = ["ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport", "ip.len", "ipv6.plen"]
    fields += ["tcp.window_size", "tcp.window_size_scalefactor"]
    cmd = ["tshark", "-r", str(path), "-Y", "tcp", "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    pkts: dict[Flow, int] = collections.Counter()
    ipb: dict[Flow, int] = collections.Counter()
    win: dict[Flow, tuple[int, int]] = {}
    for line in out.splitlines():
        f = line.split("\t")
        flow = ((f[0] or f[1], int(f[2])), (f[3] or f[4], int(f[5])))
        pkts[flow] += 1
        ipb[flow] += int(f[6]) if f[6] else int(f[7]) + 40  # IPv6: payload length + the fixed header
        win[flow] = (int(f[8]), int(f[9]) if f[9] else -1)  # -1: scale unknown, -2: no scaling
    return pkts, ipb, win


def trace_flows(path: Path, tmp: Path) -> tuple[dict[Flow, int], dict[Flow, int], dict[Flow, Any]]:
    """The same sums from trace's JSON rows (several rows of one 4-tuple add up), and each direction's last
    window of the last row that carried a packet in that direction."""
    out = tmp / (path.stem + ".json")
    assert main(["trace", str(path), "--format", "json", "-o", str(out)]) == 0
    pkts: dict[Flow, int] = collections.Counter()
    ipb: dict[Flow, int] = collections.Counter()
    win: dict[Flow, Any] = {}
    for r in json.loads(out.read_text())["connections"]:
        o, p = (r["orig_h"], r["orig_p"]), (r["resp_h"], r["resp_p"])
        for flow, side in (((o, p), r["orig"]), ((p, o), r["resp"])):
            pkts[flow] += side["pkts"]
            ipb[flow] += side["ip_bytes"]
            if side["pkts"]:
                win[flow] = (side["window_scaled"], side["window"], side["window_scale"])
    return pkts, ipb, win


def differences(path: Path, tmp: Path) -> list[str]:
    tp, tb, tw = tshark_flows(path)
    mp, mb, mw = trace_flows(path, tmp)
    out = []
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
    d = differences(pcaps["close"], tmp_path)
    assert any("IP bytes" in x for x in d), d

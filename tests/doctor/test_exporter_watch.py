"""The exporter's tracepoint counters: they count what happened, and their label sets stay bounded."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from tcpwise.doctor import exporter

pytestmark = pytest.mark.kernel


def _series(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, v = line.rpartition(" ")
            out[key] = float(v)
    return out


def test_watch_counters_count_transitions_with_bounded_labels() -> None:
    from prometheus_client import generate_latest
    from prometheus_client.core import CollectorRegistry

    col = exporter.TcpCollector(proc_interval=60)
    col.start_background()
    stop = threading.Event()
    th = exporter.start_watch(col, peers=3, stop=stop)
    if th is None:
        pytest.skip(f"no tracepoints: {col.watch_reason}")
    try:
        time.sleep(0.3)
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(64)
        for i in range(20):  # 20 connections from 20 loopback addresses: more peers than labels
            c = socket.socket()
            c.bind((f"127.0.{i + 1}.9", 0))
            c.connect(ls.getsockname())
            s, _ = ls.accept()
            s.close()
            c.close()
        ls.close()
        time.sleep(0.5)
        reg = CollectorRegistry()
        reg.register(col)
        text = generate_latest(reg).decode()
    finally:
        stop.set()
        th.join(10)
        col.stop()
    assert _series(text, "tcpwise_watch_up")['tcpwise_watch_up{reason=""}'] == 1.0
    tr = _series(text, "tcpwise_watch_transitions_total")
    assert tr['tcpwise_watch_transitions_total{from="SYN_SENT",to="ESTABLISHED"}'] >= 20
    assert tr['tcpwise_watch_transitions_total{from="CLOSE_WAIT",to="LAST_ACK"}'] >= 20
    peers = _series(text, "tcpwise_watch_peer_connections_total")
    assert len(peers) <= 3 + 1 and 'tcpwise_watch_peer_connections_total{peer="other"}' in peers
    assert all(re.search(r'from="[A-Z_0-9]+",to="[A-Z_0-9]+"', k) for k in tr)  # states, never ports or pids
    hist = _series(text, "tcpwise_watch_connection_duration_seconds_count")
    assert sum(hist.values()) >= 40  # both ends of the 20 connections ended

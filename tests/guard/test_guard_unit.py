"""Sans-IO parts of the guard: address aggregation, admission counting, token bucket, deadlines, heartbeat."""

from __future__ import annotations

import warnings

import pytest

from tcpwise.guard import (
    CloseReason,
    HeartbeatMismatch,
    Keepalive,
    Limits,
    Timeouts,
    check_heartbeat,
    source_key,
)
from tcpwise.guard.heartbeat import HeartbeatWarning
from tcpwise.guard.limits import Admission
from tcpwise.guard.timeouts import ConnClock, next_deadline
from tcpwise.sockets.metrics import Metrics


def test_guard_source_key_ipv6_prefix_and_mapped() -> None:
    assert source_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert source_key("2001:db8:1:2::1", ipv6_prefix=48) == "2001:db8:1::/48"
    assert source_key("2001:db8::1", ipv6_prefix=128) == "2001:db8::1"
    assert source_key("::ffff:127.0.0.2") == "127.0.0.2"
    assert source_key("10.1.2.3", ipv4_prefix=24) == "10.1.2.0/24"
    assert source_key("fe80::1%eth0") == "fe80::/64"
    assert source_key("/tmp/sock") == "/tmp/sock"


def test_guard_admission_exact_counts() -> None:
    a = Admission(Limits(max_connections=3, max_per_ip=2))
    assert a.admit("127.0.0.2", 0)[1] is None
    assert a.admit("127.0.0.2", 0)[1] is None
    assert a.admit("127.0.0.2", 0)[1] is CloseReason.REFUSED_IP_LIMIT
    assert a.admit("127.0.0.3", 0)[1] is None
    assert a.admit("127.0.0.4", 0)[1] is CloseReason.REFUSED_GLOBAL_LIMIT
    assert a.active == 3 and a.per_key == {"127.0.0.2": 2, "127.0.0.3": 1}
    a.release("127.0.0.2")
    assert a.admit("127.0.0.2", 0)[1] is None
    for k in ("127.0.0.2", "127.0.0.2", "127.0.0.3"):
        a.release(k)
    assert a.active == 0 and a.per_key == {}
    with pytest.raises(RuntimeError):
        a.release("127.0.0.3")


def test_guard_admission_ipv6_hosts_share_a_slot() -> None:
    a = Admission(Limits(max_per_ip=2))
    assert a.admit("2001:db8::1", 0)[1] is None
    assert a.admit("2001:db8::2", 0)[1] is None
    assert a.admit("2001:db8::ffff", 0)[1] is CloseReason.REFUSED_IP_LIMIT
    assert a.admit("2001:db8:0:1::1", 0)[1] is None  # another /64


def test_guard_rate_limit_token_bucket() -> None:
    a = Admission(Limits(accept_rate=2.0, accept_burst=3))
    got = [a.admit("127.0.0.9", 0.0)[1] for _ in range(5)]
    assert got == [None, None, None, CloseReason.REFUSED_RATE, CloseReason.REFUSED_RATE]
    assert a.admit("127.0.0.9", 0.4)[1] is CloseReason.REFUSED_RATE  # 0.8 token
    assert a.admit("127.0.0.9", 0.5)[1] is None  # 1.0 token after 0.5 s at 2/s
    assert a.admit("127.0.0.8", 0.5)[1] is None  # other sources have their own bucket


def test_guard_next_deadline() -> None:
    t = Timeouts(first_byte=2, idle=10, write=3, lifetime=100)
    c = ConnClock(accepted=50.0)
    assert next_deadline(t, c) == (52.0, CloseReason.FIRST_BYTE_TIMEOUT)
    c.last_read = 51.0
    assert next_deadline(t, c) == (61.0, CloseReason.IDLE_TIMEOUT)
    c.write_paused_since = 55.0
    assert next_deadline(t, c) == (58.0, CloseReason.WRITE_TIMEOUT)
    c.last_read, c.write_paused_since = 145.0, None
    assert next_deadline(t, c) == (150.0, CloseReason.LIFETIME)
    assert next_deadline(Timeouts(idle=5), ConnClock(accepted=1.0)) == (6.0, CloseReason.IDLE_TIMEOUT)
    assert next_deadline(Timeouts(), ConnClock(accepted=1.0)) is None
    with pytest.raises(ValueError):
        Timeouts(idle=0)


def test_guard_heartbeat_asymmetry_is_named() -> None:
    with pytest.raises(HeartbeatMismatch, match=r"30 s >= server idle timeout 10 s.*CLOSE_WAIT.*RST"):
        check_heartbeat(30, 10)
    with pytest.warns(HeartbeatWarning, match="no heartbeat is lost"):
        check_heartbeat(6, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_heartbeat(5, 10).startswith("ok")


def test_guard_keepalive_detection_time() -> None:
    assert Keepalive(idle=2, interval=1, count=3, user_timeout=None).detection_time() == 5
    assert Keepalive(idle=2, interval=1, count=10, user_timeout=2).detection_time() == 4
    assert Keepalive(enabled=False).detection_time() is None


def test_guard_metrics_snapshot_and_prometheus() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    m = Metrics("tcpwise_guard_t")
    closes = m.counter("closes_total", "closes", "reason")
    closes["idle_timeout"] += 2
    m.gauge("active", "open", lambda: 7.0)
    assert m.snapshot() == {"closes_total": {"idle_timeout": 2}, "active": 7.0}
    reg = prometheus_client.CollectorRegistry()
    m.register_prometheus(reg)
    assert reg.get_sample_value("tcpwise_guard_t_closes_total", {"reason": "idle_timeout"}) == 2
    assert reg.get_sample_value("tcpwise_guard_t_active") == 7.0

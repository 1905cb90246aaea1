"""Sans-IO parts of the guard: address aggregation, admission counting, token bucket, deadlines (request and
minimum rate on client time), eviction ranking, the log limiter, heartbeat arithmetic. The last test plants a
bug in each and checks that the assertions turn red."""

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
from tcpwise.guard.evict import EvictionIndex
from tcpwise.guard.heartbeat import HeartbeatWarning
from tcpwise.guard.limits import Admission
from tcpwise.guard.timeouts import ConnClock, below_min_rate, next_deadline
from tcpwise.sockets.logfmt import LogLimiter
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


def test_guard_request_and_min_rate_deadlines_count_client_time_only() -> None:
    t = Timeouts(idle=100, request=10, min_rate=100, min_rate_grace=2)
    c = ConnClock(accepted=0.0)
    c.start_wait(0.0)
    assert next_deadline(t, c) == (100.0, CloseReason.IDLE_TIMEOUT)  # no request yet: only idle
    c.last_read = 1.0
    c.start_request(1.0)
    c.request_bytes = 50
    # waiting since before the request: client time counts from its first byte; 2 + 50/100 = 2.5 s
    assert next_deadline(t, c) == (3.5, CloseReason.MIN_RATE)
    c.end_wait(2.0)  # the handler got its bytes and computes: the clocks stop
    assert c.request_waited == 1.0
    assert next_deadline(t, c) == (101.0, CloseReason.IDLE_TIMEOUT)
    c.start_wait(30.0)  # waiting again 28 s later: 1 s of client time already used
    assert next_deadline(t, c) == (31.5, CloseReason.MIN_RATE)
    c.request_bytes = 5000  # a fast upload: the request deadline (10 s of client time) comes first
    assert next_deadline(t, c) == (39.0, CloseReason.REQUEST_TIMEOUT)
    assert not below_min_rate(t, c, 31.0)
    c.request_bytes = 100
    assert below_min_rate(t, c, 31.5)  # 100 bytes in 2.5 s of client time < 100 B/s
    c.answer()
    assert next_deadline(t, c) == (101.0, CloseReason.IDLE_TIMEOUT) and c.answered == 1
    with pytest.raises(ValueError):
        Timeouts(min_rate=float("nan"))
    with pytest.raises(ValueError):
        Timeouts(request=float("inf"))


def _pick(index: EvictionIndex[str], held: dict[str, int], newcomer: str, now: float) -> str | None:
    return index.pick(held, newcomer, now, lambda item, _now: not item.startswith("busy"), 1.0)


def test_guard_eviction_picks_oldest_candidate_of_heaviest_source() -> None:
    ix: EvictionIndex[str] = EvictionIndex(rank_ttl=0.0)
    for i, (key, item) in enumerate(
        [("A", "a1"), ("A", "a2"), ("A", "a3"), ("B", "b1"), ("B", "busy-b2"), ("C", "c1")]
    ):
        ix.add(key, item, float(i))
    held = {"A": 3, "B": 2, "C": 1, "L": 0}
    assert _pick(ix, held, "L", 10.0) == "a1"  # heaviest source, oldest first
    assert _pick(ix, held, "A", 10.0) is None  # the newcomer's own source is the heaviest: refuse it
    ix.discard("A", "a1")
    ix.discard("A", "a2")
    ix.discard("A", "a3")
    held["A"] = 0
    assert _pick(ix, held, "L", 10.0) == "b1"
    ix.discard("B", "b1")
    held["B"] = 1  # only busy-b2 left in B: not evictable
    assert _pick(ix, held, "B", 10.0) is None  # B already holds one: no churn between equal sources
    assert _pick(ix, held, "L", 10.0) == "c1"  # a new source against a single old candidate: allowed
    assert _pick(ix, held, "L", 5.5) is None  # ... but not when it is younger than min_age
    ix.add("C", "c1", 9.0)  # re-added: moves to the back with a new age
    assert _pick(ix, held, "L", 9.5) is None
    assert len(ix) == 2


def test_guard_admission_eviction_hook_and_rate_token_not_wasted() -> None:
    a = Admission(Limits(max_connections=2, accept_rate=1.0, accept_burst=2))
    assert a.admit("127.0.0.2", 0)[1] is None
    assert a.admit("127.0.0.2", 0)[1] is None
    assert a.admit("127.0.0.3", 0, lambda key, now: False)[1] is CloseReason.REFUSED_GLOBAL_LIMIT

    # the refused newcomer spent no token: once room is made it is admitted at the same instant
    def make_room(key: str, now: float) -> bool:
        a.release("127.0.0.2")
        return True

    assert a.admit("127.0.0.3", 0, make_room)[1] is None
    assert a.per_key == {"127.0.0.2": 1, "127.0.0.3": 1}
    with pytest.raises(ValueError):
        Limits(accept_rate=float("inf"))


def test_guard_log_limiter_bursts_then_rates_and_reports_suppressed() -> None:
    lim = LogLimiter(rate=1.0, burst=3)
    got = [lim.allow("refuse", 0.0) for _ in range(10)]
    assert got == [0, 0, 0] + [None] * 7
    assert lim.suppressed() == {"refuse": 7}
    assert lim.allow("refuse", 0.5) is None  # half a token
    assert lim.allow("refuse", 1.0) == 8  # one token after 1 s: the record says 8 were dropped
    assert lim.allow("evict", 1.0) == 0  # kinds are limited separately
    with pytest.raises(ValueError):
        LogLimiter(rate=0)


def test_guard_unit_checks_turn_red_on_planted_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcpwise.guard import timeouts as timeouts_mod

    with monkeypatch.context() as m:  # client time that ignores the waits that ended
        m.setattr(timeouts_mod.ConnClock, "end_wait", lambda self, now: setattr(self, "waiting", False))
        with pytest.raises(AssertionError):
            test_guard_request_and_min_rate_deadlines_count_client_time_only()
    with monkeypatch.context() as m:  # newest candidate first
        orig_add = EvictionIndex.add

        def add_front(self: EvictionIndex[str], key: str, item: str, since: float) -> None:
            orig_add(self, key, item, since)
            d = self._by_key[key]
            self._by_key[key] = {item: since, **{k: v for k, v in d.items() if k != item}}

        m.setattr(EvictionIndex, "add", add_front)
        with pytest.raises(AssertionError):
            test_guard_eviction_picks_oldest_candidate_of_heaviest_source()
    with monkeypatch.context() as m:  # a limiter that never says how much it dropped
        orig_allow = LogLimiter.allow
        m.setattr(
            LogLimiter, "allow", lambda self, k, now: 0 if orig_allow(self, k, now) is not None else None
        )
        with pytest.raises(AssertionError):
            test_guard_log_limiter_bursts_then_rates_and_reports_suppressed()
    with monkeypatch.context() as m:  # per-IP limit checked with > instead of >=

        def loose(self: Admission, host: str, now: float, make_room: object = None) -> object:
            key = self.key(host)
            if self.limits.max_per_ip is not None and self.per_key.get(key, 0) > self.limits.max_per_ip:
                return key, CloseReason.REFUSED_IP_LIMIT
            self.active += 1
            self.per_key[key] = self.per_key.get(key, 0) + 1
            return key, None

        m.setattr(Admission, "admit", loose)
        with pytest.raises(AssertionError):
            test_guard_admission_exact_counts()

"""A run is a pure function of its scenario, parameters and seed — not of where Python put the objects.

Every scenario runs twice in fresh interpreters whose memory layout differs (a different hash seed, and a
different amount of garbage allocated and kept before the run, so every object lands at another address); the
JSON must be byte-identical. Timer ties in the stack and actor bookkeeping were once ordered by ``id()``; this is
the test that would have caught it. The planted-bug twin puts an ``id()`` tie-breaker back and shows the test
turns red.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcpwise.scenarios import catalogue

ROOT = Path(__file__).resolve().parents[2]

# In a child: allocate N objects of assorted sizes (kept alive), then run every scenario and print a digest each.
CHILD = r"""
import hashlib, random, sys
n = int(sys.argv[1])
# Perturb the layout: objects of assorted sizes kept alive, and endpoint-sized blocks of which a random half is
# freed in shuffled order — the allocator's pools stay in use with holes, so later endpoints get addresses in an
# order unrelated to their creation order (freeing all of them would just return whole pools).
from tcpwise.endpoint.tcb import Endpoint
Same = type("Same", (), {{"__slots__": tuple(f"s{{i}}" for i in range(len(Endpoint.__slots__)))}})
keep = [bytearray(i % 97 + 1) for i in range(n)]
holes = [Same() for i in range(n // 10)]
random.Random(n).shuffle(holes)
keep_half = holes[: len(holes) // 2]
del holes[: len(holes) // 2]
while holes:
    holes.pop()
{plant}
from tcpwise.scenarios import run_scenario
from tcpwise.script import Connect, HostSpec, LinkSpec, Partition, Script
from tcpwise.sim.runner import run_script
for sid in sys.argv[2:]:
    if sid == "ties":
        # Eight connections opened at the same instant towards a partitioned peer: their SYN retransmission
        # timers expire at exactly the same times, so only the tie-breaker orders them.
        steps = (Partition(0.0, "A", "B"),) + tuple(Connect(0.0, "A", "B", 80, sock=f"c{{i}}") for i in range(8))
        hosts = (HostSpec("A", "198.18.0.1", "client"), HostSpec("B", "198.18.1.1", "server"))
        _, run = run_script(Script(hosts, steps, LinkSpec(delay=0.05), duration=8.0), 1)
    else:
        run = run_scenario(sid)
    print(sid, hashlib.sha256(run.to_json().encode()).hexdigest(), flush=True)
"""

# The bug this test exists for: order equal deadlines by memory address again.
PLANT_ID_TIES = r"""
import tcpwise.endpoint.stack as st
_orig = st.TcpStack._touch
def _touch(self, ep):
    ep.serial = id(ep)  # serial by address: heap ties (and dirty order) follow the memory layout
    _orig(self, ep)
st.TcpStack._touch = _touch
"""

# Scenarios with many simultaneous deadlines (many connections) are where address order would show.
IDS = [sc.id for sc in catalogue() if sc.id not in ("keepalive-race",)] + ["ties"]


def _digests(junk: int, hashseed: str, ids: list[str], plant: str = "") -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(
        [sys.executable, "-c", CHILD.format(plant=plant), str(junk), *ids],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=True,
    )
    return dict(line.split() for line in res.stdout.splitlines())


@pytest.mark.slow
def test_runs_are_byte_identical_whatever_the_memory_layout() -> None:
    a = _digests(0, "0", IDS)
    b = _digests(50_000, "12345", IDS)
    assert a.keys() == set(IDS)
    assert {k for k in IDS if a[k] != b[k]} == set()


def test_an_id_tie_breaker_is_caught() -> None:
    ids = ["ties"]
    runs = [_digests(n, str(n), ids, PLANT_ID_TIES) for n in (0, 3_333, 77_777)]
    differs = {sid for sid in ids if len({r[sid] for r in runs}) > 1}
    assert differs, "address-ordered ties went unnoticed: the determinism test could not fail"


def test_same_seed_same_digest_in_process() -> None:
    from tcpwise.scenarios import run_scenario

    one = hashlib.sha256(run_scenario("lost-last-ack").to_json().encode()).hexdigest()
    two = hashlib.sha256(run_scenario("lost-last-ack").to_json().encode()).hexdigest()
    assert one == two

"""Lab state-polling speed: one sock_diag dump of a lab host namespace, private vs shared TCP hash table, and
against ``ss -tan`` run in the same namespace (the reference tool). Bounded: ~2 s per measurement. Root only.

Why it matters: the lab sees a state only if it lasts longer than one poll; the dump must stay in the
microseconds even when the machine holds tens of thousands of sockets in other namespaces.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time


def _rate(fn, seconds: float = 1.0) -> float:  # type: ignore[no-untyped-def]
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn()
        n += 1
    return n / seconds


def main() -> int:
    if os.geteuid() != 0:
        print("bench_lab: needs root (network namespaces); skipped")
        return 0
    from tcpwise.lab.netns import Topology, in_netns
    from tcpwise.linux.netlink import dump, open_diag_socket

    others = int(open("/proc/net/sockstat").read().split("TCP: inuse ")[1].split()[0])
    print(
        f"sockets in the root namespace right now: {others} (other namespaces share the default hash table)"
    )
    rates: dict[bool | str, float] = {}
    for private in (True, False):
        topo = Topology(delay_line=False)
        try:
            topo.create()
            if not private:
                # Same lab, but host A re-created in the shared table (child of the root namespace).
                topo.ehash_private = False
                topo.reboot_host("A")
            with in_netns(topo.hosts["A"].ns):
                s = open_diag_socket()
            rates[private] = _rate(lambda s=s: dump((socket.AF_INET,), sock=s, ext=0))
            s.close()
            if private:
                ns = topo.hosts["A"].ns
                t = time.perf_counter()
                runs = 0
                while time.perf_counter() - t < 1.0 and runs < 50:
                    subprocess.run(["ip", "netns", "exec", ns, "ss", "-tan"], capture_output=True, check=True)
                    runs += 1
                rates["ss"] = runs / (time.perf_counter() - t)
        finally:
            topo.destroy()
    print(f"sock_diag dumps/s, private hash table : {rates[True]:10.0f}")
    print(f"sock_diag dumps/s, shared hash table  : {rates[False]:10.0f}")
    print(f"`ip netns exec NS ss -tan` runs/s     : {rates['ss']:10.1f}")
    print(
        f"ratio private/shared: {rates[True] / max(rates[False], 1e-9):.1f}x; "
        f"private/ss: {rates[True] / max(rates['ss'], 1e-9):.0f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

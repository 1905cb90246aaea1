"""The user-space half of the router R: a delay line between R's kernel and the veth it forwards to.

Theory of operation
-------------------
R's kernel forwards every packet between A and B (so nftables faults in its ``forward`` hook apply), but its
policy routes (:mod:`tcpwise.lab.netns`) send the forwarded packet into the TUN device ``tw0`` instead of out a
veth. This module reads those IP packets from the TUN file descriptor, holds each one for the link's one-way
delay (a heap ordered by due time, FIFO among equals, so no reordering unless asked for), and then transmits it
on the veth of the destination host with an ``AF_PACKET``/``SOCK_DGRAM`` socket, addressed to that host's MAC
(packet(7): the kernel builds the Ethernet header from ``sll_addr`` and ``sll_protocol``).

Why: this kernel has neither ``sch_netem`` nor nft ``queue`` (NFQUEUE), and without a delay the handshake
completes in tens of microseconds, far below what sock_diag polling can see; with the model's 50 ms the lab
observes every intermediate state (SYN_SENT, LAST_ACK, CLOSING, ...). Jitter, reordering and duplication are
applied here with a seeded RNG, with the simulator's distributions; loss is nftables' job (numgen), partitions
and counted drops too.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Forwarder", "open_tun", "Hold"]

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD


def open_tun(name: str) -> int:
    """Attach to the existing (persistent) TUN device ``name`` of the *current* namespace; returns the fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    os.set_blocking(fd, False)
    return fd


@dataclass(order=True)
class _Held:
    due: float
    seq: int
    packet: bytes = field(compare=False)
    ifname: str = field(compare=False)
    mac: bytes = field(compare=False)
    proto: int = field(compare=False)


@dataclass
class Hold:
    """A hold-back rule (the model's :class:`tcpwise.sim.middlebox.HoldBack`): the first ``count`` packets that
    ``match`` (the raw IP packet) are kept in the line until the absolute monotonic time ``until`` — an old
    duplicate wandering in the network, delivered long after its siblings."""

    match: Callable[[bytes], bool]
    until: float
    count: int = 1
    held: list[float] = field(default_factory=list)  # when each held packet arrived


@dataclass
class Route:
    ifname: str  # R's interface toward the host
    mac: str  # the host's MAC


class Forwarder:
    """Create inside R's namespace (the TUN attach and the packet socket bind to the current namespace)."""

    def __init__(
        self,
        tun_name: str,
        routes: dict[str, Route],
        delay: float,
        jitter: float = 0.0,
        duplicate: float = 0.0,
        seed: int = 1,
        reorder: float = 0.0,
    ) -> None:
        self.tun = open_tun(tun_name)
        self.out = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        self.routes = routes  # destination address -> Route
        self.delay = delay
        self.jitter = jitter
        self.duplicate = duplicate
        self.reorder = reorder
        self.rng = random.Random(seed)
        self.heap: list[_Held] = []
        self.seq = 0
        self.forwarded = 0
        self.unroutable = 0
        self.late_max = (
            0.0  # worst release lateness (s): how far the delay line fell behind on a busy machine
        )
        self.late_sum = 0.0
        self.holds: list[Hold] = []

    def fileno(self) -> int:
        return self.tun

    def read(self, now: float) -> None:
        while True:
            try:
                pkt = os.read(self.tun, 65535)
            except BlockingIOError:
                return
            if not pkt:
                return
            version = pkt[0] >> 4
            if version == 4 and len(pkt) >= 20:
                dst = socket.inet_ntop(socket.AF_INET, pkt[16:20])
                proto = ETH_P_IP
            elif version == 6 and len(pkt) >= 40:
                dst = socket.inet_ntop(socket.AF_INET6, pkt[24:40])
                proto = ETH_P_IPV6
            else:
                continue
            route = self.routes.get(dst)
            if route is None:  # never leave the lab: anything not for A or B is dropped here
                self.unroutable += 1
                continue
            # The model's link impairments (tcpwise.sim.network), same distributions: jitter adds U[0, jitter);
            # a reordered packet is held back by U[0, delay) more, so later ones overtake it; a duplicate
            # arrives U[0, delay) after the original. Without either, the line is FIFO.
            d = self.delay
            if self.jitter:
                d += self.rng.uniform(0.0, self.jitter)
            if self.reorder and self.rng.random() < self.reorder:
                d += self.rng.uniform(0.0, max(self.delay, 0.001))
            due = [now + d]
            for h in self.holds:
                if len(h.held) < h.count and h.match(pkt):
                    h.held.append(now)
                    due = [max(due[0], h.until)]
                    break
            if self.duplicate and self.rng.random() < self.duplicate:
                due.append(due[0] + self.rng.uniform(0.0, max(self.delay, 0.001)))
            mac = bytes.fromhex(route.mac.replace(":", ""))
            for t in due:
                self.seq += 1
                heapq.heappush(self.heap, _Held(t, self.seq, pkt, route.ifname, mac, proto))

    def inject(self, packet: bytes, now: float) -> bool:
        """Put a crafted IP packet on the line toward its destination, delivered at ``now`` (no delay): a
        segment no host sent, as an attacker or a confused middlebox would (the capture sees only its
        delivery). False when the destination is not a lab host."""
        version = packet[0] >> 4
        fam = socket.AF_INET if version == 4 else socket.AF_INET6
        dst = socket.inet_ntop(fam, packet[16:20] if version == 4 else packet[24:40])
        route = self.routes.get(dst)
        if route is None:
            return False
        mac = bytes.fromhex(route.mac.replace(":", ""))
        self.seq += 1
        heapq.heappush(
            self.heap,
            _Held(now, self.seq, packet, route.ifname, mac, ETH_P_IP if version == 4 else ETH_P_IPV6),
        )
        return True

    def next_due(self) -> float | None:
        return self.heap[0].due if self.heap else None

    def release(self, now: float) -> None:
        while self.heap and self.heap[0].due <= now:
            h = heapq.heappop(self.heap)
            late = now - h.due
            self.late_sum += late
            if late > self.late_max:
                self.late_max = late
            try:
                self.out.sendto(h.packet, (h.ifname, h.proto, 0, 0, h.mac))
                self.forwarded += 1
            except OSError:
                # The interface is gone (a Reboot step is re-creating it): the packet is lost, as on a real link.
                pass

    def close(self) -> None:
        os.close(self.tun)
        self.out.close()

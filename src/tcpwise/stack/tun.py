"""A TUN device: raw IP packets between the kernel and this process (Linux ``/dev/net/tun``, IFF_TUN).

Theory of operation
-------------------
``open("/dev/net/tun")`` plus the ``TUNSETIFF`` ioctl with ``IFF_TUN | IFF_NO_PI`` attaches the file descriptor
to a layer-3 interface of the *current* network namespace (the namespace of the calling thread: see
``tcpwise.lab.netns.in_netns`` for creating one inside another namespace). Each ``read`` returns one IP packet
the kernel routed to the interface; each ``write`` hands one IP packet to the kernel as if it had arrived on it
(Documentation/networking/tuntap.rst). Without ``IFF_VNET_HDR`` the kernel segments GSO packets and completes
checksums before they reach us, so what we read is always ordinary, checksummed IP.

The device is *not* made persistent (no ``TUNSETPERSIST``): it exists exactly as long as the file descriptor,
so the kernel removes it when this process exits, however it exits — SIGKILL included. Configuring the kernel
side (addresses, routes, up) is the caller's job (``ip`` in the namespace).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

__all__ = ["TunDevice", "TUNSETIFF", "IFF_TUN", "IFF_NO_PI", "IFNAMSIZ"]

TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16  # include/uapi/linux/if.h: 15 characters and the NUL
_MAX_PACKET = 65535


class TunDevice:
    """A non-persistent TUN interface owned by this process. Create it inside the namespace it belongs to."""

    __slots__ = ("name", "fd", "rx_packets", "tx_packets", "tx_dropped")

    def __init__(self, name: str) -> None:
        if not name or len(name) >= IFNAMSIZ or "/" in name or " " in name:
            raise ValueError(f"bad interface name {name!r} (1-15 characters, no '/' or space)")
        self.name = name
        self.rx_packets = 0
        self.tx_packets = 0
        self.tx_dropped = 0
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError:
            os.close(fd)
            raise
        os.set_blocking(fd, False)
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def read_batch(self, limit: int = 256) -> list[bytes]:
        """Up to ``limit`` packets that are waiting (never blocks; [] when none)."""
        out: list[bytes] = []
        fd = self.fd
        try:
            for _ in range(limit):
                out.append(os.read(fd, _MAX_PACKET))
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EBADF):
                raise
        self.rx_packets += len(out)
        return out

    def write(self, packet: bytes) -> bool:
        """Hand one IP packet to the kernel. False when the kernel refused it (e.g. the interface is down):
        the packet is lost, as it would be on a wire."""
        try:
            os.write(self.fd, packet)
        except OSError:
            self.tx_dropped += 1
            return False
        self.tx_packets += 1
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

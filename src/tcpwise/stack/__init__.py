"""tcpwise.stack: the sans-IO endpoint as a real user-space TCP/IP host (TUN device, real clock, asyncio streams).

    from tcpwise.stack import Host, TunDevice, TunLink, open_connection, start_server
    host = Host(TunLink(TunDevice("tw0")), ["198.18.64.1", "fd00:64::1"])   # inside the device's namespace
    host.start()                                                               # in the running loop
    reader, writer = await open_connection(host, "198.18.64.254", 8080)

See docs/stack.md for what it implements, what it does not (SACK, PMTU discovery, ...) and how Linux copes.
"""

from tcpwise.stack.host import EndpointWatcher, Hook, Host, HostStats
from tcpwise.stack.link import Link, MemoryLink, TunLink, memory_pair
from tcpwise.stack.streams import StackServer, StackTransport, open_connection, os_error, start_server
from tcpwise.stack.tun import TunDevice

__all__ = [
    "Host",
    "HostStats",
    "Hook",
    "EndpointWatcher",
    "Link",
    "TunLink",
    "MemoryLink",
    "memory_pair",
    "TunDevice",
    "StackTransport",
    "StackServer",
    "open_connection",
    "start_server",
    "os_error",
]

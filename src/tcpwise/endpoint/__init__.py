"""tcpwise.endpoint: a sans-IO TCP endpoint (RFC 9293) with a listener and a host stack. No sockets, clocks,
threads or randomness inside: time comes in as ``now``, secrets and ISNs are supplied by the caller."""

from tcpwise.endpoint.config import LINUX, RFC, SYSCTL_OF, EndpointConfig
from tcpwise.endpoint.events import (
    Closed,
    Connected,
    ConnectionError,
    DataReceived,
    EndOfStream,
    EndpointEvent,
    StateChanged,
    TimerFired,
)
from tcpwise.endpoint.isn import isn_rfc6528
from tcpwise.endpoint.listener import Listener
from tcpwise.endpoint.rto import RttEstimator, linux_retrans_timeout
from tcpwise.endpoint.stack import ConnectError, TcpStack
from tcpwise.endpoint.tcb import Endpoint, LocalProtocolError
from tcpwise.endpoint.transitions import TRANSITIONS

__all__ = [
    "EndpointConfig",
    "LINUX",
    "RFC",
    "SYSCTL_OF",
    "Endpoint",
    "LocalProtocolError",
    "Listener",
    "TcpStack",
    "ConnectError",
    "RttEstimator",
    "linux_retrans_timeout",
    "isn_rfc6528",
    "TRANSITIONS",
    "EndpointEvent",
    "StateChanged",
    "Connected",
    "DataReceived",
    "EndOfStream",
    "ConnectionError",
    "TimerFired",
    "Closed",
]

"""The one wire codec of tcpwise: TCP segments, IPv4/IPv6 headers, checksums, sequence arithmetic, pcap writing.

Sans-IO: nothing here opens a socket or reads a clock. Layers, bottom up:

* :mod:`~tcpwise.wire.seq` — 32-bit sequence-number arithmetic (RFC 9293 §3.4, RFC 1982);
* :mod:`~tcpwise.wire.segment` — :class:`TcpSegment` and its option values (the "Repr");
* :mod:`~tcpwise.wire.checksum` — RFC 1071 Internet checksum, pseudo-headers;
* :mod:`~tcpwise.wire.tcp` — ``parse_tcp`` / ``emit_tcp``;
* :mod:`~tcpwise.wire.ip` — ``parse_ip`` / ``emit_ip`` / ``build_packet`` / ``parse_packet``;
* :mod:`~tcpwise.wire.pcap` — classic pcap writer.

Every parser raises only :class:`WireError` on bad bytes.
"""

from tcpwise.wire.checksum import (
    internet_checksum,
    ones_sum,
    pseudo_header_sum,
    tcp_checksum,
    verify_tcp_checksum,
)
from tcpwise.wire.errors import WireError
from tcpwise.wire.ip import (
    IPPROTO_TCP,
    IpHeader,
    IPv4Header,
    IPv6Header,
    addr_str,
    build_packet,
    emit_ip,
    parse_ip,
    parse_packet,
)
from tcpwise.wire.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    PcapWriter,
    ethernet_frame,
    write_pcap,
)
from tcpwise.wire.segment import (
    EolOption,
    MssOption,
    NopOption,
    SackOption,
    SackPermittedOption,
    TcpOption,
    TcpSegment,
    TimestampsOption,
    UnknownOption,
    WindowScaleOption,
)
from tcpwise.wire.seq import (
    MASK,
    MOD,
    seq_add,
    seq_between,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_le,
    seq_lt,
    seq_max,
)
from tcpwise.wire.tcp import addr_bytes, emit_tcp, parse_tcp, tcp_header_len

__all__ = [
    # errors
    "WireError",
    # segment
    "TcpOption",
    "EolOption",
    "NopOption",
    "MssOption",
    "WindowScaleOption",
    "SackPermittedOption",
    "SackOption",
    "TimestampsOption",
    "UnknownOption",
    "TcpSegment",
    # seq
    "MOD",
    "MASK",
    "seq_add",
    "seq_diff",
    "seq_lt",
    "seq_le",
    "seq_gt",
    "seq_ge",
    "seq_between",
    "seq_max",
    # checksum
    "internet_checksum",
    "ones_sum",
    "pseudo_header_sum",
    "tcp_checksum",
    "verify_tcp_checksum",
    # tcp
    "parse_tcp",
    "emit_tcp",
    "tcp_header_len",
    "addr_bytes",
    # ip
    "IPPROTO_TCP",
    "IpHeader",
    "IPv4Header",
    "IPv6Header",
    "parse_ip",
    "emit_ip",
    "build_packet",
    "parse_packet",
    "addr_str",
    # pcap
    "PcapWriter",
    "write_pcap",
    "ethernet_frame",
    "LINKTYPE_RAW",
    "LINKTYPE_ETHERNET",
]

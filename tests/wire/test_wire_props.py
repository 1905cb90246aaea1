"""Hypothesis properties: emit -> parse round trips, and arbitrary bytes only ever raise WireError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpwise.wire import (
    EolOption,
    IPv4Header,
    MssOption,
    NopOption,
    SackOption,
    SackPermittedOption,
    TcpOption,
    TcpSegment,
    TimestampsOption,
    UnknownOption,
    WindowScaleOption,
    WireError,
    build_packet,
    emit_ip,
    emit_tcp,
    parse_ip,
    parse_packet,
    parse_tcp,
    tcp_header_len,
)
from tcpwise.wire.tcp import _option_bytes, emit_options

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
KNOWN_KINDS = {0, 1, 2, 3, 4, 5, 8}

option = st.one_of(
    st.just(NopOption()),
    u16.map(MssOption),
    st.integers(0, 255).map(WindowScaleOption),
    st.just(SackPermittedOption()),
    st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(lambda b: SackOption(tuple(b))),
    st.builds(TimestampsOption, u32, u32),
    st.builds(
        UnknownOption,
        st.integers(2, 255).filter(lambda k: k not in KNOWN_KINDS),
        st.binary(max_size=12),
    ),
)


def _fits(opts: tuple[TcpOption, ...]) -> bool:
    try:
        emit_options(opts)
    except WireError:
        return False
    return True


options = (
    st.tuples(st.lists(option, max_size=8), st.booleans())
    .map(
        lambda t: (
            tuple(t[0]) + ((EolOption(),) if t[1] else ())
        )  # EOL, when present, is last (it ends the list)
    )
    .filter(_fits)
)

segments = st.builds(
    TcpSegment,
    sport=u16,
    dport=u16,
    seq=u32,
    ack=u32,
    flags=st.integers(0, 0x0FFF),
    window=u16,
    options=options,
    payload=st.binary(max_size=64),
    urgent=u16,
)
addresses = st.sampled_from(
    [("198.18.0.1", "198.18.1.1"), ("fd00::1", "fd00::2"), ("127.0.0.1", "127.0.0.2")]
)


def expected_options(opts: tuple[TcpOption, ...]) -> tuple[TcpOption, ...]:
    """What parsing gives back: the list, plus an EOL when emit had to zero-pad a list not ending in EOL."""
    raw = b"".join(_option_bytes(o) for o in opts)
    if len(raw) % 4 and not (opts and isinstance(opts[-1], EolOption)):
        return opts + (EolOption(),)
    return opts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments, addresses)
def test_emit_parse_round_trip(seg: TcpSegment, addrs: tuple[str, str]) -> None:
    src, dst = addrs
    wire = emit_tcp(seg, src, dst)
    assert len(wire) == tcp_header_len(seg) + len(seg.payload)
    back = parse_tcp(wire, src, dst, verify_checksum=True)
    assert back == seg.with_(options=expected_options(seg.options), checksum=back.checksum)
    # Byte-exact the other way: a parsed segment re-emits to the same bytes.
    assert emit_tcp(back, src, dst) == wire
    assert emit_tcp(back.with_(checksum=None), src, dst) == wire


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments, addresses, st.integers(1, 255), st.integers(0, 0xFFFF))
def test_packet_round_trip(seg: TcpSegment, addrs: tuple[str, str], ttl: int, ident: int) -> None:
    src, dst = addrs
    pkt = build_packet(src, dst, seg, ttl=ttl, ident=ident)
    hdr, back = parse_packet(pkt, verify=True)
    assert (hdr.src, hdr.dst, hdr.ttl, hdr.proto) == (src, dst, ttl, 6)
    if isinstance(hdr, IPv4Header):
        assert hdr.ident == ident
    assert back.payload == seg.payload and back.seq == seg.seq and back.flags == seg.flags
    _, payload = parse_ip(pkt)
    assert emit_ip(hdr, bytes(payload)) == pkt


def _only_wire_errors(data: bytes) -> None:
    for verify in (False, True):
        try:
            parse_packet(data, verify=verify)
        except WireError:
            pass
        try:
            parse_ip(data, verify=verify)
        except WireError:
            pass
        try:
            parse_tcp(data, "198.18.0.1", "198.18.1.1", verify_checksum=verify)
        except WireError:
            pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_only_raise_wireerror(data: bytes) -> None:
    _only_wire_errors(data)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segments,
    addresses,
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 200),
)
def test_mutated_packets_only_raise_wireerror(
    seg: TcpSegment, addrs: tuple[str, str], flips: list[tuple[int, int]], cut: int
) -> None:
    """Random bytes rarely get past the IP version check; mutating valid packets reaches the deep branches."""
    pkt = bytearray(build_packet(*addrs, seg))
    for pos, val in flips:
        if pos < len(pkt):
            pkt[pos] = val
    _only_wire_errors(bytes(pkt))
    _only_wire_errors(bytes(pkt[: max(0, len(pkt) - cut)]))
    tcp = bytearray(emit_tcp(seg, *addrs))
    for pos, val in flips:
        if pos < len(tcp):
            tcp[pos] = val
    _only_wire_errors(bytes(tcp))


option_areas = st.integers(0, 10).flatmap(lambda words: st.binary(min_size=4 * words, max_size=4 * words))
# Option areas built from parts: well-formed options (so parsing gets deep), lone kind bytes (a kind with no room
# for its length when it lands on the last byte), and kind/length/garbage triples (bad lengths).
option_bytes = st.lists(
    st.one_of(
        option.map(_option_bytes),
        st.sampled_from([b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\x08", b"\xfe"]),
        st.tuples(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 30]), st.integers(0, 40), st.binary(max_size=10)).map(
            lambda t: bytes(t[:2]) + t[2]
        ),
    ),
    max_size=8,
).map(lambda parts: b"".join(parts)[:40])


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        option_areas,
        option_bytes.map(lambda b: b + b"\x00" * (-len(b) % 4)),
        option_bytes.map(lambda b: b"\x01" * (-len(b) % 4) + b),  # NOP-aligned: the last part ends the area
    ),
    st.binary(max_size=8),
)
def test_random_option_areas_only_raise_wireerror(opts: bytes, tail: bytes) -> None:
    """A valid fixed header with a random option area: exercises every branch of the option parser."""
    doff = 5 + len(opts) // 4
    head = bytes.fromhex("1f90 d431 0000 0064 0000 00c8") + bytes([doff << 4, 0x10]) + bytes(6)
    try:
        seg = parse_tcp(head + opts + tail)
    except WireError:
        return
    # Whatever parses must re-emit to the same bytes (checksum kept as found).
    assert emit_tcp(seg, "198.18.0.1", "198.18.1.1", keep_checksum=True) == head + opts + tail


ext_types = st.sampled_from([0, 43, 44, 51, 60, 6, 59])


@settings(max_examples=300, deadline=None)
@given(ext_types, st.binary(max_size=80))
def test_random_ipv6_extension_chains_only_raise_wireerror(first: int, rest: bytes) -> None:
    head = bytes([0x60, 0, 0, 0]) + len(rest).to_bytes(2, "big") + bytes([first, 64]) + bytes(32)
    _only_wire_errors(head + rest)


wild = st.integers(-(2**33), 2**33)


@settings(max_examples=200, deadline=None)
@given(wild, wild, wild, wild, wild, wild, wild, st.one_of(st.none(), wild), st.booleans())
def test_emit_with_out_of_range_fields_only_raises_wireerror(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    urgent: int,
    csum: int | None,
    keep: bool,
) -> None:
    seg = TcpSegment(sport, dport, seq, ack, flags, window, (), b"", urgent, csum)
    try:
        wire = emit_tcp(seg, "198.18.0.1", "198.18.1.1", keep_checksum=keep)
    except WireError:
        return
    assert parse_tcp(wire).with_(checksum=None) == seg.with_(checksum=None)

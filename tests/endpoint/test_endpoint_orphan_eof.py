"""EOF is signalled to an application that can still read it: after shutdown(SHUT_WR), not after close().

RFC 9293 §3.10.7.4 says to "signal the user" when the peer's FIN arrives; after close() there is no user (the
descriptor is gone, Linux has orphaned the socket: tcp_fin() wakes readers only when the socket is not
SOCK_DEAD). A diagram that showed "recv() returns EOF" on a host that had already called close() was wrong.
"""

from __future__ import annotations

from ep_helpers import established

from tcpwise.endpoint import EndOfStream
from tcpwise.vocab import TcpState as S


def _eofs(p, host: str) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for _t, name, ev in p.events if name == host and isinstance(ev, EndOfStream))


def test_no_eof_for_an_application_that_closed() -> None:
    p, c, s = established()
    c.close(p.now)
    p.flush("A")
    p.advance(p.now + 0.5)
    s.close(p.now)
    p.flush("B")
    p.advance(p.now + 0.5)
    assert c.state is S.TIME_WAIT and s.state is S.CLOSED
    assert _eofs(p, "A") == 0  # A closed before B's FIN arrived: nobody to tell
    assert _eofs(p, "B") == 1  # B still held its socket when A's FIN arrived


def test_eof_after_shutdown_reaches_the_application() -> None:
    p, c, s = established()
    c.shutdown(p.now)
    p.flush("A")
    p.advance(p.now + 0.5)
    s.close(p.now)
    p.flush("B")
    p.advance(p.now + 0.5)
    assert c.state is S.TIME_WAIT
    assert _eofs(p, "A") == 1 and c.recv() == b""

"""Initial sequence numbers per RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey).

M is a 4-microsecond timer (RFC 9293 §3.4.1); F is a keyed hash of the connection id so that ISNs of different
4-tuples are unrelated (off-path attackers cannot guess them) while successive incarnations of the same 4-tuple
still move forward with the clock — which is what protects a new incarnation from old duplicates. We use
BLAKE2s keyed with the secret (Linux uses siphash); the secret is supplied by the caller (sans-IO: no randomness
inside the endpoint).
"""

from __future__ import annotations

import hashlib

__all__ = ["isn_rfc6528"]


def isn_rfc6528(secret: bytes, laddr: str, lport: int, raddr: str, rport: int, now: float) -> int:
    m = int(now * 250_000)  # 4 us ticks
    h = hashlib.blake2s(f"{laddr}|{lport}|{raddr}|{rport}".encode(), key=secret[:32], digest_size=4).digest()
    return (m + int.from_bytes(h, "big")) & 0xFFFFFFFF

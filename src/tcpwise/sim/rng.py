"""A small seeded PRNG (SplitMix64) owned by the simulator.

The sim must not touch the global ``random`` module (STYLE: nothing in sim/ imports random): every source of
chance is an instance of this class, seeded from the run's seed and a stream name, so that two links never
share a stream and the same seed gives the same run byte for byte on every Python version.
"""

from __future__ import annotations

import hashlib

__all__ = ["Rng"]

_M64 = (1 << 64) - 1


class Rng:
    __slots__ = ("_s",)

    def __init__(self, seed: int, stream: str = "") -> None:
        h = hashlib.blake2b(f"{seed}|{stream}".encode(), digest_size=8).digest()
        self._s = int.from_bytes(h, "big")

    def next64(self) -> int:
        self._s = (self._s + 0x9E3779B97F4A7C15) & _M64
        z = self._s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return z ^ (z >> 31)

    def random(self) -> float:
        """Uniform in [0, 1)."""
        return (self.next64() >> 11) * (1.0 / (1 << 53))

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def randbelow(self, n: int) -> int:
        return self.next64() % n if n > 0 else 0

    def bytes(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += self.next64().to_bytes(8, "big")
        return bytes(out[:n])

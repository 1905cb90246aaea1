"""tcpwise: see, test and fix the life of TCP connections.

One vocabulary (:mod:`tcpwise.vocab`), one wire codec (:mod:`tcpwise.wire`), one event schema
(:mod:`tcpwise.events`) shared by the model (endpoint + sim), the kernel lab, trace and doctor.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

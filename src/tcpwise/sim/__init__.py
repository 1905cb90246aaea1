"""tcpwise.sim: a deterministic, seeded discrete-event network simulator driving model TCP stacks."""

from tcpwise.sim.core import SimHost, Simulator
from tcpwise.sim.network import Channel, DropRule, Impairments, Packet, PathElement
from tcpwise.sim.rng import Rng
from tcpwise.sim.runner import build_sim, config_for, payload_bytes, run_script

__all__ = [
    "Simulator",
    "SimHost",
    "Channel",
    "DropRule",
    "Impairments",
    "Packet",
    "PathElement",
    "Rng",
    "run_script",
    "build_sim",
    "config_for",
    "payload_bytes",
]

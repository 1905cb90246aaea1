"""tcpwise.scenarios: the catalogue — every claim an executable, checked story (see docs/architecture.md)."""

from tcpwise.scenarios.base import (
    Param,
    Scenario,
    catalogue,
    claim,
    get_scenario,
    parse_overrides,
    register,
    run_scenario,
)

__all__ = ["Param", "Scenario", "catalogue", "claim", "get_scenario", "parse_overrides", "register", "run_scenario"]

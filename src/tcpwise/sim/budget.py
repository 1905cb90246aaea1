"""Budgets: no parameter can make a simulation run forever or eat the machine.

The simulator counts what it does — actions popped from its heap, events kept in its log — and stops with a
one-line :class:`~tcpwise.errors.BudgetExceeded` when a count passes its limit. Wall time and memory are not
the simulator's business (it has no clock, by design): every ``check_every`` actions it calls ``check()``, a
function its caller supplies (:func:`tcpwise.scenarios.base.run_scenario` passes one that looks at the clock and
the process's resident memory). The budget in force is a context variable, so the scenarios' own ``simulate``
functions, which build their simulators themselves, are covered without passing it around.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from tcpwise.errors import BudgetExceeded

__all__ = ["Budget", "current", "using", "DEFAULT"]


@dataclass(frozen=True, slots=True)
class Budget:
    max_actions: int = 50_000_000  # heap actions (segment arrivals, timers, application steps)
    max_recorded: int = 3_000_000  # events kept in the log (each costs a few hundred bytes)
    check: Callable[[], None] | None = None  # wall time / memory, raises BudgetExceeded
    check_every: int = 1 << 15

    def over_actions(self, n: int) -> None:
        raise BudgetExceeded(
            f"the run exceeded its budget of {self.max_actions:,} simulated actions after {n:,}: "
            "lower the rate, the duration or the number of connections"
        )

    def over_recorded(self) -> None:
        raise BudgetExceeded(
            f"the run would record more than {self.max_recorded:,} events: lower the rate, the duration or "
            "the data size (or use --format json with a smaller run)"
        )


DEFAULT = Budget()
_CURRENT: ContextVar[Budget] = ContextVar("tcpwise_sim_budget", default=DEFAULT)


def current() -> Budget:
    return _CURRENT.get()


@contextmanager
def using(budget: Budget) -> Iterator[Budget]:
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)

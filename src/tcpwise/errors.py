"""The error every tcpwise command turns into a one-line message and exit code 2.

Anything the *user* got wrong or the *machine* lacks (unknown scenario, bad ``--set``, corrupt pcap, not root,
no nftables) is raised as :class:`UsageError` with a message that says what is valid or what is missing.
The CLI prints ``tcpwise: error: <message>`` and exits with :attr:`UsageError.exit_code`; never a traceback.
"""

from __future__ import annotations

import signal

__all__ = [
    "TcpwiseError", "UsageError", "MissingCapability", "BudgetExceeded", "Terminated", "STOP_SIGNALS", "UNWIND_SIGNALS"
]  # fmt: skip


class TcpwiseError(Exception):
    """Base class of errors the CLI reports in one line."""

    exit_code = 2


class UsageError(TcpwiseError):
    """Bad input from the user: unknown id, bad parameter, unreadable file."""


class MissingCapability(TcpwiseError):
    """The machine lacks something: root, a namespace, nftables, a kernel feature, a binary."""


class BudgetExceeded(TcpwiseError):
    """A run reached one of its budgets (simulated events, recorded events, wall time or memory): the parameters
    ask for more than a run may take. The message names the budget and what to lower."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is (the CLI installs the handler): it unwinds through the same
    cleanup as Ctrl-C — temporary output files removed, namespaces and workers stopped — and the CLI exits
    128 + the signal's number (143 for SIGTERM, 129 for SIGHUP: the terminal closed, the ssh session dropped)."""

    def __init__(self, signum: int = 15) -> None:
        super().__init__(signum)
        self.signum = signum


# The signals that end a command the way Ctrl-C does: SIGTERM (kill, timeout, systemd) and SIGHUP (the terminal
# closed, the ssh session dropped). Their default action kills the process where it stands, leaving temporary
# files, tracefs instances and namespaces behind; every command's signal policy covers these.
UNWIND_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# ... and Ctrl-C itself: the set a command with its own stop-and-clean-up policy catches.
STOP_SIGNALS = (signal.SIGINT, *UNWIND_SIGNALS)

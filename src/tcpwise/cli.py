"""The ``tcpwise`` command: one argparse tree, each product area registering its own subcommands.

Each area owns ``tcpwise/<area>/cli.py`` with ``register(subparsers)``; it must stay cheap to import (heavy
modules are imported inside the handler), because interpreter start-up is part of every user's wait —
``tcpwise doctor`` races ``ss -tanp``. argparse (stdlib) instead of typer for the same reason: typer+rich cost
~110 ms of imports before any work is done.

Errors: :class:`tcpwise.errors.TcpwiseError` -> ``tcpwise: error: <one line>`` and its exit code (2);
Ctrl-C -> exit 130 after the area's own cleanup has run; any other exception is a bug: one line naming it and
exit 70, with the traceback only when ``TCPWISE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from tcpwise import __version__
from tcpwise.errors import TcpwiseError

__all__ = ["main", "build_parser"]

# Order = order in --help.
_AREAS = (
    "tcpwise.scenarios.cli",
    "tcpwise.scenarios.report_cli",
    "tcpwise.lab.cli",
    "tcpwise.doctor.cli",
    "tcpwise.watch.cli",
    "tcpwise.trace.cli",
    "tcpwise.guard.cli",
    "tcpwise.ladder.cli",
    "tcpwise.demo",
)

EPILOG = """examples:
  tcpwise scenarios                      list the scenario catalogue
  tcpwise sim close                      four-way teardown as a sequence diagram
  tcpwise sim lost-last-ack --set time_wait=0 --format json
  tcpwise report -o report/              HTML gallery of every scenario
  tcpwise lab run close                  the same story on the real kernel (root)
  tcpwise doctor                         diagnose this host's TCP connections
  tcpwise watch                          each connection's life, live (root)
  tcpwise trace capture.pcap             the life of every connection in a capture
  tcpwise ladder --nginx nginx.conf --hop uvicorn   idle-timeout inversions (502s) on a path
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcpwise",
        description="See, test and fix the life of TCP connections.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tcpwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in _AREAS:
        _load_cli_module(modname).register(sub)
    return parser


def _load_cli_module(modname: str) -> ModuleType:
    """Import an area's ``cli`` module *without* running its package ``__init__`` (which may re-export the
    area's whole API: guard's pulls in asyncio). The package is imported normally later, by the handler, if the
    command is the one asked for. Every area is part of tcpwise: a missing one is a broken install, and fails."""
    if modname in sys.modules:
        return sys.modules[modname]
    pkg, _, leaf = modname.rpartition(".")
    if pkg == "tcpwise":  # a top-level module (tcpwise.demo): nothing to skip
        return importlib.import_module(modname)
    pkg_spec = importlib.util.find_spec(pkg)  # imports only the parents of pkg, not pkg itself
    assert pkg_spec is not None and pkg_spec.submodule_search_locations, f"tcpwise is missing {pkg}"
    path = os.path.join(list(pkg_spec.submodule_search_locations)[0], leaf + ".py")
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[modname]
        raise
    return mod


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        rc = handler(args)
    except TcpwiseError as exc:
        print(f"tcpwise: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tcpwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `tcpwise ... | head` closed the pipe: not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return 0
    except Exception as exc:  # a bug: say so in one line, traceback on request
        if os.environ.get("TCPWISE_DEBUG"):
            raise
        print(
            f"tcpwise: internal error: {type(exc).__name__}: {exc} (set TCPWISE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 70
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

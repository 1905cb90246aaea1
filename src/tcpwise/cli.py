"""The ``tcpwise`` command: one argparse tree, each product area registering its own subcommands.

Each area owns ``tcpwise/<area>/cli.py`` with ``register(subparsers)``; it must stay cheap to import (heavy
modules are imported inside the handler), because interpreter start-up is part of every user's wait —
``tcpwise doctor`` races ``ss -tanp``. argparse (stdlib) instead of typer for the same reason: typer+rich cost
~110 ms of imports before any work is done.

Errors: :class:`tcpwise.errors.TcpwiseError` -> ``tcpwise: error: <one line>`` and its exit code (2);
Ctrl-C -> exit 130 after the area's own cleanup has run; any other exception is a bug: one line naming it and
exit 70, with the traceback only when ``TCPWISE_DEBUG=1``.

The root owns what every command shares: ``--version`` (with the kernel, Python and OS facts a bug report
needs), ``tcpwise completion bash|zsh|fish`` (shell completion through argcomplete, which asks this same parser
when the user presses TAB, so completion never drifts from the options) and the help format of
:class:`tcpwise.term.HelpFormatter` (choices and defaults after every option).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

from tcpwise import __version__
from tcpwise.errors import UNWIND_SIGNALS, TcpwiseError, Terminated
from tcpwise.term import HelpFormatter

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
    "tcpwise.probe.cli",
    "tcpwise.demo",
)

EPILOG = """examples:
  tcpwise scenarios                      list the scenario catalogue
  tcpwise sim close                      the four-way close, drawn and checked
  tcpwise sim lost-last-ack --set time_wait=0 --format json
  tcpwise report -o report/              HTML gallery of every scenario
  tcpwise lab run close                  the same story on the real kernel
  tcpwise doctor                         diagnose this host's connections
  tcpwise watch                          each connection's life, live (root)
  tcpwise trace capture.pcap             every connection in a capture
  tcpwise ladder --nginx nginx.conf --hop uvicorn    502s from idle timeouts
  tcpwise probe --list                   hostile peers to aim at your server
  tcpwise completion bash --install      TAB completion (also zsh, fish)

Output fits 80 columns (--wide for more) and has colour only on a terminal
without NO_COLOR (--color always|never to choose). `tcpwise COMMAND --help`
lists a command's options with their choices and defaults.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tcpwise",
        description="See, test and fix the life of TCP connections.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version",
        action=_Version,
        nargs=0,
        help="print the version and the kernel, Python and OS facts a bug report needs, then exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for modname in _AREAS:
        _load_cli_module(modname).register(sub)
    _register_completion(sub)
    return parser


class _Version(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(version_text())
        parser.exit()


def version_text() -> str:
    """``tcpwise --version``: the version, then one line each for Python, the kernel, the OS, privileges and the
    system tools the lab, trace and report use (found or missing)."""
    import platform
    import shutil

    u = os.uname()
    distro = ""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        distro = "unknown"
    tools = ", ".join(
        f"{t} {'yes' if shutil.which(t) else 'MISSING'}" for t in ("ip", "nft", "tshark", "chromium")
    )
    here = os.path.dirname(os.path.abspath(__file__))
    rows = [
        ("python", f"{platform.python_version()} ({platform.python_implementation()}) {sys.executable}"),
        ("kernel", f"{u.sysname} {u.release} {u.machine}"),
        ("os", distro),
        (
            "user",
            f"uid {os.geteuid()}" + (" (root: lab and namespace tests can run)" if os.geteuid() == 0 else ""),
        ),
        ("tools", tools),
        ("installed", here),
    ]
    return "\n".join([f"tcpwise {__version__}"] + [f"  {k:<10}{v}" for k, v in rows])


_COMPLETION_EPILOG = """examples:
  tcpwise completion bash --install
  tcpwise completion fish --install
  tcpwise completion zsh --install
  eval "$(tcpwise completion bash)"      just this shell, nothing written

--install writes the script where the shell looks for it:
  bash  ~/.local/share/bash-completion/completions/tcpwise
  fish  ~/.config/fish/completions/tcpwise.fish
  zsh   ~/.zfunc/_tcpwise  (put fpath=(~/.zfunc $fpath) before compinit)
"""
_COMPLETION_PATHS = {
    "bash": ("XDG_DATA_HOME", ".local/share", "bash-completion/completions/tcpwise"),
    "fish": ("XDG_CONFIG_HOME", ".config", "fish/completions/tcpwise.fish"),
    "zsh": ("", "", ".zfunc/_tcpwise"),
}


def _register_completion(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "completion",
        help="shell completion script for bash, zsh or fish",
        description="Print (or install) the TAB-completion script for your shell. Completion asks tcpwise itself "
        "(through argcomplete), so it knows every command, option, choice and scenario id of this version.",
        epilog=_COMPLETION_EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete in")
    p.add_argument(
        "--install",
        action="store_true",
        help="write the script where the shell looks for it (per user) instead of printing it",
    )
    p.set_defaults(handler=_cmd_completion)


def completion_path(shell: str) -> str:
    env, default, rel = _COMPLETION_PATHS[shell]
    home = os.path.expanduser("~")
    base = (os.environ.get(env) or os.path.join(home, default)) if env else home
    return os.path.join(base, rel)


def _cmd_completion(args: argparse.Namespace) -> int:
    from tcpwise.errors import MissingCapability
    from tcpwise.outfile import write_output

    try:
        import argcomplete
    except ImportError:  # pragma: no cover - a runtime dependency
        raise MissingCapability(
            "shell completion needs the argcomplete package (pip install argcomplete)"
        ) from None
    script = argcomplete.shellcode(["tcpwise"], shell=args.shell)  # type: ignore[attr-defined]
    if not args.install:
        write_output(script, None)
        return 0
    path = completion_path(args.shell)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_output(script, path)
    print(f"wrote {path}")
    if args.shell == "zsh":
        print("add to ~/.zshrc before compinit:  fpath=(~/.zfunc $fpath)")
    print("open a new shell to use it")
    return 0


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


_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for a closed or full stdout would fail again at exit."""
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
    except OSError:
        pass


def _raise_terminated(sig: int, _frame: object) -> None:
    raise Terminated(sig)


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM's and SIGHUP's default action kills the process where it stands: a ``-o`` temporary file would stay
    behind, a tracefs instance or a namespace would outlive the run, a worker could outlive its parent. Raised as
    :class:`Terminated` they take Ctrl-C's cleanup path instead, and the CLI exits 128 + the signal (143, 129).
    Commands with their own policy (watch, lab, probe, guard, the exporter) install it over this one for their
    run; a handler someone else installed (an embedding program, ``nohup``'s SIG_IGN) is left alone."""
    mine = []
    try:
        for sig in UNWIND_SIGNALS:
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _raise_terminated)
                mine.append(sig)
    except ValueError:  # not the main thread: signals are the host program's business
        pass
    try:
        yield
    finally:
        for sig in mine:
            signal.signal(sig, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (tcpwise completion): answer and exit
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        with _sigterm_unwinds():
            rc = handler(args)
    except TcpwiseError as exc:
        print(f"tcpwise: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated as exc:
        print("tcpwise: terminated" + (" (SIGHUP)" if exc.signum == signal.SIGHUP else ""), file=sys.stderr)
        # 143 for SIGTERM, 129 for SIGHUP: what a shell reports for a process either signal killed
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("tcpwise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `tcpwise ... | head` closed the pipe: not an error worth a traceback.
        _quiet_stdout()
        return 0
    except Exception as exc:  # a bug: say so in one line, traceback on request
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
            # not a bug: stdout on a full disk or a failing device (`> /dev/full`); -o files say so via outfile
            print(f"tcpwise: error: cannot write: {exc.strerror}", file=sys.stderr)
            _quiet_stdout()
            return 2
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

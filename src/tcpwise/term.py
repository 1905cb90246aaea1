"""What every tcpwise command needs to talk to a terminal: colour, width, tables, numbers for people, help text.

One small module (standard library only, importable by every layer) so that each area's CLI behaves the same:

* **Colour** -- :func:`add_color_option` gives a parser ``--color auto|always|never``; :func:`use_color` decides:
  ``always`` and ``never`` win; ``auto`` means colour only on a terminal, not when ``NO_COLOR`` is set to a
  non-empty value (https://no-color.org) and not when ``TERM=dumb``.
* **Width** -- :func:`add_wide_option` gives ``--wide``; :func:`output_width` is 80 columns (or a narrower
  terminal) unless ``--wide`` asked for more; :func:`table` lays out rows within that width, wrapping the columns
  marked flexible and never cutting a number.
* **Numbers for people** -- :func:`fmt_seconds` ("61.1 s", "250 ms"), :func:`fmt_bytes` ("53.6 kB"),
  :func:`fmt_num` (3 significant digits, integers as integers).
* **Numbers from options** -- :func:`number_in` is the one argparse ``type=`` for a number that must be finite and
  within a range (``nan``, ``inf``, ``1e309`` and ``2**63`` refused in one line, before any work starts).
* **Help** -- :class:`HelpFormatter` shows each option's choices and default after its help line and keeps the
  epilog's examples as written; :func:`epilog_examples` lists those examples so tests can parse every one.
* **Output files** are not here: every ``-o`` goes through :mod:`tcpwise.outfile` (atomic replace).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

__all__ = [
    "COLOR_CHOICES",
    "add_color_option",
    "add_wide_option",
    "use_color",
    "output_width",
    "cell_width",
    "wrap",
    "Column",
    "table",
    "fmt_seconds",
    "fmt_bytes",
    "fmt_num",
    "number_in",
    "HelpFormatter",
    "epilog_examples",
]

COLOR_CHOICES = ("auto", "always", "never")
DEFAULT_WIDTH = 80


# -- colour ------------------------------------------------------------------------------------------------------
def add_color_option(parser: argparse.ArgumentParser) -> None:
    """``--color auto|always|never`` (default auto: colour on a terminal unless NO_COLOR is set)."""
    parser.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default="auto",
        metavar="WHEN",
        help="colour the output: auto (only on a terminal and when NO_COLOR is unset), always, never",
    )


def use_color(choice: str = "auto", stream: IO[Any] | None = None) -> bool:
    """Whether to write ANSI colour to ``stream`` (stdout by default) for ``--color choice``."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    s = sys.stdout if stream is None else stream
    try:
        return bool(s.isatty())
    except (AttributeError, ValueError):
        return False


# -- width -------------------------------------------------------------------------------------------------------
def add_wide_option(parser: argparse.ArgumentParser) -> None:
    """``--wide``: use the terminal's full width (or the output's natural width when piped)."""
    parser.add_argument(
        "--wide",
        action="store_true",
        help="do not fit the output into 80 columns: use the terminal's full width, or any width when piped",
    )


def output_width(wide: bool = False, stream: IO[Any] | None = None) -> int | None:
    """Columns to fit: 80, or fewer on a narrower terminal; with ``wide``, the terminal's width (None = no limit
    when the output is not a terminal). ``COLUMNS`` overrides the terminal's own idea, as in coreutils."""
    s = sys.stdout if stream is None else stream
    cols: int | None = None
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        cols = int(env)
    else:
        try:
            if s.isatty():
                cols = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
        except (AttributeError, ValueError):
            cols = None
    if wide:
        return cols
    return min(DEFAULT_WIDTH, cols) if cols else DEFAULT_WIDTH


def cell_width(s: str) -> int:
    """Terminal cells ``s`` occupies (East Asian wide and full-width characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


# Chinese line breaking (the basic rules of GB/T 15834 and W3C "Requirements for Chinese Text Layout"): a line
# never starts with closing punctuation nor ends with opening punctuation, and the two-em dash "——" and the
# ellipsis "……" are never split.
_NO_START = set("，。、；：？！）》」』】〕〉”’…·%)]}.,;:!?")
_NO_END = set("（《「『【〔〈“‘([{")
_TOKEN = re.compile(r"——|……|\[[^\[\]]{0,40}\]|\{[^{}\s]*(?: [^{}\s]*){0,2}\}|[^\s\u1100-\uffff]+|\s|.")


def _tokens(s: str) -> list[str]:
    """Unbreakable pieces of ``s``: Latin words (numbers, TIME_WAIT), single CJK characters, single spaces, with
    CJK punctuation glued to the character it must stay with."""
    out: list[str] = []
    glue_next = False
    for tok in _TOKEN.findall(s):
        if out and not tok.isspace() and (glue_next or tok[0] in _NO_START):
            out[-1] += tok
        else:
            out.append(tok)
        glue_next = not tok.isspace() and tok[-1] in _NO_END
    return out


def wrap(s: str, width: float, measure: Callable[[str], float] = cell_width) -> list[str]:
    """Wrap ``s`` to lines no wider than ``width`` as ``measure`` counts (terminal cells by default; the SVG
    passes a pixel measure). Latin words are never split; CJK text, which has no spaces, may break between any
    two characters, following the punctuation rules above. A single word wider than a line is cut."""
    width = max(8.0 if measure is cell_width else 1.0, width)
    lines: list[str] = []
    cur = ""
    tokens = _tokens(s)
    while tokens:
        tok = tokens.pop(0)
        if " " in tok and not tok.isspace() and measure(tok) > width:
            # a group kept whole where it fits ("[ESTABLISHED -> CLOSE_WAIT]") breaks at its spaces where not
            tokens[:0] = re.findall(r"\S+|\s", tok)
            continue
        if cur.strip() and measure(cur + tok.rstrip()) > width:
            lines.append(cur.rstrip())
            cur = "" if tok.isspace() else tok
        else:
            cur = "" if (not cur and tok.isspace()) else cur + tok
        while measure(cur.rstrip()) > width and len(cur) > 1:  # one word longer than the line: cut it
            cut = len(cur) - 1
            while cut > 1 and measure(cur[:cut]) > width:
                cut -= 1
            lines.append(cur[:cut])
            cur = cur[cut:]
    if cur.strip():
        lines.append(cur.rstrip())
    return lines or [""]


# -- tables ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Column:
    """A table column. ``align`` is ``left`` or ``right`` (numbers); a ``flex`` column is wrapped to make the
    table fit (text); ``min`` is the narrowest a flex column may become."""

    name: str
    align: str = "left"
    flex: bool = False
    min: int = 8


def _pad(s: str, w: int, align: str) -> str:
    gap = " " * max(0, w - cell_width(s))
    return gap + s if align == "right" else s + gap


def _wrap_cell(s: str, w: int) -> list[str]:
    return wrap(s, w) if cell_width(s) > w else [s]


def table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[object]],
    *,
    width: int | None = DEFAULT_WIDTH,
    sep: str = "  ",
) -> list[str]:
    """Lines of a plain-text table that fits ``width`` columns (None: natural width). Flex columns share what is
    left after the fixed ones and wrap onto extra lines; fixed columns (numbers, names) are never cut. If even
    the fixed columns do not fit, the table is as narrow as it can be and says nothing is lost."""
    cells = [[str(c) for c in r] for r in rows]
    n = len(columns)
    natural = [
        max([cell_width(col.name)] + [cell_width(r[i]) for r in cells]) for i, col in enumerate(columns)
    ]
    widths = list(natural)
    if width is not None:
        total = sum(widths) + len(sep) * (n - 1)
        flex = [i for i, c in enumerate(columns) if c.flex]
        while total > width and flex:
            # shrink the widest flex column one cell at a time (keeps the split fair)
            i = max(flex, key=lambda k: widths[k])
            if widths[i] <= max(columns[i].min, cell_width(columns[i].name)):
                flex.remove(i)
                continue
            widths[i] -= 1
            total -= 1
    out = [sep.join(_pad(c.name, widths[i], c.align) for i, c in enumerate(columns)).rstrip()]
    for r in cells:
        parts = [_wrap_cell(r[i], widths[i]) if columns[i].flex else [r[i]] for i in range(n)]
        for k in range(max(len(p) for p in parts)):
            line = sep.join(
                _pad(p[k] if k < len(p) else "", widths[i], columns[i].align) for i, p in enumerate(parts)
            )
            out.append(line.rstrip())
    return out


# -- numbers for people ------------------------------------------------------------------------------------------
def fmt_num(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, no exponent, no trailing zeros; integers stay integers."""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int) or (math.isfinite(x) and float(x).is_integer() and abs(x) < 1e15):
        return str(int(x))
    if not math.isfinite(x):
        return str(x)
    mag = math.floor(math.log10(abs(x))) if x else 0
    decimals = max(0, digits - 1 - mag)
    s = f"{x:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def fmt_seconds(s: float, digits: int = 3) -> str:
    """A duration for people: ``250 ms``, ``1.05 s``, ``61.1 s``, ``926 s`` (``digits`` significant digits, never
    fewer than the integer part; µs and ms below one second)."""
    a = abs(s)
    if a == 0:
        return "0 s"
    if a < 1e-3:
        return f"{fmt_num(s * 1e6, digits)} µs"
    if a < 1:
        return f"{fmt_num(s * 1e3, digits)} ms"
    if a >= 10 ** (digits - 1):
        return f"{round(s)} s"
    return f"{fmt_num(s, digits)} s"


def number_in(lo: float, hi: float, *, unit: str = "s", zero: str | None = None) -> Callable[[str], float]:
    """An argparse ``type=`` for a finite number in ``[lo, hi]`` (``unit`` said in the message). ``zero``, when
    given, also accepts exactly 0 and names what it means (``"every scrape"``). Anything else -- not a number,
    ``nan``, ``inf``, ``1e309``, a value a sleep or a timestamp could not hold, a timer that would busy-loop --
    is refused by argparse in one line before the command starts. ``-0`` is read as 0."""
    rng = f"{fmt_num(lo)}..{fmt_num(hi)}{' ' + unit if unit else ''}"
    if zero is not None:
        rng += f", or 0 = {zero}"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if v == 0 and zero is not None:
            return 0.0
        if not (math.isfinite(v) and lo <= v <= hi):
            raise argparse.ArgumentTypeError(f"must be a finite number in {rng}: {text!r}")
        return v + 0.0  # -0.0 -> 0.0

    return parse


def fmt_bytes(n: float) -> str:
    """A size for people in SI units: ``812 B``, ``53.6 kB``, ``1.2 MB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{fmt_num(n / scale)} {unit}"
    return f"{fmt_num(n)} B"


# -- help --------------------------------------------------------------------------------------------------------
class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """One-paragraph descriptions wrapped to the terminal, epilogs (examples, several lines) kept as written;
    after each option's help, its choices (when the metavar hides them) and its default (when it has one worth
    showing)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)

    def __init__(self, prog: str, **kw: Any) -> None:
        kw.setdefault("max_help_position", 30)
        kw.setdefault("width", min(DEFAULT_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns))
        super().__init__(prog, **kw)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        # argparse measures subcommand names without their extra indent, so "scenarios" would push its help
        # onto the next line: count the indent
        if action.help is not argparse.SUPPRESS and isinstance(action, argparse._SubParsersAction):
            for sub in action._get_subactions():
                length = (
                    len(self._format_action_invocation(sub))
                    + self._current_indent
                    + 2 * self._indent_increment
                )
                self._action_max_length = max(self._action_max_length, length)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if text == argparse.SUPPRESS:
            return text
        extra: list[str] = []
        choices = action.choices
        if (
            choices is not None
            and not isinstance(choices, dict)  # a subparsers action lists its commands itself
            and action.metavar is not None
            and "%(choices)" not in text
        ):
            extra.append("choices: " + ", ".join(str(c) for c in choices))
        default = action.default
        shown = default not in (None, False, argparse.SUPPRESS, [], "") and "%(default)" not in text
        if shown and (action.option_strings or action.nargs in ("?", "*")) and "default" not in text.lower():
            extra.append("default: %(default)s")
        if extra:
            text = f"{text} ({'; '.join(extra)})" if text else "; ".join(extra)
        return text


def epilog_examples(parser: argparse.ArgumentParser, prog: str = "tcpwise") -> list[list[str]]:
    """The example commands of ``parser``'s epilog and of every subparser below it, each as an argv list without
    the program name (comments after ``#`` and explanations after two spaces are dropped; a leading ``sudo``
    is dropped and a line ending in a backslash continues on the next)."""
    import shlex

    found: list[list[str]] = []
    seen: set[int] = set()

    def walk(p: argparse.ArgumentParser) -> None:
        if id(p) in seen:
            return
        seen.add(id(p))
        lines = (p.epilog or "").splitlines()
        while lines:
            s = lines.pop(0).strip().lstrip("$ ").strip()
            while s.endswith("\\") and lines:  # a long example continued on the next line
                s = s[:-1].rstrip() + " " + lines.pop(0).strip()
            s = s.removeprefix("sudo ")  # root-only examples say so; the command is the same
            if not s.startswith(prog + " "):
                continue
            s = s.split(" #", 1)[0]
            cmd = s.split("  ", 1)[0]  # "tcpwise sim close   what it shows"
            words = shlex.split(cmd)
            for end in ("|", ">"):  # a pipe or a redirection is the shell's, not tcpwise's
                if end in words:
                    words = words[: words.index(end)]
            found.append(words[1:])
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(parser)
    return found

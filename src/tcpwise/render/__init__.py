"""Renderers of the one event schema: every view of a :class:`tcpwise.events.Run`.

``render(run, fmt)`` is the single entry point the CLI (``tcpwise sim ID --format FMT``), the report and the lab
use. Renderers read the Run only — never the simulator or the lab — so a kernel run or a traced connection draws
exactly like a model run.

=========  =====  ================================================================================
format     type   what
=========  =====  ================================================================================
text       str    terminal sequence diagram, checks with ✓/✗, narrative (ANSI colour with color=True)
json       str    ``Run.to_json()`` — the stable schema other tools consume
mermaid    str    a Mermaid ``sequenceDiagram``
svg        str    self-contained SVG: lanes, state bands, sloped arrows, drops, timers, compressed time
html       str    one page: the SVG, checks, narrative, state timeline, parameters (en/zh)
pcap       bytes  libpcap file with the real IPv4/IPv6 + TCP bytes of every sent segment
lines      str    one line per event, relative numbers, then the checks (grep-able; what golden files hold)
=========  =====  ================================================================================

Each module is imported only when its format is asked for, so ``tcpwise sim`` with the default text format does
not pay for the SVG or pcap code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpwise.errors import UsageError

if TYPE_CHECKING:  # the CLI imports this package at start-up: keep it light
    from tcpwise.events import Run

__all__ = ["render", "FORMATS", "BINARY_FORMATS"]

FORMATS: tuple[str, ...] = ("text", "json", "lines", "mermaid", "svg", "html", "pcap")
BINARY_FORMATS: frozenset[str] = frozenset({"pcap"})


def render(
    run: Run,
    fmt: str,
    *,
    absolute: bool = False,
    lang: str = "en",
    color: bool = False,
    width: int | None = 80,
    fold: bool = True,
) -> str | bytes:
    """Render ``run`` as ``fmt`` (one of :data:`FORMATS`).

    Args:
        run: the recorded run (sim, lab or trace world).
        fmt: output format; ``pcap`` returns bytes, every other format a str.
        absolute: show raw 32-bit sequence/acknowledgment numbers instead of numbers relative to each
            direction's ISN (text, mermaid, svg, html).
        lang: ``"en"`` or ``"zh"`` — UI labels; claims and narratives come from the run in that language.
        color: ANSI colour in the text format (the caller decides, with :func:`tcpwise.term.use_color`).
        width: columns the text format must fit (None: as wide as the diagram wants).
        fold: summarise bulk transfers in one row (text, svg; html adds a control that shows every segment).

    Raises:
        UsageError: unknown format or language.
    """
    from tcpwise.i18n import check_lang

    check_lang(lang)
    if fmt == "text":
        from tcpwise.render.text import render_text

        return render_text(run, absolute=absolute, lang=lang, color=color, width=width, fold_bulk=fold)
    if fmt == "json":
        return run.to_json()
    if fmt == "lines":
        from tcpwise.render.lines import render_lines

        return render_lines(run)
    if fmt == "mermaid":
        from tcpwise.render.mermaid import render_mermaid

        return render_mermaid(run, absolute=absolute, lang=lang)
    if fmt == "svg":
        from tcpwise.render.svg import render_svg

        return render_svg(run, absolute=absolute, lang=lang, fold=fold)
    if fmt == "html":
        from tcpwise.render.html import render_html

        return render_html(run, absolute=absolute, lang=lang, fold=fold)
    if fmt == "pcap":
        from tcpwise.render.pcap import render_pcap

        return render_pcap(run)
    raise UsageError(f"unknown format {fmt!r} (valid: {', '.join(FORMATS)})")

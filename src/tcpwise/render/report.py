"""``tcpwise report``: an offline HTML gallery of every scenario, one page each, with the files behind them.

Theory of operation
-------------------
:func:`build_report` takes (scenario, run) pairs — normally every scenario of the catalogue run in the simulator
— and writes::

    DIR/index.html            gallery: one card per scenario (title, claim, pass/fail, thumbnail)
    DIR/<id>.html             the scenario page (html renderer + claim + links)
    DIR/files/<id>.svg        the diagram (also the card thumbnail)
    DIR/files/<id>.json       the run in the event schema
    DIR/files/<id>.pcap       the segments as a capture (Wireshark)
    DIR/files/<id>.mmd        the Mermaid source

All links are relative and nothing is fetched from elsewhere, so the folder works from ``file://``, zipped or
served statically. A scenario whose run raised is shown as a failing card with the error instead of taking the
whole report down; the caller gets it back in :class:`ReportResult` and exits non-zero.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from tcpwise.events import Run
from tcpwise.i18n import check_lang, label
from tcpwise.render.html import body as page_body
from tcpwise.render.html import page

__all__ = ["ReportEntry", "ReportResult", "build_report", "GALLERY_JS"]

# Gallery filter: "all" / "failing only" (progressive enhancement; the page reads fine without it).
GALLERY_JS = """
(function(){var bs=document.querySelectorAll('.filters button');
bs.forEach(function(b){b.addEventListener('click',function(){
 bs.forEach(function(o){o.setAttribute('aria-pressed',o===b?'true':'false');});
 document.body.classList.toggle('failing-only',b.dataset.filter==='failing');});});})();
"""


@dataclass
class ReportEntry:
    """One scenario of the report: its catalogue texts and either a run or the error that prevented it."""

    id: str
    title: str
    claim: str = ""
    run: Run | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.run is not None and self.run.ok


@dataclass
class ReportResult:
    index: str
    entries: list[ReportEntry] = field(default_factory=list)

    @property
    def failing(self) -> list[ReportEntry]:
        return [e for e in self.entries if not e.ok]


def _e(s: Any) -> str:
    return escape(str(s), quote=True)


def _safe(name: str) -> str:
    # scenario ids are already [a-z0-9-]; anything else would be a path trick, so flatten it
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "_"


def _write(path: str, data: str | bytes) -> None:
    mode = "wb" if isinstance(data, bytes) else "w"
    kwargs: dict[str, Any] = {} if isinstance(data, bytes) else {"encoding": "utf-8"}
    with open(path, mode, **kwargs) as f:
        f.write(data)


def _card(e: ReportEntry, lang: str) -> str:
    sid = _safe(e.id)
    if e.error is not None:
        badge = f'<span class="badge bad">{_e(label("error", lang))}</span>'
        thumb = f'<div class="thumb"><p class="detail" style="padding:1rem">{_e(e.error)}</p></div>'
        cls = "bad"
    else:
        assert e.run is not None
        run = e.run
        ok = sum(1 for c in run.checks if c.ok)
        cls = "ok" if run.ok else "bad"
        if run.checks:
            badge = (
                f'<span class="badge {cls}">{"✓" if run.ok else "✗"} {ok}/{len(run.checks)} '
                f"{_e(label('pass' if run.ok else 'fail', lang))}</span>"
            )
        else:
            badge = f'<span class="badge none">{_e(label("no_checks", lang))}</span>'
        thumb = f'<div class="thumb"><img src="files/{sid}.svg" alt="{_e(e.title)}" loading="lazy"></div>'
    return (
        f'<a class="card {cls}" href="{sid}.html" data-id="{_e(e.id)}">{thumb}<div class="body">'
        f'<h3>{_e(e.title)}</h3><div class="id">{_e(e.id)}</div><p>{_e(e.claim)}</p>{badge}</div></a>'
    )


def check_report_dir(out_dir: str) -> None:
    """Refuse, in one line and before any scenario runs, a gallery folder that cannot be one: an existing file,
    ``/dev/null`` or a FIFO, or a path under something that is not a directory (``tcpwise report -o``,
    ``tcpwise demo --report``). Missing folders are fine: :func:`build_report` creates them."""
    from tcpwise.errors import UsageError

    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"{out_dir} exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(out_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write the report to {out_dir}: {parent} is not a directory")


def build_report(
    out_dir: str, entries: Iterable[ReportEntry], *, lang: str = "en", absolute: bool = False
) -> ReportResult:
    """Write the gallery and every scenario page under ``out_dir`` (created if missing). A folder that cannot be
    written (permissions, a full disk) is a :class:`~tcpwise.errors.UsageError` in one line, for every caller."""
    from tcpwise.errors import UsageError

    try:
        return _build_report(out_dir, entries, lang, absolute)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None


def _build_report(out_dir: str, entries: Iterable[ReportEntry], lang: str, absolute: bool) -> ReportResult:
    from tcpwise.render import render

    check_lang(lang)
    files = os.path.join(out_dir, "files")
    os.makedirs(files, exist_ok=True)
    result = ReportResult(index=os.path.join(out_dir, "index.html"))
    cards: list[str] = []
    for e in entries:
        result.entries.append(e)
        sid = _safe(e.id)
        if e.error is None and e.run is not None:
            run = e.run
            _write(os.path.join(files, f"{sid}.svg"), str(render(run, "svg", absolute=absolute, lang=lang)))
            _write(os.path.join(files, f"{sid}.json"), run.to_json())
            _write(
                os.path.join(files, f"{sid}.mmd"), str(render(run, "mermaid", absolute=absolute, lang=lang))
            )
            downloads = {
                "SVG": f"files/{sid}.svg",
                "JSON": f"files/{sid}.json",
                "Mermaid": f"files/{sid}.mmd",
            }
            if any(ev.kind in ("send", "recv") and ev.segment for ev in run.events):
                _write(os.path.join(files, f"{sid}.pcap"), render(run, "pcap"))
                downloads["pcap"] = f"files/{sid}.pcap"
            content = page_body(
                run,
                absolute=absolute,
                lang=lang,
                claim=e.claim,
                back_href="index.html",
                downloads=downloads,
                title=e.title,
            )
        else:
            content = (
                f'<header><p><a href="index.html">← {_e(label("back", lang))}</a></p><h1>{_e(e.title)}</h1>'
                f'<p class="claim">{_e(e.claim)}</p></header><main><h2>{_e(label("error", lang))}</h2>'
                f"<pre>{_e(e.error)}</pre></main>"
            )
        _write(os.path.join(out_dir, f"{sid}.html"), page(f"tcpwise · {e.title}", content, lang=lang))
        cards.append(_card(e, lang))
    n_fail = len(result.failing)
    n = len(result.entries)
    summary = f"{n - n_fail}/{n} " + (label("passed", lang) if n_fail == 0 else label("pass", lang))
    gallery = (
        f'<header><h1>{_e(label("gallery", lang))}</h1><p class="meta">{_e(label("gallery_intro", lang))}</p>'
        f'<p class="meta">{_e(summary)}</p>'
        f'<div class="filters"><button type="button" data-filter="all" aria-pressed="true">'
        f'{_e(label("show_all", lang))}</button><button type="button" data-filter="failing" aria-pressed="false">'
        f"{_e(label('show_failing', lang))} ({n_fail})</button></div></header>"
        f'<main><div class="grid">{"".join(cards)}</div></main><footer>tcpwise</footer>'
    )
    _write(result.index, page(label("gallery", lang), gallery, lang=lang, script=GALLERY_JS))
    return result

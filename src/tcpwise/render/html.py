"""One self-contained HTML page per run: verdict, narrative, checks, the SVG diagram, state timeline, parameters.

Theory of operation
-------------------
The page is plain HTML with its CSS and a few lines of JavaScript inline, and the diagram inlined as SVG, so it
opens from a file, offline, and can be mailed around. The JavaScript does nothing the page needs in order to be
read; it records script errors — ``window.onerror`` plus failed resource loads, caught in the capture phase —
into ``<html data-js="...">`` ("ok" once loaded cleanly, "ERR: ..." otherwise), which the report's browser test
reads back from the DOM. UI labels follow ``lang``; check sentences and the narrative come from the run in that
language (:mod:`tcpwise.i18n`).

The state timeline lists, per host and connection, each state with the time it was entered, left and how long
it lasted — the numbers behind the coloured bands of the diagram (60 s of TIME_WAIT, a CLOSE_WAIT that never
ends).
"""

from __future__ import annotations

from html import escape
from typing import Any

from tcpwise.events import Run
from tcpwise.i18n import (
    check_claim,
    check_detail,
    conn_text,
    label,
    msg,
    narrative,
    phrase,
    run_title,
    world_text,
)
from tcpwise.render.diagram import build, states_over_time
from tcpwise.render.svg import render_svg, render_svg_folded
from tcpwise.render.svglayout import state_color

__all__ = ["render_html", "page", "CSS", "ERROR_JS"]

CSS = """
:root{--ok:#2e7d32;--bad:#c62828;--ink:#1d2433;--mute:#5b6472;--line:#e2e6ee;--bg:#f6f7fb}
*{box-sizing:border-box}
body{margin:0;font-family:DejaVu Sans,Helvetica,Arial,"Noto Sans CJK SC","PingFang SC",sans-serif;color:var(--ink);
 background:var(--bg);line-height:1.5}
header,main,footer{max-width:1180px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:1.6rem;margin:.2rem 0}
h2{font-size:1.15rem;margin:1.6rem 0 .5rem;border-bottom:1px solid var(--line);padding-bottom:.2rem}
a{color:#1f4fa8}
.meta{color:var(--mute);font-size:.9rem}
.claim{font-size:1.05rem;margin:.4rem 0}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;font-weight:bold;font-size:.85rem;color:#fff}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.none{background:#888}
table{border-collapse:collapse;background:#fff;width:100%;font-size:.92rem}
th,td{border:1px solid var(--line);padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f7}
td.num{text-align:right;font-family:DejaVu Sans Mono,Menlo,Consolas,monospace;white-space:nowrap}
td.mark{font-size:1.1rem;text-align:center;width:2.2rem}
tr.ok td.mark{color:var(--ok)}tr.bad td.mark{color:var(--bad)}tr.bad{background:#fff4f4}
.detail{color:var(--mute);font-size:.85rem}
.narrative{background:#fff;border-left:4px solid #7e57c2;padding:.6rem 1rem;margin:0}
.diagram{background:#fff;border:1px solid var(--line);overflow:auto;max-height:none}
.diagram svg{display:block}
.state{display:inline-block;padding:0 .5rem;border-radius:.7rem;font-family:DejaVu Sans Mono,Menlo,monospace;
 font-size:.82rem;font-weight:bold;border:1px solid #999}
.downloads a{margin-right:1rem}
details.unfold{margin:.6rem 0}
details.unfold>summary{cursor:pointer;color:#1f4fa8;font-weight:bold}
footer{color:var(--mute);font-size:.8rem;padding:2rem 20px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:16px;margin:16px 0 32px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;overflow:hidden;display:flex;flex-direction:column;
 text-decoration:none;color:inherit;box-shadow:0 1px 2px rgba(0,0,0,.05)}
.card:hover{box-shadow:0 3px 10px rgba(0,0,0,.12)}
.card .thumb{height:170px;border-bottom:1px solid var(--line);background:#fff;overflow:hidden}
.card .thumb img{width:100%;height:170px;object-fit:cover;object-position:top left}
.card .body{padding:.6rem .8rem}
.card h3{margin:0 0 .2rem;font-size:1rem}
.card .id{font-family:DejaVu Sans Mono,Menlo,monospace;color:var(--mute);font-size:.8rem}
.card p{margin:.3rem 0;font-size:.88rem}
.card.bad{border-color:var(--bad)}
.filters button{font:inherit;padding:.2rem .8rem;margin-right:.4rem;border:1px solid #aab;border-radius:1rem;
 background:#fff;cursor:pointer}
.filters button[aria-pressed=true]{background:#1d2433;color:#fff}
body.failing-only .card.ok{display:none}
"""

# Records script errors and failed resource loads into <html data-js>; the browser test reads it back.
ERROR_JS = """
(function(){var d=document.documentElement;
function fail(m){if(!/^ERR/.test(d.getAttribute('data-js')||'')){d.setAttribute('data-js','ERR: '+m);}}
window.addEventListener('error',function(e){
 if(e.target&&e.target!==window&&(e.target.src||e.target.href)){fail('cannot load '+(e.target.src||e.target.href));}
 else{fail(e.message||'script error');}},true);
window.addEventListener('unhandledrejection',function(e){fail('unhandled rejection: '+e.reason);});
window.addEventListener('load',function(){if(!/^ERR/.test(d.getAttribute('data-js')||'')){d.setAttribute('data-js','ok');}});
})();
"""


def _e(s: Any) -> str:
    return escape(str(s), quote=True)


def page(title: str, body: str, *, lang: str = "en", script: str = "") -> str:
    """A complete HTML document around ``body`` with the shared CSS and the error recorder."""
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (
        f'<!DOCTYPE html>\n<html lang="{html_lang}" data-js="pending">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(title)}</title>\n'
        f"<script>{ERROR_JS}</script>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        + (f"<script>{script}</script>\n" if script else "")
        + "</body>\n</html>\n"
    )


def _verdict(run: Run, lang: str) -> str:
    if not run.checks:
        return f'<span class="badge none">{_e(label("no_checks", lang))}</span>'
    ok = sum(1 for c in run.checks if c.ok)
    cls = "ok" if run.ok else "bad"
    word = label("passed", lang) if run.ok else label("failed", lang)
    return f'<span class="badge {cls}">{"✓" if run.ok else "✗"} {ok}/{len(run.checks)} {_e(word)}</span>'


def _checks(run: Run, lang: str) -> str:
    if not run.checks:
        return f"<p>{_e(label('no_checks', lang))}</p>"
    rows = []
    for c in run.checks:
        cls = "ok" if c.ok else "bad"
        text = check_detail(c, lang)
        detail = f'<div class="detail">{_e(text)}</div>' if text else ""
        rows.append(
            f'<tr class="{cls}"><td class="mark" title="{_e(label("pass" if c.ok else "fail", lang))}">'
            f"{'✓' if c.ok else '✗'}</td><td>{_e(check_claim(c, lang))}{detail}</td></tr>"
        )
    return f'<table class="checks"><tbody>{"".join(rows)}</tbody></table>'


def _state(name: str) -> str:
    return f'<span class="state" style="background:{state_color(name)}">{_e(name)}</span>'


def _dur(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    return f"{seconds * 1000:.1f} ms"


def _timeline(run: Run, lang: str) -> str:
    d = build(run, lang=lang)
    rows = []
    for li, lane in enumerate(d.lanes):
        per_conn = states_over_time(d, li)
        for conn, intervals in per_conn.items():
            for t0, t1, state in intervals:
                if t1 <= t0 and len(intervals) > 1:
                    continue  # passed through within one instant (CLOSED -> SYN_SENT at t=0): no time spent
                open_end = t1 >= d.t_end and intervals[-1] == (t0, t1, state)
                dur = f"{_dur(t1 - t0)}" + (f" ({_e(label('until_end', lang))})" if open_end else "")
                rows.append(
                    f"<tr><td>{_e(lane.name)}</td><td>{_e(conn_text(conn, lang))}</td><td>{_state(state)}</td>"
                    f'<td class="num">{t0:.3f}</td><td class="num">{dur}</td></tr>'
                )
    if not rows:
        return f"<p>{_e(label('no_events', lang))}</p>"
    head = (
        f"<tr><th>{_e(label('host', lang))}</th><th>{_e(label('conn', lang))}</th><th>{_e(label('state', lang))}</th>"
        f"<th>{_e(label('time_s', lang))}</th><th>{_e(label('duration', lang))}</th></tr>"
    )
    return f'<table class="timeline"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _kv(items: dict[str, Any], lang: str) -> str:
    if not items:
        return ""
    # names and values are identifiers (what --set takes, what --format json carries): translate="no" tells
    # people, browsers' translators and the zh test that they stay as they are
    rows = "".join(
        f'<tr translate="no"><td>{_e(k)}</td><td class="num">{_e(v)}</td></tr>' for k, v in items.items()
    )
    return (
        f'<table class="kv"><thead><tr><th>{_e(label("name", lang))}</th><th>{_e(label("value", lang))}</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


def body(
    run: Run,
    *,
    absolute: bool = False,
    lang: str = "en",
    claim: str | None = None,
    back_href: str | None = None,
    downloads: dict[str, str] | None = None,
    title: str | None = None,
    fold: bool = True,
) -> str:
    """The page content for ``run`` (used by :func:`render_html` and the report). A folded bulk transfer comes
    with a ``<details>`` control that shows the diagram with every segment."""
    # run_scenario (and the lab) record the catalogue's Chinese title in the summary
    zh_title = (run.summary.get("title_zh") or phrase(run.title, lang)) if lang == "zh" else None
    title = title or zh_title or run.title or run.scenario
    parts = ["<header>"]
    if back_href:
        parts.append(f'<p><a href="{_e(back_href)}">← {_e(label("back", lang))}</a></p>')
    parts.append(f"<h1>{_e(title)}</h1>")
    world = f"{_e(label('world', lang))} {_e(world_text(run.world, lang))}"
    meta = f'<span translate="no">{_e(run.scenario)}</span> · {world}'
    if run.seed is not None:
        meta += f" · {_e(label('seed', lang))} {_e(run.seed)}"
    parts.append(f'<div class="meta">{meta} · {_verdict(run, lang)}</div>')
    if claim:
        parts.append(f'<p class="claim">{_e(claim)}</p>')
    parts.append("</header>\n<main>")
    text = narrative(run.summary, lang)
    if text:
        parts.append(f'<h2>{_e(label("summary", lang))}</h2><p class="narrative">{_e(text)}</p>')
    parts.append(f"<h2>{_e(label('checks', lang))}</h2>{_checks(run, lang)}")
    parts.append(f"<h2>{_e(label('series' if run.series and not run.events else 'diagram', lang))}</h2>")
    svg, folded = render_svg_folded(run, absolute=absolute, lang=lang, header=False, fold=fold)
    parts.append(f'<div class="diagram">{svg}</div>')
    if folded:
        # the bulk transfer summarised above, segment by segment, one click away (no script needed)
        full = render_svg(run, absolute=absolute, lang=lang, header=False, fold=False)
        parts.append(
            f'<details class="unfold"><summary>{_e(msg("unfold_count", lang, n=folded))}</summary>'
            f'<div class="diagram">{full}</div></details>'
        )
    if run.events:
        parts.append(f"<h2>{_e(label('state_timeline', lang))}</h2>{_timeline(run, lang)}")
    params = dict(run.params)
    parts.append(f"<h2>{_e(label('parameters', lang))}</h2>{_kv(params, lang) or '<p>—</p>'}")
    values = run.summary.get("values") or {}
    if values:
        parts.append(f"<h2>{_e(label('values', lang))}</h2>{_kv(dict(values), lang)}")
    if downloads:
        links = "".join(f'<a href="{_e(href)}">{_e(name)}</a>' for name, href in downloads.items())
        parts.append(f'<h2>{_e(label("downloads", lang))}</h2><p class="downloads">{links}</p>')
    parts.append("</main>\n<footer>tcpwise</footer>")
    return "\n".join(parts)


def render_html(
    run: Run,
    *,
    absolute: bool = False,
    lang: str = "en",
    claim: str | None = None,
    back_href: str | None = None,
    downloads: dict[str, str] | None = None,
    fold: bool = True,
) -> str:
    """A standalone page for ``run``."""
    content = body(
        run, absolute=absolute, lang=lang, claim=claim, back_href=back_href, downloads=downloads, fold=fold
    )
    return page(f"tcpwise · {run_title(run, lang)}", content, lang=lang)

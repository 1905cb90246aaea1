"""Measure SVG pictures in a real browser: every label's box as Chromium lays it out (getBoundingClientRect of the
``<text>`` and solid shapes inside each ``<g class="lbl">``), and every CJK glyph's advance
(getSubStringLength).

:func:`measure` puts many SVGs on one page (one Chromium start for all of them), runs a script that writes its
findings as JSON into the page, and reads them back with ``--dump-dom``. Findings per picture:

* ``overlaps`` -- pairs of ink boxes from two different labels that intersect (by more than 0.5 px each way);
* ``clipped`` -- ink boxes that stick out of the SVG's own box;
* ``loose`` -- ``<text>`` elements outside any ``g.lbl`` (they would escape the overlap check);
* ``tofu`` -- CJK ideographs, kana, hangul (or private-use characters) whose advance is not one em: the .notdef box of a missing font is
  0.6 em wide in DejaVu, a CJK ideograph is 1 em in Noto Sans CJK;
* ``labels`` -- how many labels were measured (a picture with none would pass vacuously).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")

_SCRIPT = r"""
(function(){
// ideographs, kana, hangul and private-use characters are one em wide in a CJK font; punctuation may be set
// half-width (CSS text-spacing-trim), so it is not checked
var CJK=/[\u3041-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7A3\uE000-\uF8FF\uF900-\uFAFF]/;
function ink(g){var out=[];g.querySelectorAll('text, .tw-solid').forEach(function(e){
  var r=e.getBoundingClientRect(); if(r.width>0&&r.height>0){out.push({x0:r.left,y0:r.top,x1:r.right,y1:r.bottom,
  t:(e.textContent||e.getAttribute('class')||'').slice(0,60)});}});return out;}
var res={};
document.querySelectorAll('div.case').forEach(function(div){
  var name=div.getAttribute('data-name'); var svg=div.querySelector('svg'); var sr=svg.getBoundingClientRect();
  var groups=Array.prototype.slice.call(svg.querySelectorAll('g.lbl'));
  var items=[]; groups.forEach(function(g,gi){ink(g).forEach(function(b){b.g=gi;items.push(b);});});
  items.sort(function(a,b){return a.y0-b.y0;});
  var overlaps=[], clipped=[], tofu=[], loose=[];
  for(var i=0;i<items.length;i++){var a=items[i];
    if(a.x0<sr.left-0.5||a.y0<sr.top-0.5||a.x1>sr.right+0.5||a.y1>sr.bottom+0.5){clipped.push(a.t);}
    for(var j=i+1;j<items.length;j++){var b=items[j]; if(b.y0>=a.y1-0.5)break;
      if(a.g===b.g)continue;
      if(Math.min(a.x1,b.x1)-Math.max(a.x0,b.x0)>0.5&&Math.min(a.y1,b.y1)-Math.max(a.y0,b.y0)>0.5){
        overlaps.push([a.t,b.t,Math.round(a.x0),Math.round(a.y0-sr.top)]);}}}
  svg.querySelectorAll('text').forEach(function(t){
    if(!t.closest('g.lbl')){loose.push(t.textContent.slice(0,60));}
    // SVG collapses white space by default: index characters the way getSubStringLength counts them
    var s=t.textContent.replace(/[\n\r]/g,'').replace(/\t/g,' ').trim().replace(/ +/g,' ');
    var size=parseFloat(getComputedStyle(t).fontSize), n=t.getNumberOfChars();
    for(var k=0;k<s.length&&k<n;k++){ if(CJK.test(s[k])){ var w=t.getSubStringLength(k,1);
      if(Math.abs(w-size)>0.6){tofu.push(s[k]+' '+w.toFixed(2)+'/'+size+' in '+s.slice(0,40));break;}}}});
  res[name]={labels:groups.length,overlaps:overlaps.slice(0,20),n_overlaps:overlaps.length,
             clipped:clipped.slice(0,20),tofu:tofu.slice(0,20),loose:loose.slice(0,20)};
});
document.getElementById('result').textContent=JSON.stringify(res);
})();
"""


def page(svgs: dict[str, str]) -> str:
    cases = "\n".join(
        f'<div class="case" data-name="{html.escape(name)}">{_strip_decl(svg)}</div>'
        for name, svg in svgs.items()
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{margin:0}div.case{margin:0 0 20px}'
        "svg{display:block}</style></head><body>"
        f'{cases}<pre id="result">pending</pre><script>{_SCRIPT}</script></body></html>'
    )


def _strip_decl(svg: str) -> str:
    return re.sub(r"^<\?xml[^>]*>\s*", "", svg)


def measure(svgs: dict[str, str], workdir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Findings per picture (see the module docstring). Raises if Chromium fails or the script did not run."""
    assert CHROMIUM is not None
    tmp = Path(workdir or tempfile.mkdtemp(prefix=f"twbox{os.getpid()}-"))
    f = tmp / "boxes.html"
    f.write_text(page(svgs), encoding="utf-8")
    profile = tmp / "profile"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--window-size=1600,1200", "--dump-dom", f.as_uri()],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    m = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert m is not None, proc.stderr[-2000:]
    text = html.unescape(m.group(1))
    assert text != "pending", "the measuring script did not run"
    result: dict[str, dict[str, Any]] = json.loads(text)
    if workdir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def problems(found: dict[str, dict[str, Any]]) -> list[str]:
    """One line per picture that has an overlap, a clipped or loose label, tofu, or no labels at all."""
    out = []
    for name, r in found.items():
        bad = {k: r[k] for k in ("overlaps", "clipped", "tofu", "loose") if r[k]}
        if bad or r["labels"] == 0:
            out.append(
                f"{name}: {r['labels']} labels, {r['n_overlaps']} overlaps; {json.dumps(bad, ensure_ascii=False)[:600]}"
            )
    return out

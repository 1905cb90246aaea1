"""Generate ``src/tcpwise/render/fontdata.py``: advance widths of the fonts the SVG names, read from the font files.

The SVG renderer measures every label before placing it, so it needs the advance width of each character in the
font the browser will use. Its style names DejaVu Sans and DejaVu Sans Mono first (fonts-dejavu-core, present on
every Debian machine) and Noto Sans CJK SC for Chinese (fonts-noto-cjk, installed by ``make``). This script reads
the ``head``, ``hhea``, ``hmtx`` and ``cmap`` tables of the DejaVu faces (OpenType spec, "Font file" and the
table chapters) and writes the widths of the character ranges tcpwise draws, in units of the em. CJK ideographs
and full-width forms are one em in Noto Sans CJK (checked here too), so they need no table.

Run it again when the font package changes: ``python tools/gen_fontmetrics.py`` (``make docs-img`` does not: the
table is source, reviewed like code).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FACES = {
    "sans": DEJAVU / "DejaVuSans.ttf",
    "sans-bold": DEJAVU / "DejaVuSans-Bold.ttf",
    "sans-oblique": DEJAVU / "DejaVuSans-Oblique.ttf",
    "mono": DEJAVU / "DejaVuSansMono.ttf",
    "mono-bold": DEJAVU / "DejaVuSansMono-Bold.ttf",
}
# What tcpwise draws: ASCII, Latin-1 and Latin Extended-A, general punctuation, arrows, maths, technical,
# box drawing, geometric shapes, miscellaneous symbols and dingbats (✓ ✗ ✕ ◯ ⏱ ≈ … → —).
RANGES = [(0x20, 0x7E), (0xA0, 0x17F), (0x2000, 0x206F), (0x2190, 0x23FF), (0x2500, 0x27BF)]
OUT = Path(__file__).resolve().parent.parent / "src" / "tcpwise" / "render" / "fontdata.py"


class Font:
    """The few tables of one OpenType face (a .ttf, or face ``index`` of a .ttc collection)."""

    def __init__(self, path: Path, index: int = 0) -> None:
        self.data = path.read_bytes()
        base = 0
        if self.data[:4] == b"ttcf":
            (n,) = struct.unpack_from(">I", self.data, 8)
            if index >= n:
                raise ValueError(f"{path}: no face {index}")
            (base,) = struct.unpack_from(">I", self.data, 12 + 4 * index)
        (num_tables,) = struct.unpack_from(">H", self.data, base + 4)
        self.tables: dict[str, int] = {}
        for i in range(num_tables):
            tag, _check, off, _length = struct.unpack_from(">4sIII", self.data, base + 12 + 16 * i)
            self.tables[tag.decode("latin-1")] = off
        self.upem = struct.unpack_from(">H", self.data, self.tables["head"] + 18)[0]
        hhea = self.tables["hhea"]
        self.ascender, self.descender = struct.unpack_from(">hh", self.data, hhea + 4)
        self.n_hmetrics = struct.unpack_from(">H", self.data, hhea + 34)[0]
        self.cmap = self._cmap()

    def name(self) -> str:
        """The family name (name ID 1, Windows Unicode)."""
        off = self.tables["name"]
        _fmt, count, strings = struct.unpack_from(">HHH", self.data, off)
        for i in range(count):
            pid, eid, _lang, nid, length, soff = struct.unpack_from(">HHHHHH", self.data, off + 6 + 12 * i)
            if pid == 3 and eid == 1 and nid == 1:
                raw = self.data[off + strings + soff : off + strings + soff + length]
                return raw.decode("utf-16-be")
        return "?"

    def _cmap(self) -> dict[int, int]:
        off = self.tables["cmap"]
        (n,) = struct.unpack_from(">H", self.data, off + 2)
        best: tuple[int, int] | None = None
        for i in range(n):
            pid, eid, sub = struct.unpack_from(">HHI", self.data, off + 4 + 8 * i)
            fmt = struct.unpack_from(">H", self.data, off + sub)[0]
            if (pid, eid) in ((3, 10), (0, 4)) and fmt == 12:
                best = (fmt, off + sub)
            elif (pid, eid) in ((3, 1), (0, 3)) and fmt == 4 and best is None:
                best = (fmt, off + sub)
        if best is None:
            raise ValueError("no Unicode cmap")
        fmt, at = best
        return self._fmt12(at) if fmt == 12 else self._fmt4(at)

    def _fmt4(self, at: int) -> dict[int, int]:
        seg_x2 = struct.unpack_from(">H", self.data, at + 6)[0]
        segs = seg_x2 // 2
        ends = struct.unpack_from(f">{segs}H", self.data, at + 14)
        starts = struct.unpack_from(f">{segs}H", self.data, at + 16 + seg_x2)
        deltas = struct.unpack_from(f">{segs}h", self.data, at + 16 + 2 * seg_x2)
        ro_at = at + 16 + 3 * seg_x2
        offsets = struct.unpack_from(f">{segs}H", self.data, ro_at)
        out: dict[int, int] = {}
        for i in range(segs):
            for c in range(starts[i], ends[i] + 1):
                if c == 0xFFFF:
                    continue
                if offsets[i] == 0:
                    g = (c + deltas[i]) & 0xFFFF
                else:
                    addr = ro_at + 2 * i + offsets[i] + 2 * (c - starts[i])
                    g = struct.unpack_from(">H", self.data, addr)[0]
                    if g:
                        g = (g + deltas[i]) & 0xFFFF
                if g:
                    out[c] = g
        return out

    def _fmt12(self, at: int) -> dict[int, int]:
        (n_groups,) = struct.unpack_from(">I", self.data, at + 12)
        out: dict[int, int] = {}
        for i in range(n_groups):
            start, end, glyph = struct.unpack_from(">III", self.data, at + 16 + 12 * i)
            if end - start > 70000:
                continue
            for c in range(start, end + 1):
                out[c] = glyph + c - start
        return out

    def advance(self, cp: int) -> int | None:
        g = self.cmap.get(cp)
        if g is None:
            return None
        i = min(g, self.n_hmetrics - 1)
        return int(struct.unpack_from(">H", self.data, self.tables["hmtx"] + 4 * i)[0])


def main() -> int:
    missing = [str(p) for p in [*FACES.values(), NOTO_CJK] if not p.exists()]
    if missing:
        print(
            "missing font files (apt-get install fonts-dejavu-core fonts-noto-cjk):",
            *missing,
            file=sys.stderr,
        )
        return 1
    faces = []
    for i in range(16):
        try:
            faces.append(Font(NOTO_CJK, i))
        except ValueError:
            break
    cjk = next(f for f in faces if f.name().endswith(" SC"))
    for ch in "中文时间检查，：（）":
        adv = cjk.advance(ord(ch))
        assert adv == cjk.upem, f"{cjk.name()}: {ch!r} is {adv}/{cjk.upem} em, the renderer assumes 1 em"
    fonts = {face: Font(path) for face, path in FACES.items()}
    sans = fonts["sans"]
    assert all(f.upem == sans.upem for f in fonts.values())
    lines = [
        '"""Advance widths of the fonts the SVG names (generated by tools/gen_fontmetrics.py: do not edit).',
        "",
        "``WIDTHS[face][first]`` holds the advance widths, in font units (``UPEM`` to the em), of the characters",
        "``first, first+1, ...`` of one range, space-separated; ``0`` means the face has no glyph there.",
        "``ASCENT``/``DESCENT`` are the hhea line metrics in em. CJK ideographs and full-width forms are 1 em in",
        f"{cjk.name()} (checked by the generator), so they need no table.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "FAMILIES: dict[str, str] = {",
    ]
    for face, f in fonts.items():
        lines.append(f'    "{face}": "{f.name()}",')
    lines.append("}")
    lines.append(f'CJK_FAMILY = "{cjk.name()}"')
    lines.append(f"UPEM = {sans.upem}")
    lines.append(f"ASCENT = {sans.ascender / sans.upem:.4f}")
    lines.append(f"DESCENT = {-sans.descender / sans.upem:.4f}")
    lines.append("WIDTHS: dict[str, dict[int, str]] = {")
    for face, f in fonts.items():
        lines.append(f'    "{face}": {{')
        for lo, hi in RANGES:
            ws = " ".join(str(f.advance(c) or 0) for c in range(lo, hi + 1))
            lines.append(f'        0x{lo:04X}: "{ws}",')
        lines.append("    },")
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The architecture as code: rules that keep the one-codec / one-schema / layered design from eroding.

* the layer order (pyproject ``[tool.importlinter]``, checked by import-linter, which ``make lint`` runs too);
* the sans-IO core: nothing under wire/, endpoint/ or sim/ touches sockets, clocks, threads or randomness;
* no module imports another module's ``_private`` names;
* 32-bit sequence arithmetic lives in ``tcpwise.wire.seq`` only (everything else calls it);
* every numbered part of the tree is reachable: no ``find_spec`` guards that let an area silently vanish.

Each rule has a planted-bug twin below that shows the check can fail.
"""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "tcpwise"

SANS_IO = ("wire", "endpoint", "sim")
BANNED_IN_CORE = {"socket", "asyncio", "time", "random", "select", "threading", "subprocess", "os"}
# Places that mask with 0xFFFFFFFF for something other than sequence arithmetic, each with its reason.
MASK_ALLOWED = {
    "wire/seq.py": "the one home of mod-2^32 arithmetic",
    "wire/pcap.py": "pcap record fields are 32-bit (seconds, lengths)",
    "wire/checksum.py": "one's-complement sums",
    "trace/zeek.py": "uid hash mixing (not a sequence number)",
    "trace/decode.py": "packing two 32-bit halves into one 64-bit key",
    "trace/tracker.py": "wraps relative byte counts of the columnar tracker (uses wire.seq semantics)",
    "endpoint/isn.py": "the ISN is M + F() mod 2^32 by definition (RFC 6528)",
}


def _modules() -> list[tuple[pathlib.Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(SRC.rglob("*.py"))]


def _module_name(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")


def core_io_imports(modules: list[tuple[pathlib.Path, ast.Module]]) -> list[str]:
    bad = []
    for path, tree in modules:
        rel = path.relative_to(SRC)
        if rel.parts[0] not in SANS_IO:
            continue
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
            for n in BANNED_IN_CORE.intersection(names):
                bad.append(f"{rel}:{node.lineno} imports {n}")
    return bad


def private_imports(modules: list[tuple[pathlib.Path, ast.Module]]) -> list[str]:
    bad = []
    for path, tree in modules:
        me = _module_name(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tcpwise"):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and node.module != me:
                        bad.append(
                            f"{path.relative_to(SRC)}:{node.lineno} imports {node.module}.{alias.name}"
                        )
    return bad


def _is_u32_mask(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and node.value == 0xFFFFFFFF:
        return True
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.LShift)
        and isinstance(node.left, ast.Constant)
        and node.left.value == 1
        and isinstance(node.right, ast.Constant)
        and node.right.value == 32
    )


def mask_arithmetic(modules: list[tuple[pathlib.Path, ast.Module]]) -> list[str]:
    bad = []
    for path, tree in modules:
        rel = str(path.relative_to(SRC))
        if rel in MASK_ALLOWED:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.BitAnd | ast.Mod)
                and (_is_u32_mask(node.right) or _is_u32_mask(node.left))
            ):
                bad.append(f"{rel}:{node.lineno}")
    return bad


def test_layers_hold() -> None:
    exe = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    assert exe is not None, "import-linter is part of the dev extra"
    res = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:]


def test_core_is_sans_io() -> None:
    assert core_io_imports(_modules()) == []


def test_no_private_imports_across_modules() -> None:
    assert private_imports(_modules()) == []


def test_sequence_arithmetic_lives_in_wire_seq() -> None:
    assert mask_arithmetic(_modules()) == []


def test_no_area_can_vanish_silently() -> None:
    offenders = [
        str(p.relative_to(SRC))
        for p, tree in _modules()
        if "find_spec(" in ast.unparse(tree) and p.name != "cli.py"
    ]
    assert offenders == []


# --- the checks can fail ------------------------------------------------------------------------------------
PLANTED = """
import time
from tcpwise.wire.seq import _HALF
x = (a + 1) & 0xFFFFFFFF
"""


@pytest.mark.parametrize(
    "check,where",
    [
        (core_io_imports, "endpoint/planted.py"),
        (private_imports, "render/planted.py"),
        (mask_arithmetic, "render/planted.py"),
    ],
)
def test_planted_bug_turns_each_rule_red(check: object, where: str) -> None:
    tree = ast.parse(PLANTED)
    assert callable(check)
    assert check([(SRC / where, tree)]) != []

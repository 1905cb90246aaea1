"""The codec is sans-IO: no module under tcpwise/wire imports socket, asyncio, time, random or select."""

from __future__ import annotations

import ast
from pathlib import Path

import tcpwise.wire

FORBIDDEN = {"socket", "asyncio", "time", "random", "select", "selectors", "subprocess"}


def test_wire_imports_no_io_modules() -> None:
    root = Path(tcpwise.wire.__file__).parent
    files = sorted(root.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_public_names_are_exported() -> None:
    for name in tcpwise.wire.__all__:
        assert hasattr(tcpwise.wire, name), name
    assert len(set(tcpwise.wire.__all__)) == len(tcpwise.wire.__all__)

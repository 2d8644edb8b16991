"""The house: the engine's core imports nothing from the telemetry package, the demo uses only
public names, and no module grows back into a big room."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "graphai"
CORE = ("graphai.graph", "graphai._runner", "graphai.callback", "graphai._stream", "graphai._channel")
PUBLIC = {
    "graphai",
    "graphai.telemetry",
    "graphai.telemetry.env",
    "graphai.telemetry.names",
    "graphai.telemetry.logging",
    "graphai.telemetry.setup",
    "graphai.telemetry.testing",
}
MAX_LINES = 400


def _module_file(name: str) -> Path:
    rel = Path(*name.split("."))
    pkg = PKG.parent / rel / "__init__.py"
    return pkg if pkg.exists() else PKG.parent / rel.with_suffix(".py")


def _top_level_imports(name: str) -> set[str]:
    """graphai modules imported at module level (not inside functions: lazy imports)."""
    path = _module_file(name)
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in tree.body:
        stmts = [node]
        if isinstance(node, ast.If):  # TYPE_CHECKING blocks import nothing at run time
            continue
        for st in stmts:
            if isinstance(st, ast.Import):
                out |= {a.name for a in st.names if a.name.startswith("graphai")}
            elif isinstance(st, ast.ImportFrom) and st.module and st.module.startswith("graphai"):
                out.add(st.module)
                for a in st.names:
                    sub = f"{st.module}.{a.name}"
                    if _module_file(sub).exists():
                        out.add(sub)
    return out


def _closure(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        mod = todo.pop()
        if mod in seen or not _module_file(mod).exists():
            continue
        seen.add(mod)
        todo.extend(_top_level_imports(mod))
    return seen


@pytest.mark.parametrize("module", CORE)
def test_core_imports_nothing_from_telemetry(module: str) -> None:
    reached = _closure(module)
    assert module in reached
    assert sorted(m for m in reached if m.startswith("graphai.telemetry")) == []


def test_demo_imports_only_public_names() -> None:
    private = []
    for path in sorted((PKG / "_demo").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            mods: list[str] = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [node.module]
            for m in mods:
                if m.startswith("graphai") and m not in PUBLIC and not m.startswith("graphai._demo"):
                    private.append(f"{path.name}: {m}")
    assert private == []


def test_no_big_rooms() -> None:
    sizes = {
        str(p.relative_to(PKG.parent)): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")
    }
    assert len(sizes) > 30
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_no_big_classes() -> None:
    big = {}
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                n = node.end_lineno - node.lineno + 1
                if n > 250:
                    big[f"{path.relative_to(PKG.parent)}:{node.name}"] = n
    assert big == {}

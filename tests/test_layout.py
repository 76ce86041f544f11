"""The package reads as its architecture (docs: README "Where each decision is made").

One folder per area; a folder's ``__init__`` is its public face and its ``_private`` modules stay
inside it; imports point down (no cycles, imports inside functions included); the deployed
package never imports the tests or the demo; no module grows past what one person can read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "shared"
AREAS = ("decide", "llm", "databricks", "notify", "store", "learning", "app", "commands")
MAX_TOP_MODULES = 14
MAX_LINES = 700


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of ours that ``name`` imports, at the top or inside a function."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _ours(imports: set[str]) -> set[str]:
    return {i for i in imports if i in MODULES}


def test_top_of_the_package_is_small_and_every_area_has_a_folder():
    top = [p for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_MODULES, sorted(p.name for p in top)
    for area in AREAS:
        assert (PACKAGE / area / "__init__.py").is_file(), f"shared/{area}/ is missing"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_too_long(name):
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES})"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_the_product_never_imports_tests_or_demo(name):
    bad = {i for i in _imports(name, MODULES[name]) if i.split(".")[0] in ("tests", "demo")}
    assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_private_modules_stay_inside_their_folder(name):
    folder = name.rpartition(".")[0] if MODULES[name].name != "__init__.py" else name
    for imported in _ours(_imports(name, MODULES[name])):
        head, _, last = imported.rpartition(".")
        if last.startswith("_") and not last.startswith("__"):
            assert head == folder, f"{name} reaches into {imported}, private to {head}"


def test_no_import_cycle_among_the_packages_modules():
    graph = {name: _ours(_imports(name, path)) - {name} for name, path in MODULES.items()}
    # importing a.b.c imports a.b first: an edge to a package's submodule is an edge to it too
    for name in list(graph):
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


def test_the_deciding_area_is_pure():
    for name, path in MODULES.items():
        if name.startswith("shared.decide"):
            bad = {i for i in _imports(name, path)
                   if i.split(".")[0] in ("azure", "requests", "openai", "sqlite3", "socket", "http", "urllib")}
            assert not bad, f"{name} imports {sorted(bad)}"

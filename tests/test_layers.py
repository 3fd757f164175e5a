"""The layers of guidekit/: no import cycle among its modules (imports inside functions count too), and no
import of a plugin package (guidekit_adm, guidekit_mnist16 ...) anywhere in the core."""

from __future__ import annotations

import ast
from pathlib import Path

import guidekit

ROOT = Path(guidekit.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under guidekit/ (a package is its __init__.py)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that ``name`` imports anywhere in its body, as written (``from .x import y``
    names ``x.y`` when y is a module, else ``x``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                targets.add(sub if sub in modules else module)
    return {t for t in targets if t in modules and t != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """One import loop start -> ... -> start inside a cycle, for the failure message."""
    trail, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[trail[-1]] if w in members)
        back = [w for w in nxt if w == start]
        if back or not nxt:
            return trail + back
        step = next((w for w in nxt if w not in seen), nxt[0])
        if step in seen:
            return trail + [step]
        trail.append(step)
        seen.add(step)


def test_no_import_cycle_among_guidekit_modules():
    graph = import_graph()
    assert len(graph) > 50 and "guidekit.cli" in graph  # the walk found the package
    loops = [" -> ".join(_path(graph, c[0], set(c))) for c in cycles(graph)]
    assert not loops, "import cycles in guidekit/:\n" + "\n".join(loops)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert _path(graph, "a", {"a", "b", "c"}) == ["a", "b", "c", "a"]


def test_function_level_imports_count(tmp_path):
    """An import inside a function is an edge as much as one at the top."""
    modules = {"pkg.x": tmp_path / "x.py", "pkg.y": tmp_path / "y.py"}
    modules["pkg.x"].write_text("def f():\n    from .y import g\n    return g\n")
    assert _imported("pkg.x", modules["pkg.x"], modules) == {"pkg.y"}


def test_the_core_imports_no_plugin_package():
    offenders = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{name}:{node.lineno} imports {n}" for n in names if n.startswith("guidekit_")]
    assert not offenders, offenders

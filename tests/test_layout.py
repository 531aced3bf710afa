"""The layout tells the story (DESIGN.md): layers call downward only, and files stay small.

* **No import cycles between parts.** Every module under ``src/cnnkit`` is parsed with ``ast``; every
  import (module level, inside functions, under ``TYPE_CHECKING``) is mapped to the part it lands in:
  a subpackage (``analyze``, ``classic``, ``cli``, ``data``, ``engine``, ``evaluate``, ``explain``,
  ``models``, ``transfer``), a top-level module (``config``, ``errors``, ``io``, ``run``) or the package
  root ``cnnkit`` (``__init__.py``, the public API, which imports most parts). The graph of parts must
  be acyclic; a failure prints each cycle with the exact import lines that close it.
* **No source file over 450 lines**, except ``classic/reference.py`` (the NumPy reference layers, one
  place for all the lecture's layer maths).

"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "cnnkit"
MAX_LINES = 450
LONG_ALLOWED = {"classic/reference.py"}  # the NumPy reference layers

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    p = SRC.joinpath(*dotted.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _part(dotted: str) -> str | None:
    """The part of cnnkit a module belongs to: its first name below ``cnnkit``; ``cnnkit`` for the root."""
    names = dotted.split(".")
    if names[0] != "cnnkit":
        return None
    return names[1] if len(names) > 1 else "cnnkit"


def _imports(path: Path) -> list[tuple[str, int, str]]:
    """(imported cnnkit module, line, source text) for every import in a file, wherever it sits."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg itself.
            targets = [f"{origin}.{a.name}" if _is_module(f"{origin}.{a.name}") else origin for a in node.names]
        else:
            continue
        found += [(t, node.lineno, ast.unparse(node)) for t in dict.fromkeys(targets)]
    return found


def _graph() -> dict[tuple[str, str], list[str]]:
    """Edges between parts, each with the import lines that make it."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PKG.rglob("*.py")):
        src = _part(_module_name(path))
        for target, line, text in _imports(path):
            dst = _part(target)
            where = f"{path.relative_to(SRC)}:{line}: {text}"
            if dst is not None and dst != src and where not in edges[(src, dst)]:
                edges[(src, dst)].append(where)
    return edges


def _cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one part (Tarjan), each sorted."""
    succ: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
        succ.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return out


def _simple_cycles(comp: list[str], edges) -> list[list[str]]:
    """Every elementary cycle inside one component, each starting at its smallest part."""
    succ = defaultdict(set)
    for a, b in edges:
        if a in comp and b in comp:
            succ[a].add(b)
    out = []

    def walk(path: list[str]) -> None:
        for w in sorted(succ[path[-1]]):
            if w == path[0]:
                out.append([*path, w])
            elif w not in path and w > path[0]:
                walk([*path, w])

    for start in sorted(comp):
        walk([start])
    return out


def _describe(cycles, edges) -> str:
    lines = []
    for comp in cycles:
        lines.append("cycle between " + ", ".join(comp) + ":")
        lines += ["  " + " -> ".join(c) for c in _simple_cycles(comp, edges)]
        lines.append("  made by these imports:")
        for (a, b), where in sorted(edges.items()):
            if a in comp and b in comp:
                lines.append(f"    {a} -> {b}")
                lines += [f"        {w}" for w in where]
    return "\n".join(lines)


def test_the_import_graph_sees_every_kind_of_import():
    edges = _graph()
    assert ("models", "errors") in edges  # module level, relative
    assert ("cnnkit", "engine") in edges and ("cnnkit", "models") in edges  # the public API imports its parts
    assert ("cli", "_version") in edges  # `from .._version import __version__`, inside a function
    # Imports inside functions count too (the CLI and the API import most parts lazily).
    nested = 0
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {n.lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
        nested += sum(1 for _, line, _ in _imports(path) if line not in top)
    assert nested > 20


def test_no_import_cycle_between_parts():
    edges = _graph()
    cycles = _cycles(edges)
    if cycles:
        print(_describe(cycles, edges))
    assert not cycles, f"import cycles between parts (printed above): {cycles}"


def _long_files() -> dict[str, int]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in LONG_ALLOWED:
            out[rel] = n
    return out


def test_no_source_file_over_450_lines():
    long = _long_files()
    assert not long, f"over {MAX_LINES} lines: {long}"

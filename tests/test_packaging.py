"""Dependencies are declared honestly: every third-party package cnnkit imports is in pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}

    extras = set().union(*(names(v) for v in project["optional-dependencies"].values()))
    return names(project["dependencies"]), extras


def _imported_top_levels() -> set[str]:
    mods: set[str] = set()
    for f in (ROOT / "src" / "cnnkit").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return mods - set(sys.stdlib_module_names) - {"cnnkit", "__future__"}


def test_every_imported_package_is_declared():
    required, extras = _declared()
    dists = packages_distributions()
    missing = []
    for mod in sorted(_imported_top_levels()):
        names = {d.lower().replace("_", "-") for d in dists.get(mod, [mod])}
        if not names & (required | extras):
            missing.append(f"{mod} ({', '.join(sorted(names))})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_no_upper_pins_on_runtime_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = [r for r in project["dependencies"] if "<" in r or "==" in r]
    assert not pinned, f"upper pins block patch releases: {pinned}"

"""The shape of the code, read from the source: imports run one way.

The import graph is built with ``ast`` from every module of ``nngeo_core``, counting imports inside
functions as well as those at the top (a lazy import hides a cycle from Python, not from this
test). ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
The implicit import of a parent package (Python runs ``a/__init__`` before ``a.b``) is not an
edge: a package's ``__init__`` re-exporting its modules is the one-way registry pattern.
"""

from __future__ import annotations

import ast
import functools
import io
import tokenize
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "nngeo_core"

# layers, bottom first (the README's Architecture picture): a module may import its own layer and
# the ones below, never above. A name is a module or package under nngeo_core; the longest match
# decides (``pruning.jobs``, the prune-sweep job kind, sits with the job system, not with pruning).
LAYERS: list[tuple[str, ...]] = [
    ("errors", "settings", "threads", "registry", "params", "progress", "specs", "analysis_base", "store"),
    ("models", "data", "user_index", "checkpoint", "train", "runs"),
    ("topology", "curvature", "geometry", "pruning"),
    ("analyses", "defaults", "figures", "uploads", "export", "cli_args", "catalogue", "data_cli"),
    ("jobs", "pruning.jobs", "pruning.cli", "analyse_cli", "export_cli", "reproduce"),
    ("dashboard", "cli", "jobs.cli", "reproduce.cli", "testing", "__main__"),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


MODULES = modules()


def is_package(name: str, mods: dict[str, Path]) -> bool:
    return mods[name].name == "__init__.py"


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import statement in the module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if is_package(name, mods) else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, [alias.name for alias in node.names], node.lineno))
    return out


@functools.cache
def import_graph() -> nx.DiGraph:
    mods = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for name, path in mods.items():
        for target, names, _ in imports_of(name, path, mods):
            if not target.startswith(PACKAGE):
                continue
            hits = [f"{target}.{n}" for n in names if f"{target}.{n}" in mods]
            if target in mods and len(hits) < len(names):
                hits.append(target)
            for hit in hits or ([target] if target in mods else []):
                if hit != name:
                    graph.add_edge(name, hit)
    return graph


def test_the_graph_sees_every_module_and_real_edges():
    graph = import_graph()
    assert "nngeo_core.specs" in graph and "nngeo_core.store" in graph
    assert graph.has_edge("nngeo_core.specs", "nngeo_core.errors")
    assert graph.number_of_edges() > 100


def test_no_import_cycles():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_private_name_is_imported_across_modules():
    mods = modules()
    found = []
    for name, path in mods.items():
        for target, names, line in imports_of(name, path, mods):
            if target.startswith(PACKAGE):
                found += [
                    f"{path.relative_to(ROOT)}:{line} imports {n} from {target}"
                    for n in names
                    if n.startswith("_") and not n.startswith("__")
                ]
    assert not found, "\n".join(found)


# a lazy import (one inside a function) says why on its own line or on one of the 3 lines above it:
# imports go at the module top unless a measured start-up cost (or an import cycle) justifies one
LAZY_REASON_LINES = 3


def uncommented_lazy_imports(source: str) -> list[int]:
    """Lines of imports inside functions with no comment on that line or the 3 lines above it."""
    commented = {
        tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT
    }
    lines = set()
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not any(
                    n in commented for n in range(node.lineno - LAZY_REASON_LINES, node.lineno + 1)
                ):
                    lines.add(node.lineno)
    return sorted(lines)


def test_the_lazy_import_check_tells_a_reason_from_none():
    source = (
        "import os\n\n\ndef f():\n    import json\n\n    s = '# not a comment'\n    import csv\n\n\n"
        "def g():\n    # lazy: torch (~2 s); `nngeo --help` must not pay for it\n    import torch\n\n"
        "    import pandas as pd  # lazy: ~0.4 s\n"
    )
    assert uncommented_lazy_imports(source) == [5, 8]


def test_every_lazy_import_says_why():
    found = []
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        found += [
            f"{path.relative_to(ROOT)}:{n}: {lines[n - 1].strip()}" for n in uncommented_lazy_imports(path.read_text())
        ]
    assert not found, (
        "imports inside functions with no comment saying why they are not at the module top (move them "
        "up, or say what a top import would cost, e.g. `# lazy: torch (~2 s); nngeo --help must not pay`):\n"
        + "\n".join(found)
    )


def layer_of(name: str) -> int:
    rel = name.split(".", 1)[1]
    best: tuple[int, int] | None = None  # (length of the match, layer)
    for i, names in enumerate(LAYERS):
        for entry in names:
            if (rel == entry or rel.startswith(entry + ".")) and (best is None or len(entry) > best[0]):
                best = (len(entry), i)
    if best is None:
        raise AssertionError(f"module {name} is in no layer of this test; add it to LAYERS")
    return best[1]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_down_the_layers(name):
    if name == PACKAGE:
        return
    graph = import_graph()
    mine = layer_of(name)
    upward = [t for t in graph.successors(name) if t != PACKAGE and layer_of(t) > mine]
    assert not upward, f"{name} (layer {mine}) imports modules above it: {', '.join(upward)}"

"""The house: which top-level package may import which, every import edge checked against one table.

docs/design.md: dependencies flow one way, `dualpath` <- `train`, `calibration`, `runtime` <- `export`; the script
folders sit on top and nothing imports them. The edges are tests/project_imports.py's graph (read with ast: module
level and lazy imports inside functions alike), so an arrow a function adds at run time counts as one at the top.
"""
from __future__ import annotations

import ast

from project_imports import PACKAGES, ROOT, dependencies, import_graph, import_sites, project_modules

ALLOWED: dict[str, set[str]] = {
    "dualpath": set(),  # the ground floor: contract, scenes, metrics, model, seeds, machine, files
    "train": {"dualpath"},
    "calibration": {"dualpath"},
    "runtime": {"dualpath"},  # torch-free: contract, metrics, scenes (drift sets), seeds, files
    "export": {"dualpath", "train", "calibration", "runtime"},  # runtime's backends and drift report check it
    # the script folders: nothing imports them, and they do not import one another
    "jetson": {"dualpath", "runtime"},  # on the device, torch-free: runtime.backends and the core under it
    "benchmarks": {"dualpath", "train", "calibration", "runtime", "export"},
    "tools": {"dualpath", "train", "calibration", "runtime", "export"},
}


def top(module: str) -> str:
    return module.partition(".")[0]


def violations(graph: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """(importing module, imported module, the rule it breaks) for every edge between two top-level packages that
    `allowed` does not list."""
    found = []
    for module, edges in sorted(graph.items()):
        for imported in sorted(edges):
            here, there = top(module), top(imported)
            if here == there or there in allowed.get(here, ()):
                continue
            rule = (f"{here} may import {', '.join(sorted(allowed[here])) or 'no other package'}" if here in allowed
                    else f"{here} has no row in ALLOWED")
            found.append((module, imported, rule))
    return found


def test_the_table_covers_every_package_the_graph_reads():
    assert set(ALLOWED) == set(PACKAGES)
    assert all(deps <= set(ALLOWED) for deps in ALLOWED.values())


def test_layering_flags_a_forbidden_edge():
    graph = {"dualpath.model": {"train.config", "dualpath.contract"}, "train.config": {"dualpath.contract"},
             "export.pipeline": {"train.config", "benchmarks.inference"}, "benchmarks.inference": {"export.pipeline"},
             "attic.x": {"dualpath.contract"}}
    assert violations(graph, ALLOWED) == [
        ("attic.x", "dualpath.contract", "attic has no row in ALLOWED"),
        ("dualpath.model", "train.config", "dualpath may import no other package"),
        ("export.pipeline", "benchmarks.inference", "export may import calibration, dualpath, runtime, train")]


def test_every_import_between_packages_follows_the_table():
    modules = project_modules()
    found = []
    for module, imported, rule in violations(import_graph(), ALLOWED):
        path = modules[module]
        line = dependencies(module, path, modules)[imported]
        found.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {imported}, against the rule: {rule}")
    assert found == [], "\n".join(found)


def test_scripts_import_their_neighbours_as_package_modules():
    """`import train_speed` next to benchmarks/train_speed.py works only with the script's folder on sys.path: the
    scripts run as `python -m benchmarks.x` and import `benchmarks.train_speed`."""
    modules = project_modules()
    bare = []
    for module, path in modules.items():
        folder = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for name, line in import_sites(module, path).items():
            if f"{folder}.{name.partition('.')[0]}" in modules:
                bare.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {name}, a file beside it, by name")
    assert bare == [], "\n".join(bare)


def _edits_sys_path(node: ast.AST) -> bool:
    """sys.path.insert/append/extend(...), sys.path[...] = ..., sys.path += ..."""
    def is_sys_path(n):
        return isinstance(n, ast.Attribute) and n.attr == "path" and getattr(n.value, "id", None) == "sys"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return is_sys_path(node.func.value) and node.func.attr in ("insert", "append", "extend")
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) \
        else []
    return any(is_sys_path(t.value if isinstance(t, ast.Subscript) else t) for t in targets)


def test_no_module_edits_sys_path():
    """Scripts run as modules (`python -m benchmarks.inference`, `python -m tools.sprite_sheet`) from the repository
    root, the installed packages import as installed: no file puts a folder on sys.path to find its imports."""
    edits = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in project_modules().values()
             for node in ast.walk(ast.parse(path.read_text())) if _edits_sys_path(node)]
    assert edits == [], "sys.path edited at " + ", ".join(edits)

"""The project's import graph, read from the source with ast (building it imports nothing); used by
test_import_cycles.py and test_layering.py.

One node per module of the project's top-level folders (a package's __init__.py is the package's node, with the
edges of what it imports itself), one edge per imported project module, whether the import sits at module level or
inside a function (a lazy import is still a dependency); imports under `if TYPE_CHECKING:` never run and are left
out. `from a.b import c` is an edge to a.b.c when that is a module, else to a.b.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# every top-level folder of the repository that holds the project's code (tests/ and generated runs/ aside);
# jetson/ is the device's script folder (no __init__.py: its files are nodes jetson.<name> all the same)
PACKAGES = ("dualpath", "train", "calibration", "runtime", "export", "benchmarks", "tools", "jetson")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_sites(module: str, path: Path) -> dict[str, int]:
    """Every dotted name `module` imports ('a.b' for `import a.b`, 'a.b.c' for `from a.b import c`) and the first
    line that imports it."""
    tree = ast.parse(path.read_text(), str(path))
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                 for n in ast.walk(node)}
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    sites: dict[str, int] = {}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]) if node.level \
                else node.module
            names = [f"{base.strip('.')}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            sites[name] = min(node.lineno, sites.get(name, node.lineno))
    return sites


def _is_type_checking(test: ast.expr) -> bool:
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def project_module_of(name: str, modules: dict[str, Path]) -> str:
    """The project module an imported name lands in ('' for a third-party or standard-library name)."""
    while name and name not in modules:  # a name inside a module, or a third-party package
        name = name.rpartition(".")[0]
    return name


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        edges = {project_module_of(name, modules) for name in import_sites(module, path)}
        graph[module] = edges - {"", module}
    return graph

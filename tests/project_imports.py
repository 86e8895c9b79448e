"""The project's import graph, read from the source with ast (building it imports nothing); used by
test_import_cycles.py and test_layering.py.

One node per module of the project's top-level folders (a package's __init__.py is the package's node, with the
edges of what it imports itself), one edge per imported project module, whether the import sits at module level or
inside a function (a lazy import is still a dependency); imports under `if TYPE_CHECKING:` never run and are left
out. `from a.b import c` is an edge to a.b.c when that is a module, else to a.b. In a module that calls
importlib.import_module, a string that is exactly a project module's name ('a.b', or 'a.b:name') is an edge too: its
table of what it loads when asked (dualpath.model's and export's PEP 562 names, runtime.backends' backends). A table
held in another module (dualpath.architectures' model classes, export.artifacts' steps) is not read: the module
holding it does not import what it names.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# every top-level folder of the repository that holds the project's code (tests/ and generated runs/ aside);
# jetson/ is the device's script folder (no __init__.py: its files are nodes jetson.<name> all the same)
PACKAGES = ("dualpath", "train", "calibration", "runtime", "export", "benchmarks", "tools", "jetson")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.\w+)+")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_sites(module: str, path: Path) -> dict[str, int]:
    """Every dotted name `module`'s import statements name ('a.b' for `import a.b`, 'a.b.c' for `from a.b import
    c`) and the first line that imports it."""
    tree = ast.parse(path.read_text(), str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    sites: dict[str, int] = {}
    for node in _running(tree):
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


def dependencies(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The project modules `module` depends on, each with the first line that names it: those its import statements
    import and, where it calls importlib.import_module, those its strings name."""
    found: dict[str, int] = {}
    for name, line in import_sites(module, path).items():
        name = project_module_of(name, modules)
        found[name] = min(line, found.get(name, line))
    tree = ast.parse(path.read_text(), str(path))
    nodes = list(_running(tree))
    if any(isinstance(n, ast.Attribute) and n.attr == "import_module" for n in nodes):
        for node in nodes:
            name = node.value.partition(":")[0] if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if _DOTTED.fullmatch(name) and name in modules:
                found[name] = min(node.lineno, found.get(name, node.lineno))
    found.pop("", None)
    found.pop(module, None)
    return found


def _running(tree: ast.AST):
    """Every node of `tree` but those under `if TYPE_CHECKING:` (they never run)."""
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                 for n in ast.walk(node)}
    return (node for node in ast.walk(tree) if id(node) not in type_only)


def _is_type_checking(test: ast.expr) -> bool:
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def project_module_of(name: str, modules: dict[str, Path]) -> str:
    """The project module an imported name lands in ('' for a third-party or standard-library name)."""
    while name and name not in modules:  # a name inside a module, or a third-party package
        name = name.rpartition(".")[0]
    return name


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {module: set(dependencies(module, path, modules)) for module, path in modules.items()}

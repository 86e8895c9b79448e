"""The project's modules import one another without a cycle, and none imports another's command line (__main__).

The graph is read from the source with ast, so building it imports nothing: one node per module of the project's
packages (a package's __init__.py is the package's node, with the edges of what it imports itself), one edge per
imported project module, whether the import sits at module level or inside a function (a lazy import is still a
dependency); imports under `if TYPE_CHECKING:` never run and are left out. `from a.b import c` is an edge to a.b.c
when that is a module, else to a.b.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dualpath", "train", "calibration", "runtime", "export")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(module: str, path: Path) -> set[str]:
    """Every dotted name `module` imports: 'a.b' for `import a.b`, 'a.b.c' for `from a.b import c`."""
    tree = ast.parse(path.read_text(), str(path))
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                 for n in ast.walk(node)}
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]) if node.level \
                else node.module
            names |= {f"{base.strip('.')}.{alias.name}" for alias in node.names}
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        edges = set()
        for name in imports_of(module, path):
            while name and name not in modules:  # a name inside a module, or a third-party package
                name = name.rpartition(".")[0]
            if name and name != module:
                edges.add(name)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with the path on a stack)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, on_path, todo = [start], {start}, [(start, iter(sorted(graph[start])))]
        while todo:
            node, children = todo[-1]
            child = next(children, None)
            if child is None:
                todo.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return path[path.index(child):] + [child]
            elif child not in done:
                todo.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return None


def test_the_graph_sees_lazy_imports_and_package_reexports():
    graph = import_graph()
    assert "train.cli" in graph and "dualpath.model" in graph
    assert "dualpath.model.build" in graph["dualpath.model"]  # the package's own re-export
    assert "train.experiment" in graph["train.cli"]  # imported inside a function


def test_find_cycle_reports_the_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_among_the_projects_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_a_command_line():
    # what two commands share lives beside the code it serves (e.g. runtime.drift.budgets.budgets_from_args)
    graph = import_graph()
    offenders = {m: sorted(e for e in edges if e.endswith(".__main__")) for m, edges in graph.items()}
    assert {m: e for m, e in offenders.items() if e} == {}

"""The project's modules import one another without a cycle, and none imports another's command line (__main__).

The graph (tests/project_imports.py) is read from the source with ast, lazy imports inside functions included.
"""
from __future__ import annotations

from project_imports import import_graph


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

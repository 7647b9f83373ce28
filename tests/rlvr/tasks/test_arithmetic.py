"""Arithmetic task: generator, splits, parser, checker, format reward."""

import doctest

import pytest

from rlvr.tasks import arithmetic
from rlvr.tasks.arithmetic import ArithmeticOptions, arithmetic_format, parse_answer
from rlvr.tasks.base import build_task


def test_doctests():
    assert doctest.testmod(arithmetic).failed == 0


def test_train_never_contains_a_test_expression_and_test_is_unique():
    task = build_task(ArithmeticOptions(max_digits=1, train_size=300, test_size=30))
    test_ids = [p.id for p in task.problems("test")]
    assert len(set(test_ids)) == 30
    assert not set(test_ids) & {p.id for p in task.problems("train")}


def test_problems_are_deterministic_and_respect_options():
    options = ArithmeticOptions(
        min_digits=3, max_digits=3, operators=["*", "-"], operands=3, test_size=20
    )
    first, again = build_task(options).problems("test"), build_task(options).problems("test")
    assert first == again
    for problem in first:
        numbers = problem.id.replace("*", " ").replace("-", " ").split()
        assert len(numbers) == 3 and all(len(n) == 3 for n in numbers)
        assert "+" not in problem.id


@pytest.mark.parametrize(
    "completion, grade",
    [
        (" = 46", "pass"),
        ("=46", "pass"),
        (" = 46 and more", "pass"),
        (" = 45", "fail"),
        ("46", "fail"),
        ("", "fail"),
        ("\n= 46", "fail"),
        (" = -46", "fail"),
    ],
)
def test_checker(completion, grade):
    task = build_task(ArithmeticOptions())
    problem = next(p for p in task.problems("test"))
    good = completion.replace("46", problem.answer)
    assert task.check(problem, good) == grade


def test_reference_completion_passes_and_is_well_formatted():
    task = build_task(ArithmeticOptions(operators=["+", "-", "*"], test_size=50))
    for problem in task.problems("test"):
        reference = task.reference(problem)
        assert task.check(problem, reference) == "pass"
        assert arithmetic_format([reference]) == [1.0]


def test_parse_answer_reads_only_the_first_line():
    assert parse_answer(" = 3\n= 4") == 3
    assert parse_answer(" x\n= 4") is None


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="unknown split"):
        build_task(ArithmeticOptions()).problems("validation")

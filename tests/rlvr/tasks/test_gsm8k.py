"""GSM8K task: loading, answer parsing, checker."""

import doctest

import pytest

from rlvr.tasks import gsm8k
from rlvr.tasks.base import build_task
from rlvr.tasks.gsm8k import GSM8KOptions, parse_answer


def test_doctests():
    assert doctest.testmod(gsm8k).failed == 0


def test_splits_load_and_references_pass():
    task = build_task(GSM8KOptions())
    test = task.problems("test")
    assert len(test) == 1319 and len(task.problems("train")) == 7473
    assert test[0].answer == "18" and test[0].prompt.startswith("Question: Janet")
    assert all(task.check(p, task.reference(p)) == "pass" for p in test)


@pytest.mark.parametrize(
    "completion, expected",
    [("#### 1,234", "1234"), ("I think 5 then 7", "7"), ("#### $18.00", "18"), ("no number", None),
     ("#### 5\nthen 9", "5")],
)
def test_parse_answer(completion, expected):
    assert parse_answer(completion) == expected


def test_limit_keeps_the_first_rows():
    assert len(build_task(GSM8KOptions(limit=3)).problems("train")) == 3

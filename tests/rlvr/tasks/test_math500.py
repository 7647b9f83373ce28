"""MATH-500 task: held-out split and the boxed, normalised comparison."""

import doctest

import datasets
import pytest

from rlvr.tasks import math500
from rlvr.tasks.base import Problem, build_task
from rlvr.tasks.math500 import Math500Options


def test_doctests():
    assert doctest.testmod(math500).failed == 0


def test_splits_partition_the_file_and_solutions_pass():
    task = build_task(Math500Options(heldout_size=50))
    train, test = task.problems("train"), task.problems("test")
    assert (len(train), len(test)) == (450, 50)
    assert not {p.id for p in train} & {p.id for p in test}
    assert all(task.check(p, task.reference(p)) == "pass" for p in train + test)


@pytest.mark.parametrize(
    "completion, grade",
    [
        (r"\boxed{\dfrac{3}{4}}", "pass"),
        (r"\boxed{0.75}", "pass"),
        (r"\boxed{3/4}", "pass"),
        (r"\boxed{\frac{3}{5}}", "fail"),
        (r"\frac{3}{4}", "fail"),
        (r"\boxed{\frac{3}{4}", "fail"),
    ],
)
def test_checker(completion, grade):
    problem = Problem(id="x", prompt="", answer=r"\frac{3}{4}")
    assert build_task(Math500Options()).check(problem, completion) == grade


def test_a_local_dataset_is_one_set_split_by_heldout_size(datasets_root):
    rows = [
        {
            "problem": f"What is {n}+{n}?",
            "solution": f"It is \\boxed{{{2 * n}}}.",
            "answer": str(2 * n),
            "level": 1,
        }
        for n in range(5)
    ]
    datasets.Dataset.from_list(rows).save_to_disk(datasets_root / "doubles")
    task = build_task(Math500Options(source="local:doubles", heldout_size=2))
    train, test = task.problems("train"), task.problems("test")
    assert [p.answer for p in test] == ["0", "2"] and [p.answer for p in train] == ["4", "6", "8"]
    assert all(task.check(p, task.reference(p)) == "pass" for p in train + test)

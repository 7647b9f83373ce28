"""Countdown task: dataset split, generator, solver and checker."""

import doctest
import json

import pytest

from rlvr.tasks import countdown
from rlvr.tasks.base import Problem, build_task
from rlvr.tasks.countdown import CountdownOptions

PROBLEM = Problem(id="x", prompt="", answer="21", metadata={"numbers": [100, 93, 3]})


def test_doctests():
    assert doctest.testmod(countdown).failed == 0


@pytest.mark.parametrize(
    "completion, grade",
    [
        (" (100-93)*3", "pass"),
        ("3*(100-93) = 21", "pass"),
        (" (100-93)*3*1", "fail"),  # a number that was not given
        (" (100-93)*3+3-3", "fail"),  # 3 used three times
        (" 100-93", "fail"),  # 3 unused
        (" (100-93)**3", "fail"),
        (" __import__('os')", "fail"),
        ("", "fail"),
    ],
)
def test_checker(completion, grade):
    task = build_task(CountdownOptions())
    assert task.check(PROBLEM, completion) == grade


def test_test_split_is_the_dataset_and_every_row_has_a_reference():
    task = build_task(CountdownOptions())
    problems = task.problems("test")
    assert len(problems) == 256
    assert all(task.check(p, task.reference(p)) == "pass" for p in problems)


def test_generated_train_problems_are_solvable_and_in_range():
    task = build_task(CountdownOptions(train_size=100, max_target=50))
    problems = task.problems("train")
    assert len(problems) == 100
    assert all(1 <= int(p.answer) <= 50 for p in problems)
    assert all(task.check(p, task.reference(p)) == "pass" for p in problems)


def test_other_sizes_generate_their_test_split():
    problems = build_task(CountdownOptions(numbers=4, test_size=5)).problems("test")
    assert len(problems) == 5 and all(len(p.metadata["numbers"]) == 4 for p in problems)


def test_a_local_source_gives_both_splits_in_either_row_layout(datasets_root):
    def save(name, splits):
        (datasets_root / name).mkdir()
        for split, rows in splits.items():
            (datasets_root / name / f"{split}.jsonl").write_text(
                "".join(json.dumps(row) + "\n" for row in rows)
            )

    save(
        "hub",
        {
            "train": [{"nums": [3, 4, 5], "target": 17}, {"nums": [2, 2, 2, 2], "target": 16}],
            "test": [{"nums": [1, 2], "target": 3}],
        },
    )  # as the hub's Countdown sets
    save("d1", {"test": [{"input": "30,100,93", "output": "23"}]})  # as d1's file, the bundled one

    def read(source, split):
        return [
            (p.metadata["numbers"], p.answer)
            for p in build_task(CountdownOptions(source=source)).problems(split)
        ]

    assert read("local:hub", "train") == [([3, 4, 5], "17"), ([2, 2, 2, 2], "16")]
    assert read("local:hub", "test") == [([1, 2], "3")]
    assert read("local:d1", "test") == [([30, 100, 93], "23")]

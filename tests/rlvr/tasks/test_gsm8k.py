"""GSM8K task: loading, answer parsing, checker."""

import doctest

import datasets
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
    [
        ("#### 1,234", "1234"),
        ("I think 5 then 7", "7"),
        ("#### $18.00", "18"),
        ("no number", None),
        ("#### 5\nthen 9", "5"),
    ],
)
def test_parse_answer(completion, expected):
    assert parse_answer(completion) == expected


def test_limit_keeps_the_first_rows():
    assert len(build_task(GSM8KOptions(limit=3)).problems("train")) == 3


def test_a_local_dataset_dict_gives_the_splits(datasets_root):
    row = {"question": "Tom has 2 apples and buys 3. How many?", "answer": "2+3=<<2+3=5>>5\n#### 5"}
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([row] * 3),
            "test": datasets.Dataset.from_list([row]),
        }
    ).save_to_disk(datasets_root / "apples")
    task = build_task(GSM8KOptions(source="local:apples"))
    train, test = task.problems("train"), task.problems("test")
    assert (len(train), len(test)) == (3, 1)
    assert (
        test[0].prompt == "Question: Tom has 2 apples and buys 3. How many?\nAnswer:"
        and test[0].answer == "5"
    )
    assert task.check(test[0], task.reference(test[0])) == "pass"

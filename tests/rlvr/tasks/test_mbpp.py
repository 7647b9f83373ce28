"""MBPP: the standard splits, the paper's prompt, and reference solutions passing in nsjail.

Every reference of both splits is run by `python -m rlvr eval` (README); here a sample.
"""

import json

import pytest

from rlvr.tasks.mbpp import MBPP, MBPPOptions
from rlvr.verifier import local_sandbox_verifier


@pytest.fixture(scope="module")
def verify():
    return local_sandbox_verifier(concurrency=2)


def test_standard_splits():
    task = MBPP(MBPPOptions())
    train, test = task.problems("train"), task.problems("test")
    assert len(test) == 500 and len(train) == 374
    assert (test[0].id, test[-1].id, train[0].id, train[-1].id) == (
        "mbpp-11",
        "mbpp-510",
        "mbpp-601",
        "mbpp-974",
    )
    assert len(MBPP(MBPPOptions(train_includes_validation=True)).problems("train")) == 464
    assert len(MBPP(MBPPOptions(variant="sanitized")).problems("test")) == 257


def test_prompt_shows_the_task_and_its_asserts():
    problem = MBPP(MBPPOptions(limit=1)).problems("test")[0]
    assert problem.prompt.startswith(
        "You are an expert Python programmer, and here is your task: Write a python"
    )
    for test in problem.metadata["tests"]["tests"]:
        assert test in problem.prompt


@pytest.mark.parametrize("variant", ["full", "sanitized"])
def test_references_pass_and_a_wrong_program_fails(variant, verify):
    task = MBPP(MBPPOptions(variant=variant, limit=12))
    problems = task.problems("test")
    grades = task.grade(problems, [task.reference(p) for p in problems], verify=verify)
    assert grades == ["pass"] * len(problems)
    wrong = task.grade(problems[:3], ["I cannot solve this."] * 3, verify=verify)
    assert wrong == ["fail"] * 3 and wrong[0].tests[0].error_type == "SyntaxError"


def test_a_local_source_is_read_by_split_in_either_layout(datasets_root):
    def save(name, splits, **layout):
        (datasets_root / name).mkdir()
        for split, task_ids in splits.items():
            rows = [
                {
                    "task_id": task_id,
                    "code": "def inc(x):\n    return x + 1",
                    "test_list": ["assert inc(1) == 2"],
                    **layout,
                }
                for task_id in task_ids
            ]
            (datasets_root / name / f"{split}.jsonl").write_text(
                "".join(json.dumps(row) + "\n" for row in rows)
            )

    save(
        "full",
        {"train": [1], "validation": [2], "test": [3]},
        text="Write inc.",
        test_setup_code="",
    )
    save(
        "sanitized",
        {"train": [4], "test": [5]},
        prompt="Write inc, sanitized.",
        test_imports=["import math"],
    )
    train = MBPP(MBPPOptions(source="local:full", train_includes_validation=True)).problems("train")
    assert [p.id for p in train] == ["mbpp-1", "mbpp-2"] and "task: Write inc. Your code" in train[
        0
    ].prompt
    assert [p.id for p in MBPP(MBPPOptions(source="local:full")).problems("test")] == ["mbpp-3"]
    test = MBPP(MBPPOptions(source="local:sanitized")).problems("test")
    assert [p.id for p in test] == ["mbpp-5"] and "task: Write inc, sanitized. Your code" in test[
        0
    ].prompt
    assert test[0].metadata["tests"]["setup"] == "import math"

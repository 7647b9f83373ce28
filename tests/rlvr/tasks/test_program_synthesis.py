"""Programs from examples: determined problems, disjoint splits, judged on hidden inputs in nsjail."""

import ast

import pytest

from rlvr.tasks.program_synthesis import (
    ProgramSynthesis,
    ProgramSynthesisOptions,
    _ambiguous,
    _run,
    programs,
)
from rlvr.verifier import local_sandbox_verifier

OPTIONS = ProgramSynthesisOptions(train_size=300, test_size=40)


@pytest.fixture(scope="module")
def task():
    return ProgramSynthesis(OPTIONS)


@pytest.fixture(scope="module")
def verify():
    return local_sandbox_verifier(concurrency=2)


def test_splits_are_deterministic_and_disjoint(task):
    train, test = task.problems("train"), task.problems("test")
    assert len(train) == 300 and len(test) == 40
    assert not {p.id for p in train} & {p.id for p in test}
    assert [p.id for p in ProgramSynthesis(OPTIONS).problems("test")] == [p.id for p in test]


def test_the_program_table_reads_as_python():
    table = programs(2)
    assert len({p.source for p in table}) == len(table)
    for program in table:
        ast.parse(program.source, mode="eval")


def test_shown_examples_determine_the_hidden_answers(task):
    table = programs(OPTIONS.max_depth)
    by_source = {p.source: p for p in table}
    for problem in task.problems("test"):
        program = by_source[problem.answer]
        shown = [
            ast.literal_eval(line.split(")==")[0][2:]) for line in problem.prompt.splitlines()[:-2]
        ]
        hidden = [
            ast.literal_eval(t.split("f(", 1)[1].split(") == ")[0])
            for t in problem.metadata["tests"]["tests"]
        ]
        assert len(shown) == OPTIONS.examples and len(hidden) == OPTIONS.hidden_tests
        assert not set(map(str, shown)) & set(map(str, hidden))
        assert not any(_ambiguous(other, program, shown, hidden) for other in table)
        assert all(_run(program, xs) == program(xs) for xs in hidden)


def test_references_pass_and_copying_shown_outputs_does_not(task, verify):
    problems = task.problems("test")[:20]
    assert (
        task.grade(problems, [task.reference(p) for p in problems], verify=verify) == ["pass"] * 20
    )
    copied = [
        " " + p.prompt.splitlines()[0].split("==")[1] for p in problems
    ]  # the first shown output
    grades = task.grade(problems, copied, verify=verify)
    assert "pass" not in grades


def test_completions_become_programs(task, verify):
    problem = (
        next(p for p in task.problems("test") if p.answer == "sorted(xs)")
        if any(p.answer == "sorted(xs)" for p in task.problems("test"))
        else task.problems("test")[0]
    )
    whole = f"```python\ndef f(xs):\n    return {problem.answer}\n```"
    grades = task.grade(
        [problem] * 3, [f" {problem.answer}\nsome trailing text", whole, " xs +"], verify=verify
    )
    assert grades[:2] == ["pass", "pass"]
    assert grades[2] == "fail" and grades[2].tests[0].error_type == "SyntaxError"

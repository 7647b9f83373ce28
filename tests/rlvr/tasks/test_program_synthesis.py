"""Programs from examples: determined problems, disjoint splits, judged on hidden inputs in nsjail."""

import ast

import pytest

from rlvr.tasks.program_synthesis import (
    FAILED,
    ProgramSynthesis,
    ProgramSynthesisOptions,
    _ambiguous,
    _run,
    programs,
    verifier_only_programs,
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


COMPOSED = ProgramSynthesisOptions(
    operations="composed", verifier_only=0.5, train_size=400, test_size=60
)


@pytest.fixture(scope="module")
def composed():
    return ProgramSynthesis(COMPOSED)


def test_the_composed_table_has_hundreds_of_programs_that_read_as_python():
    table = programs(2, "composed")
    assert len(table) > 700 and len({p.source for p in table}) == len(table)
    for program in table:
        ast.parse(program.source, mode="eval")
        for xs in ([3, 1, 4], [6, 8, 5, 0]):
            try:
                expected = eval(program.source, {}, {"xs": xs})
            except (ValueError, IndexError):
                expected = FAILED
            assert program(xs) == expected or program(xs) is expected is FAILED


def test_verifier_only_programs_have_no_reference_in_either_split(composed):
    table = programs(2, "composed")
    unseen = verifier_only_programs(table, 0.5, COMPOSED.seed)
    compositions = {p.source for p in table if len(p.steps) == 2}
    assert unseen <= compositions and 0.45 < len(unseen) / len(compositions) < 0.55
    for split in ("train", "test"):
        problems = composed.problems(split)
        parts = {p.metadata["part"] for p in problems}
        assert parts == {"seen", "verifier_only"}
        for problem in problems:
            in_unseen = problem.answer in unseen
            assert problem.metadata["part"] == ("verifier_only" if in_unseen else "seen")
            assert (composed.reference(problem) is None) == in_unseen


def test_train_part_keeps_one_part_and_the_test_split_whole(composed):
    only = ProgramSynthesis(COMPOSED.model_copy(update={"train_part": "verifier_only"}))
    assert {p.metadata["part"] for p in only.problems("train")} == {"verifier_only"}
    assert [p.id for p in only.problems("test")] == [p.id for p in composed.problems("test")]
    none = COMPOSED.model_copy(update={"verifier_only": 0.0, "train_part": "verifier_only"})
    with pytest.raises(ValueError, match="train_part"):
        ProgramSynthesis(none).problems("train")
    with pytest.raises(ValueError, match="train_part: no program is in the 'verifier_only'"):
        ProgramSynthesisOptions.model_validate(none.model_dump())
    with pytest.raises(ValueError, match="train_part: no program is in the 'seen'"):
        ProgramSynthesisOptions(verifier_only=1.0, train_part="seen")


def test_composed_problems_are_determined_and_their_programs_pass_in_the_sandbox(composed, verify):
    table = programs(2, "composed")
    by_source = {p.source: p for p in table}
    problems = composed.problems("test")[:20]
    for problem in problems:
        program = by_source[problem.answer]
        shown = [
            ast.literal_eval(line.split(")==")[0][2:]) for line in problem.prompt.splitlines()[:-2]
        ]
        hidden = [
            ast.literal_eval(t.split("f(", 1)[1].split(") == ")[0])
            for t in problem.metadata["tests"]["tests"]
        ]
        assert not any(_ambiguous(other, program, shown, hidden) for other in table)
    answers = [f" {p.answer}" for p in problems]  # the verifier-only ones have no reference
    assert composed.grade(problems, answers, verify=verify) == ["pass"] * 20

"""MATH-500: competition problems with a ``\\boxed{}`` final answer.

Owns the prompt, the boxed-answer parser and a normalised comparison (LaTeX spacing,
``\\dfrac``, ``\\text{}``, numbers). The dataset is one set of 500 (data/math500/test.jsonl,
or the ``test`` split of ``source``, as on the hub's HuggingFaceH4/MATH-500); its first
``heldout_size`` rows are the test split and the rest the train split.
"""

from typing import Literal

from pydantic import Field

from rlvr.tasks.base import Grade, Problem, Task, TaskOptions, check_split, register_task
from rlvr.tasks.sources import Source, load_rows, source_field
from rlvr.text import last_boxed, normalize_latex


class Math500Options(TaskOptions):
    name: Literal["math500"] = Field("math500", description="MATH-500, boxed answers.")
    template: str = Field(
        "Problem: {problem}\nPut the final answer in \\boxed{{}}.\nSolution:",
        description="Prompt template; `{problem}`.",
    )
    heldout_size: int = Field(
        100, ge=1, le=499, description="Rows (from the start) kept for the test split."
    )
    source: Source = source_field(
        "data/math500; the hub's copy is `hf:HuggingFaceH4/MATH-500`",
        " Its `test` split is the one read.",
    )


def answers_match(completion: str, answer: str) -> bool:
    r"""Whether the last boxed answer of ``completion`` equals ``answer`` after normalisation.

    >>> answers_match(r"so \boxed{\dfrac{1}{2}}", r"\frac{1}{2}"), answers_match("1/2", "1/2")
    (True, False)
    """
    boxed = last_boxed(completion)
    return boxed is not None and normalize_latex(boxed) == normalize_latex(answer)


@register_task("math500")
class Math500(Task):
    options_type = Math500Options
    default_rewards = [
        {"name": "verdict", "weight": 1.0},
        {"name": "format", "weight": 0.1, "kwargs": {"kind": "boxed"}},
    ]
    options: Math500Options

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        # One set, split here, whichever split is asked for: both read the source's test split.
        rows = load_rows(self.options.source, "test", bundled="math500/test.jsonl")
        chosen = (
            rows[: self.options.heldout_size]
            if split == "test"
            else rows[self.options.heldout_size :]
        )
        return [
            Problem(
                id=row.get("unique_id", f"math500-{index}"),
                prompt=self.options.template.format(problem=row["problem"]),
                answer=row["answer"],
                difficulty=float(row.get("level", 0)),
                metadata={"solution": row["solution"]},
            )
            for index, row in enumerate(chosen)
        ]

    def check(self, problem: Problem, completion: str) -> Grade:
        return "pass" if answers_match(completion, problem.answer) else "fail"

    def reference(self, problem: Problem) -> str:
        return " " + problem.metadata["solution"]

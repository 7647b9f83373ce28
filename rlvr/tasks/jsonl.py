"""Custom JSONL: one ``{"prompt": ..., "answer": ...}`` object per line.

Owns reading the file(s), the template and the comparison (``exact``, ``numeric`` or
``contains``). Without a ``test_path`` the last ``heldout_size`` rows are the test split.
A relative path is relative to the repository, not to the process's working directory, so
that nothing outside the repository is read unless a path says so.
"""

from typing import Literal

from pydantic import Field

from rlvr.tasks.base import (
    Grade,
    Problem,
    Task,
    TaskOptions,
    check_split,
    read_jsonl,
    register_task,
)
from rlvr.tasks.sources import REPO
from rlvr.text import last_number, normalize_number


class JsonlOptions(TaskOptions):
    name: Literal["jsonl"] = Field(
        "jsonl", description="Your own prompts and answers from a JSONL file."
    )
    path: str = Field("data.jsonl", description="JSONL file with one object per line.")
    test_path: str | None = Field(None, description="Separate JSONL file for the test split.")
    heldout_size: int = Field(
        50, ge=0, description="Without test_path: last rows kept for the test split."
    )
    prompt_field: str = Field("prompt", description="Key of the prompt in each object.")
    answer_field: str = Field("answer", description="Key of the answer in each object.")
    template: str = Field("{prompt}", description="Prompt template; `{prompt}`.")
    match: Literal["exact", "numeric", "contains"] = Field(
        "exact",
        description="exact: stripped, case-insensitive equality; numeric: last number; contains.",
    )


_MATCHES = {
    "exact": lambda completion, answer: completion.strip().lower() == answer.strip().lower(),
    "numeric": lambda completion, answer: last_number(completion) == normalize_number(answer),
    "contains": lambda completion, answer: answer.strip().lower() in completion.lower(),
}


@register_task("jsonl")
class Jsonl(Task):
    options_type = JsonlOptions
    options: JsonlOptions

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        opts = self.options
        if opts.test_path:
            rows = read_jsonl(REPO / (opts.test_path if split == "test" else opts.path))
        else:
            every = read_jsonl(REPO / opts.path)
            cut = len(every) - opts.heldout_size
            rows = every[cut:] if split == "test" else every[:cut]
        return [
            Problem(
                id=str(row.get("id", f"{split}-{index}")),
                prompt=opts.template.format(prompt=row[opts.prompt_field]),
                answer=str(row[opts.answer_field]),
                difficulty=float(row.get("difficulty", 0.0)),
            )
            for index, row in enumerate(rows)
        ]

    def check(self, problem: Problem, completion: str) -> Grade:
        return "pass" if _MATCHES[self.options.match](completion, problem.answer) else "fail"

    def reference(self, problem: Problem) -> str:
        return " " + problem.answer

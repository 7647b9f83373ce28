"""MBPP: short Python functions from a description and three asserts, judged in the sandbox.

Owns reading ../shared/datasets/mbpp (``mbpp.jsonl``, or ``sanitized-mbpp.json`` with
``variant: sanitized``), the standard splits by task id (test 11-510, train 601-974;
validation 511-600 joins train only when asked; the few-shot prompt rows 1-10 are never
used), the prompt of the MBPP paper, and the sandbox tests: the row's asserts with its
setup code (or, sanitized, its imports). The completion's code is extracted with
``rlvr.code.extract_code``; the reference solution is the row's code in a fenced block.
"""

import json
from typing import Any, Literal

from pydantic import Field

from rlvr.tasks.base import CodeTask, Problem, TaskOptions, check_split, datasets_dir, read_jsonl, register_task

SPLIT_IDS = {"test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}
TEMPLATE = ("You are an expert Python programmer, and here is your task: {text} "
            "Your code should pass these tests:\n\n{tests}\n")


class MBPPOptions(TaskOptions):
    name: Literal["mbpp"] = Field("mbpp", description="MBPP Python problems, judged by their asserts in the sandbox.")
    variant: Literal["full", "sanitized"] = Field("full", description="mbpp.jsonl or sanitized-mbpp.json.")
    template: str = Field(TEMPLATE, description="Prompt template; `{text}` is the task, `{tests}` its asserts.")
    train_includes_validation: bool = Field(False, description="Add the validation ids (511-600) to train.")
    limit: int | None = Field(None, ge=1, description="Keep only the first N problems of each split.")
    limits: dict[str, float] = Field(
        default_factory=lambda: {"test_seconds": 10, "wall_seconds": 30, "cpu_seconds": 30},
        description="Sandbox limits per program (sandbox.Limits fields).",
    )
    data_dir: str | None = Field(None, description="Datasets root; default $RLVR_DATASETS or ../shared/datasets.")


def _rows(options: MBPPOptions) -> list[dict[str, Any]]:
    root = datasets_dir(options.data_dir) / "mbpp"
    if options.variant == "full":
        return read_jsonl(root / "mbpp.jsonl")
    rows = json.loads((root / "sanitized-mbpp.json").read_text(encoding="utf-8"))
    return [{**row, "text": row["prompt"], "test_setup_code": "\n".join(row.get("test_imports") or [])} for row in rows]


@register_task("mbpp")
class MBPP(CodeTask):
    options_type = MBPPOptions
    options: MBPPOptions

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        opts = self.options
        ids = set(SPLIT_IDS[split])
        if split == "train" and opts.train_includes_validation:
            ids |= set(SPLIT_IDS["validation"])
        rows = [row for row in _rows(opts) if row["task_id"] in ids][: opts.limit]
        return [self._problem(row) for row in rows]

    def _problem(self, row: dict[str, Any]) -> Problem:
        tests = list(row["test_list"])
        return Problem(
            id=f"mbpp-{row['task_id']}",
            prompt=self.options.template.format(text=row["text"], tests="\n".join(tests)),
            answer=row["code"],
            difficulty=float(len(row["code"].splitlines())),
            metadata={
                "tests": {"kind": "function", "tests": tests, "setup": row.get("test_setup_code") or ""},
                "limits": self.options.limits,
            },
        )

    def reference(self, problem: Problem) -> str:
        return f"```python\n{problem.answer}\n```"

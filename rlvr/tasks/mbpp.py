"""MBPP: short Python functions from a description and three asserts, judged in the sandbox.

Owns the standard splits of the bundled files (data/mbpp/``mbpp.jsonl``, or
``sanitized-mbpp.json`` with ``variant: sanitized``) by task id (test 11-510, train 601-974;
validation 511-600 joins train only when asked; the few-shot prompt rows 1-10 are never
used), the prompt of the MBPP paper, and the sandbox tests: the row's asserts with its
setup code (or, sanitized, its imports). Another ``source`` (``rlvr.tasks.sources``) comes
split already, as the hub's google-research-datasets/mbpp does: its ``train``/``test`` (and
``validation``) splits are read as they are, in either layout. The completion's code is
extracted with ``rlvr.code.extract_code``; the reference solution is the row's code in a
fenced block.
"""

from typing import Any, Literal

from pydantic import Field

from rlvr.tasks.base import CodeTask, Problem, TaskOptions, check_split, register_task
from rlvr.tasks.sources import Source, load_rows, source_field

SPLIT_IDS = {"test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}
TEMPLATE = (
    "You are an expert Python programmer, and here is your task: {text} "
    "Your code should pass these tests:\n\n{tests}\n"
)


class MBPPOptions(TaskOptions):
    name: Literal["mbpp"] = Field(
        "mbpp", description="MBPP Python problems, judged by their asserts in the sandbox."
    )
    variant: Literal["full", "sanitized"] = Field(
        "full", description="With `source: bundled`: data/mbpp/mbpp.jsonl or sanitized-mbpp.json."
    )
    template: str = Field(
        TEMPLATE, description="Prompt template; `{text}` is the task, `{tests}` its asserts."
    )
    train_includes_validation: bool = Field(
        False, description="Add the validation ids (511-600) to train."
    )
    limit: int | None = Field(
        None, ge=1, description="Keep only the first N problems of each split."
    )
    limits: dict[str, float] = Field(
        default_factory=lambda: {"test_seconds": 10, "wall_seconds": 30, "cpu_seconds": 30},
        description="Sandbox limits per program (sandbox.Limits fields).",
    )
    source: Source = source_field(
        "data/mbpp, split by task id; the hub's copy is `hf:google-research-datasets/mbpp:full` or `:sanitized`",
        " Other sources are read by split name.",
    )


def _rows(options: MBPPOptions, split: str) -> list[dict[str, Any]]:
    splits = [split] + (
        ["validation"] if split == "train" and options.train_includes_validation else []
    )
    if options.source == "bundled":
        file = "mbpp/mbpp.jsonl" if options.variant == "full" else "mbpp/sanitized-mbpp.json"
        ids = {task_id for name in splits for task_id in SPLIT_IDS[name]}
        rows = [row for row in load_rows("bundled", split, bundled=file) if row["task_id"] in ids]
    else:
        rows = [row for name in splits for row in load_rows(options.source, name, bundled="")]
    return [_full_layout(row) for row in rows]


def _full_layout(row: dict[str, Any]) -> dict[str, Any]:
    """A sanitized row (``prompt``, ``test_imports``) with the full set's ``text`` and ``test_setup_code``."""
    if "text" in row:
        return row
    return {
        **row,
        "text": row["prompt"],
        "test_setup_code": "\n".join(row.get("test_imports") or []),
    }


@register_task("mbpp")
class MBPP(CodeTask):
    options_type = MBPPOptions
    options: MBPPOptions

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        return [self._problem(row) for row in _rows(self.options, split)[: self.options.limit]]

    def _problem(self, row: dict[str, Any]) -> Problem:
        tests = list(row["test_list"])
        return Problem(
            id=f"mbpp-{row['task_id']}",
            prompt=self.options.template.format(text=row["text"], tests="\n".join(tests)),
            answer=row["code"],
            difficulty=float(len(row["code"].splitlines())),
            metadata={
                "tests": {
                    "kind": "function",
                    "tests": tests,
                    "setup": row.get("test_setup_code") or "",
                },
                "limits": self.options.limits,
            },
        )

    def reference(self, problem: Problem) -> str:
        return f"```python\n{problem.answer}\n```"

"""Tasks: RL datasets that turn rows into problems and judge completions.

This package owns the ``Problem`` record, the ``Task`` base class and the task registry;
``rlvr.tasks.sources`` owns where rows come from (the repository's data/, the Hugging Face
hub, an operator's saved datasets). Each task file owns its prompt template, answer parser
and checker; it does not own rewards (``rlvr.rewards``) or sampling (``rlvr.rollout``).
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator

Verdict = Literal["pass", "fail", "error"]
"""What a checker decided: correct, wrong, or could not be judged (excluded from the loss)."""

VerifyFn = Callable[[Sequence["Problem"], Sequence[str]], list[Verdict]]
"""An injected verifier, e.g. the worker's sandbox queue for code tasks."""

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Problem:
    """One prompt with what is needed to judge its completions."""

    id: str
    prompt: str
    answer: str
    difficulty: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


class TaskOptions(BaseModel):
    """Base of each task's options; ``name`` picks the task in a spec."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_data_dir(cls, data: Any) -> Any:
        """Drops ``data_dir: null`` and refuses any other ``data_dir``.

        The option was removed (a path let any tenant read the server's files), but a stored
        spec is a full dump, so the jobs stored before hold ``data_dir: null``; they must still
        resume and clone. A path they name is not read: such a job fails, saying why.
        """
        if isinstance(data, dict) and "data_dir" in data:
            if data["data_dir"] is not None:
                raise ValueError("data_dir was removed: a task reads no path a spec names; use `source` "
                                 "(`local:<name>` for a dataset the operator saved)")
            data = {key: value for key, value in data.items() if key != "data_dir"}
        return data


class Task:
    """A task: problems per split, a checker, and a reference completion for SFT."""

    options_type: ClassVar[type[TaskOptions]]
    default_rewards: ClassVar[list[dict[str, Any]]] = [{"name": "verdict", "weight": 1.0}]

    def __init__(self, options: TaskOptions):
        self.options = options

    def problems(self, split: str) -> list[Problem]:
        raise NotImplementedError

    def check(self, problem: Problem, completion: str) -> Verdict:
        raise NotImplementedError

    def reference(self, problem: Problem) -> str | None:
        """A correct completion for SFT, or None when the task has none."""
        return None

    def verdicts(
        self, problems: Sequence[Problem], completions: Sequence[str], verify: VerifyFn | None = None
    ) -> list[Verdict]:
        """Judge a batch. Rule tasks check in-process; code tasks override this to call ``verify``."""
        return [self.check(problem, completion) for problem, completion in zip(problems, completions)]


TASKS: dict[str, type[Task]] = {}


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    def add(cls: type[Task]) -> type[Task]:
        TASKS[name] = cls
        return cls

    return add


def build_task(options: TaskOptions) -> Task:
    return TASKS[options.name](options)  # type: ignore[attr-defined]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


from rlvr.tasks import (  # noqa: E402,F401  (they register)
    arithmetic, countdown, gsm8k, humaneval, jsonl, math500, mbpp, program_synthesis,
)

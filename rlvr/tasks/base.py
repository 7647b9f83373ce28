"""What every task is made of, and the registry that finds a task by name.

Owns the ``Problem`` record, the ``Task`` and ``CodeTask`` bases, the ``Grade`` of a check
and the ``VerifyFn`` type, the registry (``TASKS``, ``register_task``, ``build_task``), the
splits and where datasets live on disk. Imports no task module: the task modules import
this one, and ``rlvr.tasks`` imports them, so nothing here depends on the order of imports.
Does not own rewards (``rlvr.rewards``) or sampling (``rlvr.rollout``).
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from rlvr.code import extract_code

Grade = Literal["pass", "fail", "error"]
"""What a task's checker decided about a completion: correct, wrong, or could not be judged
(excluded from the loss). A code task's grade is a ``rlvr.verifier.CodeGrade``, which also
carries the sandbox's verdict. Specs, stored experiences and the API name it ``verdict``
(the ``verdict`` reward, ``Experience.verdict``), names kept for the data already out there."""

VerifyFn = Callable[[Sequence["Problem"], Sequence[str]], list[Grade]]
"""An injected verifier, e.g. the worker's sandbox queue for code tasks (``rlvr.verifier``)."""

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Problem:
    """One prompt with what is needed to grade its completions."""

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
                raise ValueError(
                    "data_dir was removed: a task reads no path a spec names; use `source` "
                    "(`local:<name>` for a dataset the operator saved)"
                )
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

    def check(self, problem: Problem, completion: str) -> Grade:
        raise NotImplementedError

    def reference(self, problem: Problem) -> str | None:
        """A correct completion for SFT, or None when the task has none."""
        return None

    def grade(
        self,
        problems: Sequence[Problem],
        completions: Sequence[str],
        verify: VerifyFn | None = None,
    ) -> list[Grade]:
        """Grade a batch. Rule tasks check in-process; code tasks override this to call ``verify``."""
        return [
            self.check(problem, completion) for problem, completion in zip(problems, completions)
        ]


class CodeTask(Task):
    """A task whose completions are programs, judged in the sandbox by the injected verifier.

    Subclasses own ``program(problem, completion)`` and put the sandbox tests in each
    problem's ``metadata["tests"]``. ``grade`` returns ``rlvr.verifier.CodeGrade``s; the
    default reward, ``code_tests``, reads them (``rlvr.rewards.code``).
    """

    default_rewards = [{"name": "code_tests", "weight": 1.0}]

    def program(self, problem: Problem, completion: str) -> str:
        return extract_code(completion)

    def check(self, problem: Problem, completion: str) -> Grade:
        raise TypeError(f"{type(self).__name__} runs code: grade it with grade(..., verify=...)")

    def grade(
        self,
        problems: Sequence[Problem],
        completions: Sequence[str],
        verify: VerifyFn | None = None,
    ) -> list[Grade]:
        if verify is None:
            raise ValueError(
                f"{type(self).__name__} runs code and needs a verifier, e.g. rlvr.verifier.local_sandbox_verifier()"
            )
        return verify(
            problems, [self.program(p, c) for p, c in zip(problems, completions, strict=True)]
        )


TASKS: dict[str, type[Task]] = {}
"""Task name -> class; filled by ``register_task`` as ``rlvr.tasks`` imports each task module."""


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

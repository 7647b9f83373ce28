"""Scoring a batch: from completions to the task's grades and the weighted rewards.

The "verify" and "rewards" arrows of a step. Owns building the reward columns from problems
(prompt, answer, grade, task metadata and the injected ``verify``) and calling the task's
checker and the reward functions. Does not own the checkers (``rlvr.tasks``), the rewards
(``rlvr.rewards``) nor running code (``rlvr.verifier``). Torch-free.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.rewards.base import score
from rlvr.tasks.base import Grade, Problem, Task, VerifyFn


@dataclass
class ScoredBatch:
    """A batch's grades, total rewards and each reward's values, all aligned with its completions."""

    grades: list[Grade]
    rewards: list[float | None]
    components: dict[str, list[float | None]]


def reward_specs(task: Task, configured: Sequence[Any]) -> list[dict[str, Any]]:
    """The spec's rewards as dicts, or the task's defaults when the spec lists none."""
    return [r.model_dump() for r in configured] if configured else list(task.default_rewards)


def score_batch(
    task: Task,
    problems: Sequence[Problem],
    completions: list[str],
    rewards: Sequence[dict[str, Any]],
    verify: VerifyFn | None = None,
) -> ScoredBatch:
    """Grades from the task, then the weighted rewards; ``problems`` align with ``completions``."""
    grades = task.grade(problems, completions, verify=verify)
    columns: dict[str, Any] = {
        "prompt": [p.prompt for p in problems],
        "answer": [p.answer for p in problems],
        "grade": grades,
        "verify": verify,
    }
    for key in {key for p in problems for key in p.metadata}:
        columns.setdefault(key, [p.metadata.get(key) for p in problems])
    totals, components = score(rewards, completions, columns)
    return ScoredBatch(grades=grades, rewards=totals, components=components)

"""Multi-turn refinement: a failed attempt gets the verifier's feedback and tries again.

Owns the refinement episode of each sampled row: turn 1 is the ordinary rollout; while a
row's grade is ``fail`` and turns remain, its next prompt is the previous prompt, the
attempt, the feedback (``CodeGrade.feedback``: the error or the first failing test) and
the original prompt again, and one new completion is sampled for it. Rows that pass, or
that could not be judged (``error``), stop. Then, per the spec:

- ``reward``: ``final`` (the last turn's), ``best`` (the best turn's), or ``discounted``
  (the last turn's times ``discount ** (turns - 1)``, so a first-turn solution is worth most);
- ``loss``: ``last`` (one row per episode: its last turn, prompt with the whole context) or
  ``all`` (every turn is a row, each with its episode's advantage).

Does not own advantages or the update; it hands the trainer rows and an episode index.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from rlvr.rollout import Rollout, generate, merge_rollouts
from rlvr.scoring import ScoredBatch, score_batch
from rlvr.tasks.base import Grade, Problem, Task, VerifyFn

TEMPLATE = "{context}{completion}\n# Feedback: {feedback}\n# Try again.\n{prompt}"


@dataclass
class Episodes:
    """Refinement episodes of B sampled rows, and the rows the loss trains on."""

    rollout: Rollout  # (R, ...) rows for the loss
    row_episode: Tensor  # (R,) episode of each row
    last_row: list[int]  # (B,) row of each episode's last turn in ``rollout``
    grades: list[Grade]  # (B,) last turn's
    rewards: list[float | None]  # (B,) per the reward mode
    components: dict[str, list[float | None]]  # name -> (B,), last turn's
    turns: list[list[dict[str, Any]]] = field(
        default_factory=list
    )  # per episode: completion, verdict (its grade, under the name stored experiences use), reward, feedback

    def turn_metrics(self) -> dict[str, float]:
        count = len(self.turns)
        return {
            "refine/mean_turns": sum(len(t) for t in self.turns) / count,
            "refine/first_turn_pass_rate": sum(t[0]["verdict"] == "pass" for t in self.turns)
            / count,
            "refine/final_pass_rate": sum(t[-1]["verdict"] == "pass" for t in self.turns) / count,
        }


def feedback_text(grade: Grade, show_tests: bool) -> str:
    """The verifier's account of a failed attempt; plain grades of rule tasks say only "wrong".

    >>> feedback_text("fail", False)
    'The answer was wrong.'
    """
    explain = getattr(grade, "feedback", None)
    return explain(show_tests=show_tests) if explain else "The answer was wrong."


def episode_reward(rewards: Sequence[float | None], mode: str, discount: float) -> float | None:
    """One episode's reward from its turns' rewards.

    >>> episode_reward([-0.5, 1.0], "final", 0.5), episode_reward([0.2, -0.5], "best", 0.5)
    (1.0, 0.2)
    >>> episode_reward([-0.5, 1.0], "discounted", 0.5), episode_reward([-0.5, None], "best", 0.5)
    (0.5, None)
    """
    if rewards[-1] is None:
        return None
    if mode == "final":
        return rewards[-1]
    if mode == "best":
        return max(r for r in rewards if r is not None)
    if mode == "discounted":
        return rewards[-1] * discount ** (len(rewards) - 1)
    raise ValueError(f"unknown refinement reward mode {mode!r}")


def refine(
    model,
    tokenizer,
    task: Task,
    problems: Sequence[Problem],
    first: Rollout,
    scored: ScoredBatch,
    rewards: Sequence[dict[str, Any]],
    verify: VerifyFn | None,
    max_turns: int,
    max_new_tokens: int,
    reward_mode: Literal["final", "best", "discounted"] = "final",
    loss: Literal["last", "all"] = "last",
    discount: float = 0.5,
    show_tests: bool = False,
    template: str = TEMPLATE,
    sampling: dict[str, Any] | None = None,
) -> Episodes:
    """Run the episodes of the B rows of ``first`` (``problems`` aligned with its rows).

    ``sampling``: ``rlvr.rollout.sampling_options`` of the job; each row keeps its first
    turn's temperature and ``max_new_tokens`` is the argument's."""
    count = len(problems)
    contexts = [p.prompt for p in problems]
    history: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    last_turn = [0] * count
    parts, part_rows = [first], [list(range(count))]
    current, grades, components = scored, list(scored.grades), scored.components
    last_components = {name: list(values) for name, values in components.items()}
    active = list(range(count))
    completions = first.completions
    for turn in range(max_turns):
        for i, row in enumerate(active):
            history[row].append(
                {
                    "completion": completions[i],
                    "verdict": str(current.grades[i]),
                    "reward": current.rewards[i],
                    "feedback": None,
                }
            )
            grades[row] = current.grades[i]
            last_turn[row] = turn
            for name, values in current.components.items():
                last_components[name][row] = values[i]
        retry = [row for row in active if grades[row] == "fail"]
        if turn + 1 == max_turns or not retry:
            break
        for row in retry:
            history[row][-1]["feedback"] = feedback_text(grades[row], show_tests)
            contexts[row] = template.format(
                context=contexts[row],
                completion=history[row][-1]["completion"],
                feedback=history[row][-1]["feedback"],
                prompt=problems[row].prompt,
            )
        rollout = _generate_rows(
            model,
            tokenizer,
            [contexts[r] for r in retry],
            first.temperatures[retry].tolist(),
            max_new_tokens,
            sampling or {},
        )
        current = score_batch(
            task, [problems[r] for r in retry], rollout.completions, rewards, verify
        )
        parts.append(rollout)
        part_rows.append(retry)
        active, completions = retry, rollout.completions
    return _episodes(
        parts,
        part_rows,
        last_turn,
        history,
        grades,
        last_components,
        reward_mode,
        loss,
        discount,
        tokenizer.pad_token_id,
    )


def _generate_rows(
    model,
    tokenizer,
    prompts: list[str],
    temperatures: list[float],
    max_new_tokens: int,
    sampling: dict[str, Any],
) -> Rollout:
    """One sample per prompt at that row's temperature (one generate call per distinct value)."""
    order = sorted(range(len(prompts)), key=lambda i: temperatures[i])
    pieces, placed = [], []
    for value in sorted(set(temperatures)):
        rows = [i for i in order if temperatures[i] == value]
        pieces.append(
            generate(
                model,
                tokenizer,
                [prompts[i] for i in rows],
                group_size=1,
                **{**sampling, "temperature": value, "max_new_tokens": max_new_tokens},
            )
        )
        placed.extend(rows)
    merged = merge_rollouts(
        pieces, [range(len(p.completions)) for p in pieces], tokenizer.pad_token_id
    )
    return select_rows(merged, [placed.index(i) for i in range(len(prompts))])


def select_rows(rollout: Rollout, rows: Sequence[int]) -> Rollout:
    """The rollout's ``rows`` in that order."""
    index = torch.tensor(list(rows), dtype=torch.long, device=rollout.prompt_ids.device)
    return Rollout(
        prompt_ids=rollout.prompt_ids[index],
        prompt_mask=rollout.prompt_mask[index],
        completion_ids=rollout.completion_ids[index],
        completion_mask=rollout.completion_mask[index],
        logprobs=rollout.logprobs[index],
        temperatures=rollout.temperatures[index],
        truncated=rollout.truncated[index],
        completions=[rollout.completions[i] for i in rows],
    )


def _episodes(
    parts,
    part_rows,
    last_turn,
    history,
    grades,
    components,
    reward_mode,
    loss,
    discount,
    pad_token_id,
) -> Episodes:
    if loss == "last":
        keep = [
            [i for i, row in enumerate(rows) if last_turn[row] == turn]
            for turn, rows in enumerate(part_rows)
        ]
    elif loss == "all":
        keep = [list(range(len(rows))) for rows in part_rows]
    else:
        raise ValueError(f"unknown refinement loss mode {loss!r}")
    merged = merge_rollouts(parts, keep, pad_token_id)
    episode_of = [part_rows[turn][i] for turn, rows in enumerate(keep) for i in rows]
    turn_of = [turn for turn, rows in enumerate(keep) for _ in rows]
    last_row = [0] * len(history)
    for position, (row, turn) in enumerate(zip(episode_of, turn_of)):
        if turn == last_turn[row]:
            last_row[row] = position
    return Episodes(
        rollout=merged,
        row_episode=torch.tensor(episode_of, dtype=torch.long),
        last_row=last_row,
        grades=grades,
        rewards=[
            episode_reward([t["reward"] for t in turns], reward_mode, discount) for turns in history
        ],
        components=components,
        turns=history,
    )

"""Experience replay: a bounded buffer of past rollouts mixed into each update.

Owns storing judged rollout rows (prompt and completion tokens without padding, the
sampling log-probs, temperature, advantage, the step they came from), sampling a share of
an update from them, and building the mixed batch. Replayed rows are off-policy: their
stored log-probs are those of the policy that sampled them, so the update's ratio
``pi_now / pi_then`` is clipped exactly like an on-policy PPO ratio and rows whose ratio has
left the clip range stop pushing (``rlvr.loss``). Their advantage is the one computed when
they were sampled. Off by default (``ReplaySpec.enabled``); rows whose reward was None
are never stored.
"""

import random
from collections import deque
from dataclasses import dataclass

import torch
from torch import Tensor

from rlvr.rollout import Rollout, merge_rollouts


@dataclass(frozen=True)
class StoredRow:
    prompt_ids: Tensor  # (Tp,) without padding
    completion_ids: Tensor  # (T,) up to and including EOS
    logprobs: Tensor  # (T,) sampling log-probs
    temperature: float
    truncated: bool
    completion: str
    advantage: float
    step: int


def replay_count(fresh: int, fraction: float) -> int:
    """Replayed rows so that they make up ``fraction`` of an update with ``fresh`` new rows.

    >>> replay_count(48, 0.25), replay_count(10, 0.0)
    (16, 0)
    """
    return round(fresh * fraction / (1.0 - fraction)) if fraction > 0 else 0


class ReplayBuffer:
    """The most recent ``size`` rows; sampled once it holds ``min_size``."""

    def __init__(self, size: int, min_size: int, fraction: float, seed: int = 0):
        if not 0.0 <= fraction < 1.0:
            raise ValueError("the replay fraction must be in [0, 1)")
        self.rows: deque[StoredRow] = deque(maxlen=size)
        self.min_size = min_size
        self.fraction = fraction
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, rollout: Rollout, advantages: Tensor, valid: Tensor, step: int) -> None:
        """Store each valid row of a judged rollout.  advantages, valid: (B,)"""
        prompt_lengths = rollout.prompt_mask.sum(dim=1).tolist()
        lengths = rollout.completion_mask.sum(dim=1).tolist()
        for row in range(len(rollout.completions)):
            if not bool(valid[row]):
                continue
            start, length = (
                rollout.prompt_ids.shape[1] - int(prompt_lengths[row]),
                int(lengths[row]),
            )
            self.rows.append(
                StoredRow(
                    prompt_ids=rollout.prompt_ids[row, start:].cpu(),
                    completion_ids=rollout.completion_ids[row, :length].cpu(),
                    logprobs=rollout.logprobs[row, :length].detach().cpu(),
                    temperature=float(rollout.temperatures[row]),
                    truncated=bool(rollout.truncated[row]),
                    completion=rollout.completions[row],
                    advantage=float(advantages[row]),
                    step=step,
                )
            )

    def sample(self, fresh: int, pad_token_id: int) -> tuple[Rollout, Tensor, Tensor] | None:
        """(rollout, advantages, steps) of the replayed share for an update of ``fresh`` rows,
        or None before the buffer holds ``min_size`` rows."""
        count = min(replay_count(fresh, self.fraction), len(self.rows))
        if len(self.rows) < self.min_size or count == 0:
            return None
        chosen = self.rng.sample(list(self.rows), count)
        return (
            as_rollout(chosen, pad_token_id),
            torch.tensor([row.advantage for row in chosen]),
            torch.tensor([row.step for row in chosen]),
        )


def as_rollout(rows: list[StoredRow], pad_token_id: int) -> Rollout:
    """Stored rows re-padded as one rollout: prompts on the left, completions on the right."""
    prompt_width = max(len(r.prompt_ids) for r in rows)
    width = max(len(r.completion_ids) for r in rows)

    def padded(values: Tensor, total: int, fill: float, left: bool = False) -> Tensor:
        pad = torch.full((total - len(values),), fill, dtype=values.dtype)
        return torch.cat([pad, values] if left else [values, pad])

    return Rollout(
        prompt_ids=torch.stack(
            [padded(r.prompt_ids, prompt_width, pad_token_id, left=True) for r in rows]
        ),
        prompt_mask=torch.stack(
            [padded(torch.ones_like(r.prompt_ids), prompt_width, 0, left=True) for r in rows]
        ),
        completion_ids=torch.stack([padded(r.completion_ids, width, pad_token_id) for r in rows]),
        completion_mask=torch.stack(
            [padded(torch.ones(len(r.completion_ids)), width, 0.0) for r in rows]
        ),
        logprobs=torch.stack([padded(r.logprobs, width, 0.0) for r in rows]),
        temperatures=torch.tensor([r.temperature for r in rows]),
        truncated=torch.tensor([r.truncated for r in rows]),
        completions=[r.completion for r in rows],
    )


def mix(
    fresh: Rollout,
    fresh_advantages: Tensor,
    fresh_valid: Tensor,
    replayed: tuple[Rollout, Tensor, Tensor] | None,
    pad_token_id: int,
) -> tuple[Rollout, Tensor, Tensor]:
    """The update batch: fresh rows then replayed ones, with advantages and the row mask.  -> B', (B',), (B',)"""
    if replayed is None:
        return fresh, fresh_advantages, fresh_valid
    old, old_advantages, _ = replayed
    device = fresh.prompt_ids.device
    old = Rollout(
        **{
            name: value.to(device) if isinstance(value, Tensor) else value
            for name, value in vars(old).items()
        }
    )
    old.prompt_mask = old.prompt_mask.to(fresh.prompt_mask.dtype)
    old.completion_mask = old.completion_mask.to(fresh.completion_mask.dtype)
    merged = merge_rollouts(
        [fresh, old], [range(len(fresh.completions)), range(len(old.completions))], pad_token_id
    )
    advantages = torch.cat([fresh_advantages, old_advantages.to(fresh_advantages)])
    valid = torch.cat(
        [fresh_valid.to(device), torch.ones(len(old.completions), dtype=torch.bool, device=device)]
    )
    return merged, advantages, valid

"""The policy-gradient math: masks, advantages, policy losses, aggregation, KL, entropy.

Pure typed functions over tensors, no I/O and no config objects. Each family is a table
(``ADVANTAGES``, ``POLICY_LOSSES``, ``AGGREGATIONS``, ``KL_ESTIMATORS``): a new variant is
a new function in its table, chosen by name from the spec. Shapes: P prompts, G samples
per prompt, B = P x G sequences, T completion tokens, V vocabulary.

Departures from the papers, on purpose:
- rewards that are NaN (the reward was None) are left out of every mean and std, and their
  advantage is 0; the trainer also masks their tokens out of the loss;
- the std in GRPO's normalisation is the unbiased sample std plus 1e-4 (as TRL);
- "ppo" has no value network: an EMA of the mean reward is its baseline.
"""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

STD_EPS = 1e-4


def completion_mask(completion_ids: Tensor, stop_ids: int | Sequence[int]) -> Tensor:
    """1.0 for tokens up to and including the first stop id (EOS, end of turn), 0.0 after it.

    (B, T) -> (B, T)"""
    ids = torch.tensor(stop_ids if isinstance(stop_ids, Sequence) else [stop_ids])
    is_eos = torch.isin(completion_ids, ids.to(completion_ids.device)).int()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return (~after_eos).float()


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is 1; 0 when the mask is empty."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def _group_stats(rewards: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-group count, mean and unbiased std over valid entries.  (P, G) -> 3 x (P, 1)"""
    filled = torch.where(valid, rewards, torch.zeros_like(rewards))
    count = valid.sum(dim=1, keepdim=True)
    mean = filled.sum(dim=1, keepdim=True) / count.clamp(min=1)
    squares = torch.where(valid, (rewards - mean) ** 2, torch.zeros_like(rewards)).sum(
        dim=1, keepdim=True
    )
    std = (squares / (count - 1).clamp(min=1)).sqrt()
    return count, mean, std


def group_advantages(rewards: Tensor, valid: Tensor, scale: bool, baseline: float) -> Tensor:
    """GRPO: reward minus its group's mean, divided by the group's std when ``scale``.

    rewards, valid: (P, G) -> (P, G). ``baseline`` is unused (group-relative).
    """
    _, mean, std = _group_stats(rewards, valid)
    advantages = rewards - mean
    if scale:
        advantages = advantages / (std + STD_EPS)
    return torch.where(valid, advantages, torch.zeros_like(advantages))


def rloo_advantages(rewards: Tensor, valid: Tensor, scale: bool, baseline: float) -> Tensor:
    """RLOO: reward minus the mean of the other valid samples of its group.

    rewards, valid: (P, G) -> (P, G). Groups with fewer than 2 valid samples get 0.
    """
    count, mean, std = _group_stats(rewards, valid)
    total = mean * count
    others = (total - rewards) / (count - 1).clamp(min=1)
    advantages = rewards - others
    if scale:
        advantages = advantages / (std + STD_EPS)
    keep = valid & (count >= 2)
    return torch.where(keep, advantages, torch.zeros_like(advantages))


def ema_advantages(rewards: Tensor, valid: Tensor, scale: bool, baseline: float) -> Tensor:
    """REINFORCE/PPO: reward minus a running baseline, whitened over the batch when ``scale``.

    rewards, valid: (P, G) -> (P, G).
    """
    advantages = rewards - baseline
    if scale:
        std = rewards[valid].std() if valid.sum() > 1 else torch.tensor(0.0)
        advantages = advantages / (std + STD_EPS)
    return torch.where(valid, advantages, torch.zeros_like(advantages))


def ema_update(
    baseline: float | None, rewards: Tensor, valid: Tensor, decay: float
) -> float | None:
    """The next EMA baseline; the first batch's mean starts it. None until a reward is valid."""
    if not valid.any():
        return baseline
    mean = rewards[valid].mean().item()
    return mean if baseline is None else decay * baseline + (1 - decay) * mean


ADVANTAGES: dict[str, Callable[[Tensor, Tensor, bool, float], Tensor]] = {
    "group": group_advantages,
    "rloo": rloo_advantages,
    "ema": ema_advantages,
}


def clipped_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, clip_low: float, clip_high: float
) -> Tensor:
    """PPO's clipped surrogate per token, with separate low and high clip (clip-higher).

    logprobs, old_logprobs: (B, T); advantages: (B,) -> (B, T)
    """
    ratio = torch.exp(logprobs - old_logprobs)
    advantage = advantages.unsqueeze(1)
    unclipped = ratio * advantage
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * advantage
    return -torch.minimum(unclipped, clipped)


def plain_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, clip_low: float, clip_high: float
) -> Tensor:
    """REINFORCE: ratio x advantage, unclipped; its gradient at ratio 1 is advantage x grad log p.

    logprobs, old_logprobs: (B, T); advantages: (B,) -> (B, T)
    """
    return -torch.exp(logprobs - old_logprobs) * advantages.unsqueeze(1)


POLICY_LOSSES: dict[str, Callable[[Tensor, Tensor, Tensor, float, float], Tensor]] = {
    "clipped": clipped_policy_loss,
    "plain": plain_policy_loss,
}


def clip_fractions(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float,
    clip_high: float,
) -> dict[str, float]:
    """Share of tokens whose ratio the clip stopped: low (A < 0), high (A > 0), either (TRL's names)."""
    ratio = torch.exp(logprobs - old_logprobs)
    advantage = advantages.unsqueeze(1)
    low = ((ratio < 1 - clip_low) & (advantage < 0)).float()
    high = ((ratio > 1 + clip_high) & (advantage > 0)).float()
    return {
        "clip_ratio/low_mean": masked_mean(low, mask).item(),
        "clip_ratio/high_mean": masked_mean(high, mask).item(),
        "clip_ratio/region_mean": masked_mean(torch.maximum(low, high), mask).item(),
    }


def token_mean(per_token: Tensor, mask: Tensor, max_new_tokens: int) -> Tensor:
    """Mean over every unmasked token of the batch (DAPO's token-level loss).  (B, T) -> ()"""
    return masked_mean(per_token, mask)


def sequence_mean(per_token: Tensor, mask: Tensor, max_new_tokens: int) -> Tensor:
    """Mean over each sequence's tokens, then over sequences that have any (GRPO).  (B, T) -> ()"""
    lengths = mask.sum(dim=1)
    per_sequence = (per_token * mask).sum(dim=1) / lengths.clamp(min=1)
    return masked_mean(per_sequence, (lengths > 0).float())


def constant_normalizer(per_token: Tensor, mask: Tensor, max_new_tokens: int) -> Tensor:
    """Sum over tokens divided by (sequences with tokens x max_new_tokens) (Dr. GRPO).  (B, T) -> ()"""
    sequences = (mask.sum(dim=1) > 0).sum().clamp(min=1)
    return (per_token * mask).sum() / (sequences * max_new_tokens)


AGGREGATIONS: dict[str, Callable[[Tensor, Tensor, int], Tensor]] = {
    "token": token_mean,
    "sequence": sequence_mean,
    "constant": constant_normalizer,
}


def aggregation_units(aggregation: str, mask: Tensor) -> Tensor:
    """What an aggregation divides by, up to constants: unmasked tokens for ``token``,
    sequences that have any for ``sequence`` and ``constant``.  (B, T) -> ()

    A micro-batch's aggregate times its units over the whole batch's is its part of the
    batch's aggregate, so gradients accumulated that way equal one pass over the batch."""
    if aggregation == "token":
        return mask.sum()
    return (mask.sum(dim=1) > 0).sum().to(mask.dtype)


def kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k1 = log p - log q: unbiased for KL(p || q), can be negative.  (B, T) -> (B, T)"""
    return logprobs - ref_logprobs


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """k3 = q/p - log(q/p) - 1: unbiased and never negative.  (B, T) -> (B, T)"""
    log_ratio = ref_logprobs - logprobs
    return torch.exp(log_ratio) - log_ratio - 1


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"k1": kl_k1, "k3": kl_k3}


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """Log-probability of each chosen token.  logits (B, T, V), tokens (B, T) -> (B, T)"""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy(logits: Tensor) -> Tensor:
    """Entropy of each next-token distribution.  (B, T, V) -> (B, T)"""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)

"""Correcting for a sampler that is not the trainer: truncated importance sampling (TIS).

An inference engine (vLLM) samples with other kernels and often another precision than the
trainer's forward pass, so even with identical weights the distribution a token was drawn
from (pi_sampler) is not the one the loss differentiates (pi_trainer). Treating the rows as
on-policy biases the gradient; Yao et al., "Your efficient RL framework secretly brings you
off-policy RL training" (2025), weight each token's policy loss by the importance ratio
pi_trainer_old / pi_sampler, truncated at C so that a token the sampler found unlikely
cannot dominate a step. veRL and TRL (``vllm_importance_sampling_correction``, token
truncation) adopted it; so do we, in its token-level form.

The PPO ratio keeps its usual meaning, pi_trainer / pi_trainer_old, with pi_trainer_old
recomputed by the trainer before its first update of the step; TIS covers the gap between
that and the sampler. Pure functions over tensors: the trainer computes the log-probs.
"""

import torch
from torch import Tensor

from rlvr.loss import masked_mean


def truncated_importance_weights(
    trainer_logprobs: Tensor, sampler_logprobs: Tensor, cap: float
) -> Tensor:
    """min(exp(logp_trainer_old - logp_sampler), cap) per token.  (B, T), (B, T) -> (B, T)

    >>> from math import log
    >>> trainer = torch.tensor([[log(0.5), log(0.9)]])
    >>> sampler = torch.tensor([[log(0.25), log(0.3)]])
    >>> truncated_importance_weights(trainer, sampler, cap=2.5).tolist()  # 0.5/0.25; 0.9/0.3 > 2.5
    [[2.0, 2.5]]
    """
    return torch.exp(trainer_logprobs - sampler_logprobs).clamp(max=cap)


def mismatch_metrics(
    trainer_logprobs: Tensor, sampler_logprobs: Tensor, cap: float, mask: Tensor
) -> dict[str, float]:
    """How far the sampler is from the trainer, over the tokens ``mask`` keeps (TRL's names).

    ``sampling/logp_difference/*``: |logp_trainer - logp_sampler|; ``sampling/importance_ratio/*``:
    the ratio before truncation; ``sampling/importance_ratio/capped``: the share truncated.
    trainer_logprobs, sampler_logprobs, mask: (B, T)
    """
    kept = mask.bool()
    if not kept.any():
        return {}
    difference = (trainer_logprobs - sampler_logprobs).abs()
    ratio = torch.exp(trainer_logprobs - sampler_logprobs)
    return {
        "sampling/logp_difference/mean": masked_mean(difference, mask).item(),
        "sampling/logp_difference/max": difference[kept].max().item(),
        "sampling/importance_ratio/mean": masked_mean(ratio, mask).item(),
        "sampling/importance_ratio/min": ratio[kept].min().item(),
        "sampling/importance_ratio/max": ratio[kept].max().item(),
        "sampling/importance_ratio/capped": masked_mean((ratio > cap).float(), mask).item(),
    }

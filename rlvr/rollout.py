"""Rollout: sample G completions for each of P prompts in one batched ``generate``.

Owns tokenising prompts (left padding), the sampling warper (a temperature per sample,
then top-p), EOS stopping, decoding, and the log-probabilities of the sampled tokens under
the sampling distribution, kept for the PPO ratio. Also owns recomputing log-probs of
those tokens under a (possibly updated) model, so rollout and training agree on positions.
Does not own rewards or advantages.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from rlvr.loss import completion_mask, entropy, token_logprobs


@dataclass
class Rollout:
    """Everything sampled in one step; row b is prompt b // G, sample b % G."""

    prompt_ids: Tensor  # (B, Tp) left-padded
    prompt_mask: Tensor  # (B, Tp)
    completion_ids: Tensor  # (B, T)
    completion_mask: Tensor  # (B, T) 1.0 up to and including EOS
    logprobs: Tensor  # (B, T) sampling log-probs of the chosen tokens, 0 where masked
    temperatures: Tensor  # (B,)
    truncated: Tensor  # (B,) True when no EOS came within max_new_tokens
    completions: list[str]


class PerSampleWarper(LogitsProcessor):
    """Divide each row's logits by its own temperature, then keep its top-p nucleus."""

    def __init__(self, temperatures: Tensor, top_p: float):
        self.temperatures = temperatures
        self.top_p = top_p

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        scores = scores / self.temperatures.to(scores.device, scores.dtype).unsqueeze(1)  # (B, V)
        if self.top_p >= 1.0:
            return scores
        ordered, order = scores.sort(dim=-1, descending=True)
        mass_before = ordered.softmax(dim=-1).cumsum(dim=-1) - ordered.softmax(dim=-1)
        drop_sorted = mass_before >= self.top_p  # the top token always stays
        drop = drop_sorted.scatter(1, order, drop_sorted)
        return scores.masked_fill(drop, float("-inf"))


def sample_temperatures(
    temperature: float | Sequence[float], prompts: int, group_size: int
) -> Tensor:
    """One temperature per row: a scalar for all, or one per sample index of each group.  -> (P*G,)"""
    per_group = (
        [temperature] * group_size if isinstance(temperature, (int, float)) else list(temperature)
    )
    return torch.tensor(per_group * prompts, dtype=torch.float32)


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    group_size: int = 1,
    temperature: float | Sequence[float] = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    greedy: bool = False,
) -> Rollout:
    """Sample ``group_size`` completions per prompt in one batched call (greedy: argmax)."""
    device = next(model.parameters()).device
    rows = [prompt for prompt in prompts for _ in range(group_size)]
    encoded = tokenizer(rows, return_tensors="pt", padding=True).to(device)
    temperatures = (
        torch.ones(len(rows))
        if greedy
        else sample_temperatures(temperature, len(prompts), group_size)
    )
    config = GenerationConfig(
        do_sample=not greedy,
        max_new_tokens=max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        output_logits=True,
        return_dict_in_generate=True,
    )
    warpers = LogitsProcessorList([] if greedy else [PerSampleWarper(temperatures, top_p)])
    was_training = model.training
    model.eval()
    out = model.generate(**encoded, generation_config=config, logits_processor=warpers)
    model.train(was_training)
    prompt_length = encoded["input_ids"].shape[1]
    completion_ids = out.sequences[:, prompt_length:]  # (B, T)
    mask = completion_mask(completion_ids, tokenizer.eos_token_id)
    scale = temperatures.to(device).unsqueeze(1)  # (B, 1)
    logprobs = torch.stack(
        [
            token_logprobs(
                (step_logits.float() / scale).unsqueeze(1), completion_ids[:, t : t + 1]
            ).squeeze(1)
            for t, step_logits in enumerate(out.logits)
        ],
        dim=1,
    )  # (B, T)
    has_eos = (completion_ids == tokenizer.eos_token_id).any(dim=1)
    return Rollout(
        prompt_ids=encoded["input_ids"],
        prompt_mask=encoded["attention_mask"],
        completion_ids=completion_ids,
        completion_mask=mask,
        logprobs=logprobs * mask,
        temperatures=temperatures.to(device),
        truncated=~has_eos,
        completions=decode_completions(tokenizer, completion_ids, mask),
    )


def decode_completions(tokenizer, completion_ids: Tensor, mask: Tensor) -> list[str]:
    return [
        tokenizer.decode(ids[: int(length)], skip_special_tokens=True)
        for ids, length in zip(completion_ids.tolist(), mask.sum(dim=1).tolist())
    ]


def policy_logprobs(
    model,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    completion_mask: Tensor,
    temperatures: Tensor,
    with_entropy: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs (and entropies) of the completion tokens under ``model`` at each row's temperature.

    prompt_*: (B, Tp); completion_*: (B, T); temperatures: (B,) -> (B, T), (B, T) | None
    """
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention = torch.cat([prompt_mask, completion_mask.to(prompt_mask.dtype)], dim=1)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)  # as generate numbers left-padded rows
    length = completion_ids.shape[1]
    logits = model(
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=positions,
        logits_to_keep=length + 1,
    ).logits[:, :-1]  # (B, T, V)
    logits = logits.float() / temperatures.unsqueeze(1).unsqueeze(2)
    entropies = entropy(logits) if with_entropy else None
    return token_logprobs(logits, completion_ids), entropies


def _pad_to(tensor: Tensor, width: int, value: float, left: bool) -> Tensor:
    missing = width - tensor.shape[1]
    pad = torch.full((tensor.shape[0], missing), value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([pad, tensor] if left else [tensor, pad], dim=1)


def merge_rollouts(
    parts: Sequence[Rollout], rows: Sequence[Sequence[int]], pad_token_id: int
) -> Rollout:
    """The chosen ``rows`` of each part in one rollout, re-padded (prompts left, completions right)."""
    chosen = [
        (part, torch.tensor(list(keep), dtype=torch.long))
        for part, keep in zip(parts, rows)
        if len(keep)
    ]
    prompt_width = max(part.prompt_ids.shape[1] for part, _ in chosen)
    completion_width = max(part.completion_ids.shape[1] for part, _ in chosen)

    def gather(name: str, width: int | None = None, value: float = 0, left: bool = False) -> Tensor:
        pieces = [getattr(part, name)[keep.to(getattr(part, name).device)] for part, keep in chosen]
        if width is not None:
            pieces = [_pad_to(piece, width, value, left) for piece in pieces]
        return torch.cat(pieces)

    return Rollout(
        prompt_ids=gather("prompt_ids", prompt_width, pad_token_id, left=True),
        prompt_mask=gather("prompt_mask", prompt_width, 0, left=True),
        completion_ids=gather("completion_ids", completion_width, pad_token_id),
        completion_mask=gather("completion_mask", completion_width, 0),
        logprobs=gather("logprobs", completion_width, 0),
        temperatures=gather("temperatures"),
        truncated=gather("truncated"),
        completions=[part.completions[i] for part, keep in chosen for i in keep.tolist()],
    )

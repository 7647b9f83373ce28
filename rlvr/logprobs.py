"""The sampling distribution: one warp used both to sample and to score, and chunked log-probs.

Owns turning a model's next-token logits into the distribution a rollout actually samples
from, in transformers' order: repetition penalty -> temperature -> top-k -> top-p. The
sampler (``WarpProcessor``, the only logits processor ``rlvr.rollout.generate`` gives
``generate``) and the loss (``completion_logprobs``) call the same ``warp_logits``, so the
log-probs recorded at sampling time and the ones the trainer differentiates are of one
distribution; a token outside the warped support has probability 0 in both. Before this,
the loss used temperature-scaled logits while ``generate`` silently added top-k 50 (or the
model's generation_config), a biased gradient.

Also owns the memory shape of the loss's log-probs: the trainer never materialises the
(B, T, V) logits of a batch. ``completion_logprobs`` takes the decoder's hidden states and
applies the output layer to a chunk of tokens at a time, each chunk under activation
checkpointing, so at most one chunk's (tokens, V) logits exist at once, forward or backward.

Does not own which tokens end a completion (``rlvr.rollout``) or the losses (``rlvr.loss``).
"""

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint
from transformers import LogitsProcessor

LOGIT_CHUNK_TOKENS = 1024
"""Tokens whose full-vocabulary logits exist at once in the loss: 1024 x 152k x 4 bytes is
0.6 GB for Qwen's vocabulary, against 20 GB for a 32 x 1024-token batch at once."""

MIN_LOGPROB = -30.0
"""Floor of a scored token's log-prob. A token can leave the warped support after an update
(top-k/top-p recomputed with the new weights): its log-prob is -inf, which would make the
ratio's gradient and the k3 KL NaN; floored, its ratio is ~0 and the clip bounds it."""


@dataclass(frozen=True)
class Warp:
    """The job-wide part of the sampling distribution (temperature is per row, kept apart)."""

    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off
    repetition_penalty: float = 1.0  # 1: off


NO_WARP = Warp()
"""Temperature only: greedy decoding and every caller that asks for nothing else."""


def warp_logits(logits: Tensor, temperatures: Tensor, warp: Warp, seen: Tensor | None) -> Tensor:
    """The sampled distribution's logits, -inf outside its support.

    logits (..., V) float; temperatures broadcastable to (...,); seen (..., V) bool, the tokens
    the repetition penalty applies to (prompt and completion so far), None when it is off.
    Penalty as CTRL and transformers: a positive logit is divided by it, a negative multiplied.
    """
    if warp.repetition_penalty != 1.0 and seen is not None:
        penalised = torch.where(
            logits < 0, logits * warp.repetition_penalty, logits / warp.repetition_penalty
        )
        logits = torch.where(seen, penalised, logits)
    logits = logits / temperatures.unsqueeze(-1)
    if 0 < warp.top_k < logits.shape[-1]:
        kth = logits.topk(warp.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))  # ties at the k-th stay, as HF
    if warp.top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= warp.top_p  # the top token always stays
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def entropy_of(logp: Tensor) -> Tensor:
    """Entropy of distributions given as log-probs, -inf entries allowed.  (..., V) -> (...)"""
    return -(logp.exp() * logp.masked_fill(torch.isinf(logp), 0.0)).sum(dim=-1)


class WarpProcessor(LogitsProcessor):
    """``generate``'s only logits processor: warps each step and records the sampled tokens'
    log-probs under the warped distribution, keeping one step's (B, V) at a time, not T."""

    def __init__(self, temperatures: Tensor, warp: Warp, prompt_ids: Tensor, prompt_mask: Tensor):
        self.temperatures = temperatures.to(prompt_ids.device)
        self.warp = warp
        self.seen = None
        if warp.repetition_penalty != 1.0:  # left padding is not context
            self.prompt_ids, self.prompt_mask = prompt_ids, prompt_mask.bool()
        self.last_logp: Tensor | None = None  # (B, V) of the step being sampled
        self.logprobs: list[Tensor] = []  # T x (B,)

    def _record(self, tokens: Tensor) -> None:
        self.logprobs.append(self.last_logp.gather(1, tokens.unsqueeze(1)).squeeze(1))

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if self.last_logp is not None:
            self._record(input_ids[:, -1])
        if self.warp.repetition_penalty != 1.0:
            if self.seen is None:
                self.seen = mark_seen(scores.shape, self.prompt_ids, self.prompt_mask)
            else:
                self.seen.scatter_(1, input_ids[:, -1:], True)
        warped = warp_logits(scores.float(), self.temperatures, self.warp, self.seen)
        self.last_logp = torch.log_softmax(warped, dim=-1)
        return warped

    def finish(self, completion_ids: Tensor) -> Tensor:
        """The recorded log-probs once ``generate`` returned.  completion_ids (B, T) -> (B, T)"""
        if self.last_logp is not None and len(self.logprobs) < completion_ids.shape[1]:
            self._record(completion_ids[:, len(self.logprobs)])
        return torch.stack(self.logprobs, dim=1)


def _seen_before(
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    start: int,
    stop: int,
    vocab: int,
) -> Tensor:
    """For completion positions start..stop-1, the tokens before each one (valid prompt tokens
    and the completion so far), as the sampler's ``seen``.  -> (B, stop - start, V) bool"""
    batch, width = completion_ids.shape[0], stop - start
    context = torch.cat([prompt_ids, completion_ids[:, : stop - 1]], dim=1)  # (B, L)
    valid = torch.cat(
        [prompt_mask.bool(), torch.ones_like(completion_ids[:, : stop - 1], dtype=torch.bool)],
        dim=1,
    )
    before = torch.arange(context.shape[1], device=context.device) < (
        prompt_ids.shape[1] + torch.arange(start, stop, device=context.device).unsqueeze(1)
    )  # (W, L): context index precedes position
    keep = valid.unsqueeze(1) & before.unsqueeze(0)  # (B, W, L)
    index = context.unsqueeze(1).expand(batch, width, -1)
    return mark_seen((batch, width, vocab), index, keep)


def mark_seen(shape: tuple[int, ...], index: Tensor, keep: Tensor) -> Tensor:
    """A bool tensor of ``shape``, True at index[..., l] wherever keep[..., l]. Counted, not
    scattered as bools: a pad's False and a real token's True may name the same id."""
    hits = torch.zeros(shape, dtype=torch.int32, device=index.device)
    return hits.scatter_add_(-1, index, keep.to(torch.int32)) > 0


def completion_logprobs(
    hidden: Tensor,
    output_layer: torch.nn.Module,
    completion_ids: Tensor,
    temperatures: Tensor,
    warp: Warp,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    with_entropy: bool = False,
    chunk_tokens: int = LOGIT_CHUNK_TOKENS,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs (and entropies) of the completion tokens under the warped distribution.

    hidden (B, T, H): the decoder's states that predict completion tokens 0..T-1;
    completion_ids (B, T); temperatures (B,); prompt_* (B, Tp), for the repetition penalty.
    -> (B, T), (B, T) | None. Logits are made a chunk of positions at a time, and with
    gradients on each chunk is checkpointed: backward recomputes its logits from ``hidden``.
    """
    batch, length = completion_ids.shape
    step = max(1, chunk_tokens // batch)
    scale = temperatures.float().unsqueeze(1)  # (B, 1)

    def chunk(states: Tensor, start: int) -> tuple[Tensor, Tensor]:
        stop = start + states.shape[1]
        logits = output_layer(states).float()  # (B, c, V)
        seen = None
        if warp.repetition_penalty != 1.0:
            seen = _seen_before(
                prompt_ids, prompt_mask, completion_ids, start, stop, logits.shape[-1]
            )
        logp = torch.log_softmax(warp_logits(logits, scale, warp, seen), dim=-1)
        chosen = logp.gather(-1, completion_ids[:, start:stop].unsqueeze(-1)).squeeze(-1)
        entropies = entropy_of(logp) if with_entropy else torch.zeros_like(chosen)
        return chosen.clamp(min=MIN_LOGPROB), entropies

    parts = []
    for start in range(0, length, step):
        states = hidden[:, start : start + step]
        if torch.is_grad_enabled() and states.requires_grad:
            parts.append(checkpoint(chunk, states, start, use_reentrant=False))
        else:
            parts.append(chunk(states, start))
    logprobs = torch.cat([p[0] for p in parts], dim=1)
    entropies = torch.cat([p[1] for p in parts], dim=1) if with_entropy else None
    return logprobs, entropies

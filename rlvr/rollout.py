"""Rollout: sample G completions for each of P prompts in one batched ``generate``.

Owns rendering prompts (the model's chat template, a system prompt) and tokenising them
(left padding, a length limit), what ends a completion (every end-of-turn id and stop
string; the tokens after it are neither decoded nor scored), decoding, and the log-probs
of the sampled tokens under the distribution they were drawn from, kept for the PPO ratio.
That distribution is ``rlvr.logprobs``'s warp, given to ``generate`` explicitly: the
model's generation_config (Qwen-Instruct's top_k 20, top_p 0.8, repetition penalty 1.05)
never adds to it. Also owns recomputing log-probs of those tokens under a (possibly
updated) model, with the same warp and positions. Does not own rewards or advantages.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import transformers
from torch import Tensor
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from rlvr.logprobs import LOGIT_CHUNK_TOKENS, NO_WARP, Warp, WarpProcessor, completion_logprobs
from rlvr.loss import completion_mask

MODEL_DEFAULTS_OFF = (
    {"use_model_defaults": False} if int(transformers.__version__.split(".")[0]) < 5 else {}
)
"""transformers 4.5x replaces a given field that equals the global default (temperature 1.0,
top_p 1.0) with the model's generation_config value unless told not to; 5.x fills unset
fields only, and every field that matters is set below."""


@dataclass
class Rollout:
    """Everything sampled in one step; row b is prompt b // G, sample b % G."""

    prompt_ids: Tensor  # (B, Tp) left-padded
    prompt_mask: Tensor  # (B, Tp)
    completion_ids: Tensor  # (B, T)
    completion_mask: Tensor  # (B, T) 1.0 up to and including the token that ended it
    logprobs: Tensor  # (B, T) sampling log-probs of the chosen tokens, 0 where masked
    temperatures: Tensor  # (B,)
    truncated: Tensor  # (B,) True when no end-of-turn id or stop string came in time
    completions: list[str]


def sample_temperatures(
    temperature: float | Sequence[float], prompts: int, group_size: int
) -> Tensor:
    """One temperature per row: a scalar for all, or one per sample index of each group.  -> (P*G,)"""
    per_group = (
        [temperature] * group_size if isinstance(temperature, (int, float)) else list(temperature)
    )
    return torch.tensor(per_group * prompts, dtype=torch.float32)


def sampling_options(sampling) -> dict:
    """A ``SamplingSpec`` as the keyword arguments of ``generate`` and every engine's."""
    return {
        "temperature": sampling.temperature,
        "top_k": sampling.top_k,
        "top_p": sampling.top_p,
        "repetition_penalty": sampling.repetition_penalty,
        "max_new_tokens": sampling.max_new_tokens,
        "stop_strings": tuple(sampling.stop_strings),
        "max_prompt_tokens": sampling.max_prompt_tokens,
        "chat_template": sampling.chat_template,
        "system_prompt": sampling.system_prompt,
    }


def warp_of(sampling) -> Warp:
    """The job-wide part of a ``SamplingSpec``'s distribution, for the loss."""
    return Warp(sampling.top_k, sampling.top_p, sampling.repetition_penalty)


def stop_token_ids(generation_config: GenerationConfig | None, tokenizer) -> list[int]:
    """Every id that ends a turn: the tokenizer's EOS and the generation_config's EOS ids
    (instruct models end a turn with another token than EOS: <|im_end|>, <|eot_id|>)."""
    ids = [tokenizer.eos_token_id]
    configured = getattr(generation_config, "eos_token_id", None)
    ids += configured if isinstance(configured, list) else [configured]
    return sorted({i for i in ids if i is not None})


def uses_chat_template(tokenizer, chat_template: str) -> bool:
    """``auto``: when the tokenizer has a template; ``on`` without one is an error."""
    has = bool(getattr(tokenizer, "chat_template", None))
    if chat_template == "on" and not has:
        raise ValueError(
            "sampling.chat_template is on but the model's tokenizer has no chat template"
        )
    return has and chat_template != "off"


def render_prompts(
    tokenizer, rows: Sequence[str], chat_template: str = "auto", system_prompt: str | None = None
) -> tuple[list[str], bool]:
    """The prompts as the model is shown them, and whether the tokenizer should add its special
    tokens: the chat template writes its own (a BOS, if the model has one). Rollouts and SFT
    both render through here, so an SFT model is trained on the prompts RL will sample from."""
    if uses_chat_template(tokenizer, chat_template):
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        texts = [
            tokenizer.apply_chat_template(
                [*system, {"role": "user", "content": row}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for row in rows
        ]
        return texts, False
    if system_prompt:
        return [f"{system_prompt}\n\n{row}" for row in rows], True
    return list(rows), True


def encode_prompts(
    tokenizer,
    rows: Sequence[str],
    chat_template: str = "auto",
    system_prompt: str | None = None,
    max_prompt_tokens: int | None = None,
):
    """Rendered (chat template and system prompt, when used) and left-padded, as ``pt`` tensors.

    A prompt longer than ``max_prompt_tokens`` is an error that says by how much: cutting a
    task's question would grade the model on a question it never saw."""
    texts, special = render_prompts(tokenizer, rows, chat_template, system_prompt)
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=special)
    longest = int(encoded["attention_mask"].sum(dim=1).max()) if len(rows) else 0
    if max_prompt_tokens is not None and longest > max_prompt_tokens:
        raise ValueError(
            f"a prompt is {longest} tokens, more than sampling.max_prompt_tokens "
            f"({max_prompt_tokens}); raise the limit or shorten the task's prompts"
        )
    return encoded


def _stop_string_length(tokenizer, ids: list[int], stop_strings: Sequence[str]) -> int | None:
    """Tokens up to and including the one that completes the first stop string, or None."""

    def stopped(count: int) -> bool:
        text = tokenizer.decode(ids[:count], skip_special_tokens=True)
        return any(stop in text for stop in stop_strings)

    if not stop_strings or not stopped(len(ids)):
        return None
    low, high = 1, len(ids)  # the shortest prefix whose text holds a stop string
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if stopped(middle) else (middle + 1, high)
    return low


class StopStrings(StoppingCriteria):
    """Stops a row once its completion's text (never the prompt's) holds a stop string.

    Only the last few tokens are decoded each step (a string of n characters spans at most
    n tokens), so a step costs O(B), not O(B x T); ``finish_rollout`` decides the cut."""

    def __init__(self, tokenizer, stop_strings: Sequence[str], prompt_length: int):
        self.tokenizer = tokenizer
        self.stop_strings = list(stop_strings)
        self.prompt_length = prompt_length
        self.window = max(len(stop) for stop in stop_strings) + 1

    def __call__(self, input_ids: Tensor, scores: Tensor, **kwargs) -> Tensor:
        start = max(self.prompt_length, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        found = [any(stop in tail for stop in self.stop_strings) for tail in tails]
        return torch.tensor(found, device=input_ids.device)


def finish_rollout(
    tokenizer,
    encoded,
    completion_ids: Tensor,
    logprobs: Tensor,
    temperatures: Tensor,
    stop_ids: Sequence[int],
    stop_strings: Sequence[str] = (),
    lengths: Tensor | None = None,
) -> Rollout:
    """The record of sampled rows: each ends at its first end-of-turn id or stop string (that
    token included), or at ``lengths`` (tokens the engine produced); what follows is masked.

    completion_ids, logprobs: (B, T); temperatures, lengths: (B,)"""
    device = completion_ids.device
    width = completion_ids.shape[1]
    mask = completion_mask(completion_ids, stop_ids)  # (B, T)
    if lengths is not None:
        mask = mask * (torch.arange(width, device=device) < lengths.to(device).unsqueeze(1))
    ended = (torch.isin(completion_ids, torch.tensor(stop_ids, device=device)) * mask).any(dim=1)
    for row, ids in enumerate(completion_ids.tolist()):
        cut = _stop_string_length(tokenizer, ids[: int(mask[row].sum())], stop_strings)
        if cut is not None:
            mask[row, cut:] = 0.0
            ended[row] = True
    return Rollout(
        prompt_ids=encoded["input_ids"].to(device),
        prompt_mask=encoded["attention_mask"].to(device),
        completion_ids=completion_ids,
        completion_mask=mask,
        logprobs=logprobs.to(device) * mask,
        temperatures=temperatures.to(device),
        truncated=~ended,
        completions=decode_completions(tokenizer, completion_ids, mask),
    )


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
    top_k: int = 0,
    repetition_penalty: float = 1.0,
    stop_strings: Sequence[str] = (),
    max_prompt_tokens: int | None = None,
    chat_template: str = "auto",
    system_prompt: str | None = None,
) -> Rollout:
    """Sample ``group_size`` completions per prompt in one batched call (greedy: argmax of the
    model's own distribution, no warp). Every parameter of the distribution is given here;
    log-probs are of the warped distribution each token was drawn from (``rlvr.logprobs``)."""
    device = next(model.parameters()).device
    rows = [prompt for prompt in prompts for _ in range(group_size)]
    encoded = encode_prompts(tokenizer, rows, chat_template, system_prompt, max_prompt_tokens)
    encoded = encoded.to(device)
    temperatures = (
        torch.ones(len(rows))
        if greedy
        else sample_temperatures(temperature, len(prompts), group_size)
    )
    warp = NO_WARP if greedy else Warp(top_k, top_p, repetition_penalty)
    stop_ids = stop_token_ids(model.generation_config, tokenizer)
    # Every field that shapes the distribution is set to "off", so that none is taken from the
    # model's generation_config (transformers fills unset fields from it): the warp is ours.
    config = GenerationConfig(
        do_sample=not greedy,
        max_new_tokens=max_new_tokens,
        min_new_tokens=0,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_ids,
        return_dict_in_generate=True,
    )
    processor = WarpProcessor(temperatures, warp, encoded["input_ids"], encoded["attention_mask"])
    was_training = model.training
    model.eval()
    prompt_length = encoded["input_ids"].shape[1]
    stopping = [StopStrings(tokenizer, stop_strings, prompt_length)] if stop_strings else []
    out = model.generate(
        **encoded,
        **MODEL_DEFAULTS_OFF,
        generation_config=config,
        logits_processor=LogitsProcessorList([processor]),
        stopping_criteria=StoppingCriteriaList(stopping),
    )
    model.train(was_training)
    completion_ids = out.sequences[:, prompt_length:]  # (B, T)
    return finish_rollout(
        tokenizer,
        encoded,
        completion_ids,
        processor.finish(completion_ids),
        temperatures,
        stop_ids,
        stop_strings,
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
    warp: Warp = NO_WARP,
    chunk_tokens: int = LOGIT_CHUNK_TOKENS,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs (and entropies) of the completion tokens under ``model``'s warped distribution
    at each row's temperature, from the decoder's hidden states a chunk of tokens at a time
    (``rlvr.logprobs.completion_logprobs``): the batch's (B, T, V) logits never exist.

    prompt_*: (B, Tp); completion_*: (B, T); temperatures: (B,) -> (B, T), (B, T) | None
    """
    if getattr(model.config, "final_logit_softcapping", None) or hasattr(
        model.config, "logit_scale"
    ):
        # Logits here are the output layer of the hidden states, nothing after it (Gemma's
        # soft-capping, Cohere's scale would be missed): refuse rather than score wrongly.
        raise NotImplementedError(f"{type(model.config).__name__}: logits are not lm_head(hidden)")
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention = torch.cat([prompt_mask, completion_mask.to(prompt_mask.dtype)], dim=1)
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)  # as generate numbers left-padded rows
    hidden = model.get_decoder()(
        input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=False
    ).last_hidden_state
    hidden = hidden[:, prompt_ids.shape[1] - 1 : -1]  # (B, T, H): states that predict each token
    return completion_logprobs(
        hidden,
        model.get_output_embeddings(),
        completion_ids,
        temperatures,
        warp,
        prompt_ids,
        prompt_mask,
        with_entropy,
        chunk_tokens,
    )


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

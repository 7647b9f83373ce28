"""The vllm engine: vLLM samples the rollouts, colocated in the train job's own process.

Owns one ``vllm.LLM`` per job, built beside the trainer's model on the same device, in the
manner of TRL's colocate mode: vLLM generates, the trainer updates, and after each update
the trainer's weights (LoRA folded in, ``rlvr.engines.weights``) are copied into vLLM's
model through its workers' ``reload_weights``, and its prefix cache is dropped, since cached
prompt keys and values were computed with the old weights. The engine core runs in this process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so the weights are handed over as tensors, not
serialised to another process; on a GPU the copy stays on the device.

What comes back is a ``rlvr.rollout.Rollout`` laid out like the hf engine's: prompts
tokenised by the trainer's tokenizer and left-padded, completions right-padded up to and
including the token that ended them (any end-of-turn id; stop strings cut afterwards), and
each token's log-prob as vLLM sampled it (``processed_logprobs``: after the penalty,
temperature, top-k and top-p, the distribution the token was drawn from). Those are not the
trainer's numbers (other kernels, maybe other precision), so ``needs_correction`` is True
and the loss applies truncated importance sampling (``rlvr.importance``).

vllm is imported here only, when a job asks for this engine; ``.venv-vllm`` (README) has it.
"""

import os
from collections.abc import Sequence

import torch

from rlvr.engines.weights import merged_weights
from rlvr.rollout import (
    Rollout,
    encode_prompts,
    finish_rollout,
    sample_temperatures,
    stop_token_ids,
)


class VLLMEngine:
    needs_correction = True

    def __init__(
        self,
        model_path: str,
        tokenizer,
        device: torch.device,
        dtype: torch.dtype,
        gpu_memory_utilization: float,
        seed: int,
    ):
        # The engine core in this process: weights go in by reference, and no second process
        # starts CUDA. Read when the LLM is built.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from transformers import GenerationConfig
        from vllm import LLM

        self.tokenizer = tokenizer
        self.device = device
        try:  # the end-of-turn ids the hf engine stops at too
            generation_config = GenerationConfig.from_pretrained(model_path)
        except OSError:
            generation_config = None
        self.stop_ids = stop_token_ids(generation_config, tokenizer)
        self.llm = LLM(
            model=model_path,
            dtype=str(dtype).removeprefix("torch."),
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            logprobs_mode="processed_logprobs",
            # Sampling parameters are the spec's alone, never the model's generation_config.
            generation_config="vllm",
            # The trainer's tokenizer encodes and decodes; vLLM sees token ids only.
            skip_tokenizer_init=True,
            # On CPU (tests) torch.compile's start-up costs minutes; on a GPU, graphs pay off.
            enforce_eager=device.type == "cpu",
        )

    def generate(
        self,
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
        """As ``rlvr.rollout.generate``: one request per row, each at its own temperature, with
        every sampling parameter explicit (vLLM's order is also penalty -> temperature ->
        top-k -> top-p). Stop strings are applied to the returned tokens by
        ``finish_rollout``: vLLM sees token ids only, so it generates past them."""
        from vllm import SamplingParams

        rows = [prompt for prompt in prompts for _ in range(group_size)]
        encoded = encode_prompts(
            self.tokenizer, rows, chat_template, system_prompt, max_prompt_tokens
        )
        temperatures = (
            torch.ones(len(rows))
            if greedy
            else sample_temperatures(temperature, len(prompts), group_size)
        )
        requests = [
            {"prompt_token_ids": ids[mask.bool()].tolist()}
            for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"], strict=True)
        ]
        params = [
            SamplingParams(
                temperature=0.0 if greedy else float(t),
                # -1 is "off" in every vLLM; 0 was an error before mid-2025 (vllm#17553).
                top_k=top_k if top_k > 0 and not greedy else -1,
                top_p=1.0 if greedy else top_p,
                repetition_penalty=1.0 if greedy else repetition_penalty,
                max_tokens=max_new_tokens,
                logprobs=0,  # the sampled token's own log-prob, nothing more
                stop_token_ids=self.stop_ids,  # vLLM has no tokenizer to learn EOS from
                detokenize=False,
            )
            for t in temperatures.tolist()
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        samples = [output.outputs[0] for output in outputs]
        width = max(1, max(len(sample.token_ids) for sample in samples))
        pad = self.tokenizer.pad_token_id
        completion_ids = torch.full((len(rows), width), pad, dtype=torch.long)  # (B, T)
        logprobs = torch.zeros(len(rows), width)  # (B, T)
        for row, sample in enumerate(samples):
            length = len(sample.token_ids)
            completion_ids[row, :length] = torch.tensor(sample.token_ids, dtype=torch.long)
            logprobs[row, :length] = torch.tensor(
                [
                    step[token].logprob
                    for step, token in zip(sample.logprobs, sample.token_ids, strict=True)
                ]
            )
        lengths = torch.tensor([len(sample.token_ids) for sample in samples])
        return finish_rollout(
            self.tokenizer,
            encoded,
            completion_ids.to(self.device),
            logprobs,
            temperatures,
            self.stop_ids,
            stop_strings,
            lengths=lengths,
        )

    def load_weights(self, model) -> None:
        """Copy ``model``'s current weights into vLLM's model, then forget cached prefixes."""
        # The worker's reload_weights, not the model's load_weights: after loading, vLLM repacks
        # some weights for its kernels (on CPU, for oneDNN's GEMM), and the reload redoes that.
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": merged_weights(model)}
        )
        self.llm.reset_prefix_cache()

"""The generation engine interface: what the trainer asks of whoever samples its rollouts.

Owns the ``Engine`` protocol only. An engine turns P prompts into a ``rlvr.rollout.Rollout``
(P x G rows: prompt and completion token ids, masks, and each sampled token's log-prob
under the distribution it was drawn from), and takes the trainer's weights after each
update. The record is the rollout module's own type, so the loss, replay and checkpoints
never learn which engine sampled a row. Implementations: ``rlvr.engines.hf`` (transformers'
``generate`` on the trainer's own model) and ``rlvr.engines.vllm_engine`` (vLLM colocated
in the job's process). Choosing one from a spec is ``rlvr.engines.build_engine``.
"""

from collections.abc import Sequence
from typing import Protocol

from rlvr.rollout import Rollout


class Engine(Protocol):
    needs_correction: bool
    """True when the sampling log-probs come from other code than the trainer's forward pass
    (other kernels, other precision): the loss then weights tokens by truncated importance
    sampling (``rlvr.importance``). False when they are the trainer's own numbers."""

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
        """``group_size`` completions of each prompt, rows prompt-major, prompts left-padded
        and rendered by ``rlvr.rollout.encode_prompts``; every sampling parameter applies
        exactly as given (penalty -> temperature -> top-k -> top-p, ``rlvr.logprobs``), none
        comes from the model's generation_config; a completion ends at any end-of-turn id
        or stop string (``rlvr.rollout.finish_rollout``)."""
        ...

    def load_weights(self, model) -> None:
        """Sample with ``model``'s current weights from now on (called after each update)."""
        ...

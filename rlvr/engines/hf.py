"""The hf engine: transformers' ``generate`` on the trainer's own model, as the trainer always did.

Owns nothing but the adapter to the ``Engine`` protocol: sampling, log-probs and masks are
``rlvr.rollout.generate``. The model it samples with is the model being trained, so there
are no weights to send after an update and its log-probs are the trainer's own numbers.
"""

from collections.abc import Sequence

from rlvr.rollout import Rollout, generate


class HFEngine:
    needs_correction = False

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer

    def generate(
        self,
        prompts: Sequence[str],
        group_size: int = 1,
        temperature: float | Sequence[float] = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        greedy: bool = False,
        **options,
    ) -> Rollout:
        """``rlvr.rollout.generate``; ``options`` are the protocol's other keywords."""
        return generate(
            self.model, self.tokenizer, prompts, group_size=group_size, temperature=temperature,
            top_p=top_p, max_new_tokens=max_new_tokens, greedy=greedy, **options,
        )  # fmt: skip

    def load_weights(self, model) -> None:
        self.model = model  # the trainer's own module: already up to date

"""The project's tiny local model: a byte-level BPE tokenizer and a small Llama, in HF format.

Owns building them (trained with ``tokenizers``, randomly initialised with a seed) so that
``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained(path)`` load them like any hub
model, with no network. Digits are split one per token, which arithmetic needs. Also a
randomly initialised Qwen2 of any size (by default Qwen2.5-0.5B's shape) for benchmarks
and the GPU smoke test, whose tokenizer's vocabulary is padded to the model's, and a tiny
instruct-style Qwen2 (chat template, ``<|im_end|>`` ends a turn) for the rollout's tests. Does not
own training: SFT (``rlvr.sft``) teaches it a task.
"""

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

SPECIAL_TOKENS = {"pad_token": "<|pad|>", "bos_token": "<|bos|>", "eos_token": "<|eos|>"}


def _corpus(seed: int, size: int = 4000) -> list[str]:
    """Text the BPE merges are learned from: arithmetic, countdown and prompt boilerplate."""
    rng = random.Random(seed)
    words = [
        "Question",
        "Answer",
        "Problem",
        "Solution",
        "Numbers",
        "Target",
        "Expression",
        "The",
        "answer",
        "is",
        "so",
        "total",
        "each",
        "how",
        "many",
        "what",
        "is",
        "of",
        "and",
        "the",
        "a",
        "to",
        "in",
        "for",
        "with",
        "make",
        "use",
        "put",
        "final",
        "boxed",
    ]
    lines = []
    for _ in range(size):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        op = rng.choice("+-*/")
        lines.append(f"{a}{op}{b} = {rng.randint(0, 9999)}")
        lines.append(" ".join(rng.choices(words, k=8)) + f": {a}, {b}. ({a}{op}{b})")
    return lines


def build_tokenizer(
    out_dir: str | Path, vocab_size: int = 512, seed: int = 0, pad_to: int | None = None
):
    """Train a byte-level BPE tokenizer and save it in HF format; returns the HF tokenizer.

    ``pad_to``: add filler tokens (``x<id>``, never produced by encoding, decoded as text)
    up to that many ids, so that every id a model of that vocabulary samples decodes to
    something and completions of a random model have lengths and contents that differ.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(seed), trainer=trainer)
    if pad_to is not None:
        state = json.loads(tokenizer.to_str())
        vocab = state["model"]["vocab"]
        vocab.update({f"x{index}": index for index in range(len(vocab), pad_to)})
        tokenizer = Tokenizer.from_str(json.dumps(state))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    wrapped.save_pretrained(str(out_dir))
    return wrapped


def build_tiny_model(
    out_dir: str | Path,
    hidden_size: int = 128,
    layers: int = 4,
    heads: int = 4,
    vocab_size: int = 512,
    max_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """Build tokenizer + randomly initialised Llama into ``out_dir``; returns the path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, vocab_size=vocab_size, seed=seed)
    config = LlamaConfig(
        **_shape(tokenizer, hidden_size, layers, heads, max_positions), tie_word_embeddings=True
    )
    return _save_random(out, LlamaForCausalLM, config, tokenizer, tokenizer.eos_token_id, seed)


def build_qwen2_model(
    out_dir: str | Path,
    hidden_size: int = 896,
    layers: int = 24,
    heads: int = 14,
    kv_heads: int = 2,
    intermediate_size: int = 4864,
    vocab_size: int = 151936,
    dtype: str = "bfloat16",
    seed: int = 0,
) -> Path:
    """Build a padded tokenizer + randomly initialised Qwen2 into ``out_dir``; returns the path.

    The defaults are Qwen2.5-0.5B's shape (0.49B parameters, tied embeddings, 32k positions),
    saved in ``dtype``: what a GPU benchmark needs of a 0.5B model without downloading one.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, seed=seed, pad_to=vocab_size)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model.save_pretrained(str(out))
    return out


CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""ChatML, as Qwen's instruct models write turns (without their default system prompt)."""


def build_chat_model(
    out_dir: str | Path, hidden_size: int = 32, layers: int = 2, heads: int = 2, seed: int = 0
) -> Path:
    """A tiny instruct-style Qwen2: ChatML template, and a turn that ends with ``<|im_end|>``.

    As in Qwen2.5-Instruct, the end of a turn is not the tokenizer's EOS: generation_config
    lists both ids as ``eos_token_id``, which is all that tells a sampler to stop at it.
    Untied output embeddings, so a test can make ``<|im_end|>`` likely without touching
    the input side."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, seed=seed)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2Config(
        **_shape(tokenizer, hidden_size, layers, heads, 1024), tie_word_embeddings=False
    )
    eos = [end_of_turn, tokenizer.eos_token_id]
    return _save_random(out, Qwen2ForCausalLM, config, tokenizer, eos, seed)


def _shape(tokenizer, hidden_size: int, layers: int, heads: int, max_positions: int) -> dict:
    """The config fields both tiny architectures share: sizes, and the tokenizer's ids."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": hidden_size * 4,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "max_position_embeddings": max_positions,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


def _save_random(out: Path, model_type, config, tokenizer, eos_token_id, seed: int) -> Path:
    """A randomly initialised ``model_type`` (seeded) saved to ``out``, whose generation config
    stops at ``eos_token_id`` (an id, or every end-of-turn id) and sets nothing else."""
    import torch
    from transformers import GenerationConfig

    torch.manual_seed(seed)
    model = model_type(config)
    model.generation_config = GenerationConfig(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_token_id,
    )
    model.save_pretrained(str(out))
    return out


def rlvr_home() -> Path:
    return Path(os.environ.get("RLVR_HOME", Path.home() / ".cache" / "rlvr"))


def default_tiny_model() -> Path:
    """The shared ``tiny`` model under $RLVR_HOME/models/tiny, built on first use."""
    target = rlvr_home() / "models" / "tiny"
    if not (target / "config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent))
        build_tiny_model(staging)
        try:
            staging.rename(target)
        except OSError:  # another process built it first
            shutil.rmtree(staging)
    return target

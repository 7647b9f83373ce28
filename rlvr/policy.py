"""Loading policies: device, precision (``rlvr.precision``), tokenizer, LoRA, SFT warm starts, references.

Owns turning a ``ModelSpec`` into a (model, tokenizer) pair ready for rollout and training,
and the reference policy for the KL term. A model that is neither a local directory nor
reachable on the hub fails with a message that says so.
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from rlvr.precision import Precision
from rlvr.spec import ModelSpec
from rlvr.tiny import default_tiny_model

hf_logging.disable_progress_bar()


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def pick_dtype(choice: str, device: torch.device) -> torch.dtype:
    """The compute dtype (``rlvr.precision``): auto is bf16 on CUDA that has it, else fp32."""
    if choice != "auto":
        return getattr(torch, choice)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_model_path(name: str) -> str:
    """``tiny`` -> the local tiny model (built once); anything else is passed to from_pretrained."""
    return str(default_tiny_model()) if name == "tiny" else name


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def load_tokenizer(path: str):
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _from_pretrained(path: str, dtype: torch.dtype) -> PreTrainedModel:
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as error:
        raise OSError(
            f"model {path!r} is neither a local directory nor reachable on the hub: {error}"
        ) from error


def precision_of(spec: ModelSpec) -> Precision:
    device = pick_device(spec.device)
    return Precision(device, pick_dtype(spec.dtype, device))


def load_policy(spec: ModelSpec, resume_dir: str | Path | None = None, frozen: bool = False):
    """(model, tokenizer, device) for training: base or SFT weights, then LoRA if the spec asks.

    ``resume_dir`` is a checkpoint's model directory: its adapter (or full weights) replace
    the fresh ones so training continues where it stopped. Weights that train are float32
    (master weights, ``rlvr.precision``); weights that never train (a LoRA base, a
    ``frozen`` model for eval or the KL reference) are stored in the compute dtype.
    """
    from peft import LoraConfig, PeftModel, get_peft_model

    device = pick_device(spec.device)
    dtype = pick_dtype(spec.dtype, device) if frozen or spec.lora is not None else torch.float32
    base_path = resolve_model_path(spec.name)
    init_path = spec.init_from
    full_weights = [p for p in (init_path, resume_dir) if p and not is_adapter(p)]
    model = _from_pretrained(str(full_weights[-1] if full_weights else base_path), dtype)
    if init_path and is_adapter(init_path):
        model = PeftModel.from_pretrained(model, init_path).merge_and_unload()
    if spec.gradient_checkpointing and not frozen:
        # Non-reentrant: gradients reach LoRA adapters without the inputs requiring grad.
        # transformers 5 renamed the method; 4.56 has the old name only.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable({"use_reentrant": False})
    tokenizer = load_tokenizer(
        str(init_path if init_path and not is_adapter(init_path) else base_path)
    )
    if spec.lora is not None:
        if resume_dir is not None:
            model = PeftModel.from_pretrained(model, str(resume_dir), is_trainable=True)
        else:
            config = LoraConfig(
                r=spec.lora.r,
                lora_alpha=spec.lora.alpha,
                lora_dropout=spec.lora.dropout,
                target_modules=spec.lora.target_modules,
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, config)  # adapters in float32 (autocast_adapter_dtype)
    return model.to(device), tokenizer, device


class ReferencePolicy:
    """The frozen policy the KL term compares against.

    With LoRA it is the same model with adapters disabled (no second copy); with full
    fine-tuning it is a frozen copy of the starting weights (also after a resume).
    """

    def __init__(self, model: PreTrainedModel, spec: ModelSpec):
        from peft import PeftModel

        self._model = model
        self._copy = None
        if not isinstance(model, PeftModel):
            initial, _, _ = load_policy(spec.model_copy(update={"lora": None}), frozen=True)
            self._copy = initial.eval().requires_grad_(False)

    @contextlib.contextmanager
    def active(self) -> Iterator[PreTrainedModel]:
        if self._copy is not None:
            yield self._copy
            return
        with self._model.disable_adapter():
            yield self._model

"""The weights an inference engine loads: the trainer's, under the base model's names.

Owns turning the model being trained into ``(name, tensor)`` pairs named as in a Hugging
Face checkpoint of the base architecture, which is what vLLM's ``load_weights`` reads.
Full fine-tuning: the state dict as it is. LoRA: each adapted linear layer's base weight
plus its adapter's delta (B @ A x alpha / r, from peft's ``get_delta_weight``), computed
on the side, so the trainer's own weights are never merged and unmerged in place (which
in bf16 would drift a little at every step). The adapter tensors themselves are left out.
"""

from collections.abc import Iterator

import torch
from torch import Tensor

BASE_LAYER = ".base_layer"


@torch.no_grad()
def merged_weights(model) -> Iterator[tuple[str, Tensor]]:
    """``(checkpoint name, tensor)`` of every weight the engine's copy needs (see the module)."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    if not isinstance(model, PeftModel):
        yield from model.state_dict().items()
        return
    inner = model.base_model.model  # the transformers model under the adapters
    adapted = {
        name: module for name, module in inner.named_modules() if isinstance(module, LoraLayer)
    }
    for key, value in inner.state_dict().items():
        if ".lora_" in key:
            continue
        module_name, _, leaf = key.rpartition(".")
        owner = module_name.removesuffix(BASE_LAYER)
        layer = adapted.get(owner) if module_name.endswith(BASE_LAYER) else None
        if (
            layer is not None
            and leaf == "weight"
            and not layer.merged
            and not layer.disable_adapters
        ):
            for adapter in layer.active_adapters:
                value = value + layer.get_delta_weight(adapter).to(value.dtype)
        yield f"{owner}.{leaf}" if layer is not None else key, value

"""Mixed precision as the field does it: fp32 master weights, low-precision compute.

Owns what ``model.dtype`` in a spec means: the *compute* dtype. Trained weights and their
AdamW state stay float32 (with LoRA, the frozen base is stored in the compute dtype and the
adapters in float32, which peft does by default); matrix products run under ``autocast``
in bfloat16 or float16. Pure bf16 weights lose small updates: bf16 keeps 8 bits of
mantissa, so at lr 1e-5 an AdamW step (about lr per weight) rounds away for every weight
larger than about 2.5e-3 (measured: 15.6% of weights changed against 100% in fp32).
float16 needs a gradient scaler (its gradients underflow); bfloat16 does not.

Does not own devices or loading (``rlvr.policy``).
"""

import contextlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    device: torch.device
    compute_dtype: torch.dtype

    @property
    def mixed(self) -> bool:
        return self.compute_dtype != torch.float32

    def autocast(self) -> contextlib.AbstractContextManager:
        """Where the model runs (rollout, reference, update): matmuls in the compute dtype."""
        if not self.mixed or not torch.amp.is_autocast_available(self.device.type):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.compute_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Dynamic loss scaling for float16; a pass-through for the other dtypes."""
        return torch.amp.GradScaler(self.device.type, enabled=self.compute_dtype == torch.float16)

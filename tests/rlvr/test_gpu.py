"""GPU smoke test: bf16 autocast with fp32 adapters on CUDA, one RL step and a greedy eval. Skipped without CUDA."""

import pytest
import torch

from rlvr.trainer import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_one_rl_step_on_cuda_in_bf16(train_spec, tmp_path):
    spec = train_spec(
        model={"dtype": "auto", "device": "auto"},
        stopping={"max_steps": 1},
        data={"eval_every": 1, "eval_size": 4},
    )
    trainer = Trainer(spec, tmp_path)
    assert trainer.device.type == "cuda"
    if torch.cuda.is_bf16_supported():  # mixed precision: bf16 compute, fp32 trained weights
        assert trainer.precision.compute_dtype == torch.bfloat16
        trained = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
        frozen = {p.dtype for p in trainer.model.parameters() if not p.requires_grad}
        assert trained == {torch.float32} and frozen == {torch.bfloat16}  # LoRA: base in bf16
    result = trainer.run()
    assert result.steps == 1 and torch.isfinite(torch.tensor(result.last_metrics["loss"]))

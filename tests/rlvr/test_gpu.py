"""GPU smoke test: bf16 policy on CUDA, one RL step and a greedy eval. Skipped without CUDA."""

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
    if torch.cuda.is_bf16_supported():
        assert next(trainer.model.parameters()).dtype == torch.bfloat16
    result = trainer.run()
    assert result.steps == 1 and torch.isfinite(torch.tensor(result.last_metrics["loss"]))

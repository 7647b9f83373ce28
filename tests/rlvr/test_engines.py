"""Engines: the hf engine is today's rollout; the weights an engine loads; TIS by hand; the spec."""

import math

import pytest
import torch
from pydantic import ValidationError

from rlvr.engines import build_engine
from rlvr.engines.hf import HFEngine
from rlvr.engines.weights import merged_weights
from rlvr.importance import mismatch_metrics, truncated_importance_weights
from rlvr.policy import load_policy
from rlvr.rollout import generate
from rlvr.spec import EvalSpec, ModelSpec, SamplingSpec, TrainSpec

PROMPTS = ["1+2", "Numbers: 30, 100, 93. Target: 23. Expression:"]


@pytest.fixture(scope="module")
def policy(tiny_dir):
    model, tokenizer, _ = load_policy(ModelSpec(name=tiny_dir, lora=None))
    return model, tokenizer


@pytest.mark.parametrize("options", [
    {"group_size": 3, "max_new_tokens": 5},
    {"group_size": 2, "temperature": [0.7, 1.3], "top_p": 0.9, "max_new_tokens": 6},
    {"greedy": True, "max_new_tokens": 4},
])  # fmt: skip
def test_the_hf_engine_record_is_todays_rollout(policy, options):
    model, tokenizer = policy
    torch.manual_seed(5)
    expected = generate(model, tokenizer, PROMPTS, **options)
    torch.manual_seed(5)
    got = HFEngine(model, tokenizer).generate(PROMPTS, **options)
    for name, value in vars(expected).items():
        other = getattr(got, name)
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other, (
            name
        )


def test_build_engine_defaults_to_hf_on_the_trainers_own_model(policy, tiny_dir):
    model, tokenizer = policy
    engine = build_engine(SamplingSpec(), ModelSpec(name=tiny_dir), model, tokenizer, seed=0)
    assert isinstance(engine, HFEngine) and engine.model is model and not engine.needs_correction


def test_merged_weights_are_the_merged_models_state_dict(tiny_dir):
    """LoRA folded in on the side equals peft's merge_and_unload, under the base model's names."""
    lora = ModelSpec(name=tiny_dir, lora={"r": 4, "alpha": 8})
    model, _, _ = load_policy(lora)
    torch.manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # B starts at 0: give the adapter a delta to fold in
            parameter.data.normal_()
    before = {name: p.clone() for name, p in model.named_parameters()}
    got = dict(merged_weights(model))
    assert all(
        torch.equal(p, before[name]) for name, p in model.named_parameters()
    )  # trainer untouched
    copy, _, _ = load_policy(lora)
    copy.load_state_dict(model.state_dict())
    expected = copy.merge_and_unload().state_dict()
    assert sorted(got) == sorted(expected)
    assert all(torch.allclose(got[name], expected[name], atol=1e-6) for name in expected)
    base_q = before["base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"]
    assert not torch.allclose(
        got["model.layers.0.self_attn.q_proj.weight"], base_q
    )  # the delta is in


def test_full_fine_tuning_weights_are_the_state_dict(policy):
    model, _ = policy
    got, expected = list(merged_weights(model)), list(model.state_dict().items())
    assert [name for name, _ in got] == [name for name, _ in expected]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))


# ---- TIS, numbers by hand -----------------------------------------------------------------

LOG = math.log


def test_tis_weights_are_the_ratio_truncated_at_the_cap():
    trainer = torch.tensor([[LOG(0.5), LOG(0.9), LOG(0.2)], [LOG(0.3), LOG(0.3), LOG(0.01)]])
    sampler = torch.tensor([[LOG(0.25), LOG(0.3), LOG(0.4)], [LOG(0.3), LOG(0.6), LOG(0.001)]])
    weights = truncated_importance_weights(trainer, sampler, cap=2.5)
    # 0.5/0.25 = 2, 0.9/0.3 = 3 -> 2.5, 0.2/0.4 = 0.5; 1, 0.5, 10 -> 2.5
    assert torch.allclose(weights, torch.tensor([[2.0, 2.5, 0.5], [1.0, 0.5, 2.5]]))
    assert truncated_importance_weights(trainer, trainer, cap=1.0).tolist() == [[1.0] * 3] * 2


def test_tis_metrics_cover_only_the_masked_tokens():
    trainer = torch.tensor([[LOG(0.5), LOG(0.9), 0.0]])
    sampler = torch.tensor([[LOG(0.25), LOG(0.3), 5.0]])  # the third token is padding
    metrics = mismatch_metrics(trainer, sampler, cap=2.5, mask=torch.tensor([[1.0, 1.0, 0.0]]))
    assert metrics["sampling/logp_difference/mean"] == pytest.approx((LOG(2) + LOG(3)) / 2)
    assert metrics["sampling/logp_difference/max"] == pytest.approx(LOG(3))
    assert metrics["sampling/importance_ratio/mean"] == pytest.approx(
        2.5
    )  # (2 + 3) / 2, before the cap
    assert (
        metrics["sampling/importance_ratio/min"],
        metrics["sampling/importance_ratio/max"],
    ) == pytest.approx((2.0, 3.0))
    assert metrics["sampling/importance_ratio/capped"] == pytest.approx(0.5)
    assert mismatch_metrics(trainer, sampler, cap=2.5, mask=torch.zeros(1, 3)) == {}


def test_a_weighted_token_loss_is_its_clipped_loss_times_its_weight():
    """What the trainer does with the weights: each token's policy loss x its weight (TRL's
    token_truncate)."""
    from rlvr.loss import clipped_policy_loss

    old = torch.tensor([[LOG(0.5), LOG(0.5)]])
    new = torch.tensor([[LOG(0.55), LOG(0.5)]])  # ratio 1.1 and 1.0, inside the clip
    weights = truncated_importance_weights(
        old, torch.tensor([[LOG(0.25), LOG(0.5)]]), cap=1.5
    )  # 1.5, 1
    per_token = clipped_policy_loss(new, old, torch.tensor([2.0]), 0.2, 0.2) * weights
    assert torch.allclose(per_token, torch.tensor([[-1.1 * 2 * 1.5, -1.0 * 2 * 1.0]]))


# ---- the spec ---------------------------------------------------------------------------


def test_the_sampling_spec_bounds_the_engine_options():
    assert SamplingSpec().engine == "hf" and SamplingSpec().tis_cap == 2.0
    for bad in (
        {"engine": "sglang"},
        {"vllm_gpu_memory_utilization": 0.0},
        {"vllm_gpu_memory_utilization": 0.99},
        {"tis_cap": 0.5},
    ):
        with pytest.raises(ValidationError):
            SamplingSpec(**bad)


def test_vllm_is_for_train_rollouts_without_refinement():
    with pytest.raises(ValidationError, match="refinement"):
        TrainSpec(sampling={"engine": "vllm"}, refinement={"max_turns": 2})
    with pytest.raises(ValidationError, match="eval jobs generate with sampling.engine: hf"):
        EvalSpec(sampling={"engine": "vllm"})
    assert TrainSpec(sampling={"engine": "vllm"}).sampling.engine == "vllm"

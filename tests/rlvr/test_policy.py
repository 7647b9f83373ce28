"""Loading policies: LoRA, SFT warm starts, the reference policy, clear failures."""

import pytest
import torch

from rlvr.policy import ReferencePolicy, load_policy, pick_dtype
from rlvr.spec import ModelSpec


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_lora_trains_only_adapters(tiny_dir):
    model, _, device = load_policy(ModelSpec(name=tiny_dir, lora={"r": 2, "alpha": 4}))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_reference_is_the_base_with_adapters_disabled(tiny_dir):
    spec = ModelSpec(name=tiny_dir, lora={"r": 2, "alpha": 4})
    model, _, _ = load_policy(spec)
    base, _, _ = load_policy(spec.model_copy(update={"lora": None}))
    ids = torch.tensor([[5, 6, 7]])
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.fill_(0.5)  # make the adapters matter
    reference = ReferencePolicy(model, spec)
    with reference.active() as ref_model:
        assert ref_model is model  # no second copy with LoRA
        assert torch.allclose(_logits(ref_model, ids), _logits(base, ids), atol=1e-5)
    assert not torch.allclose(_logits(model, ids), _logits(base, ids), atol=1e-3)


def test_full_fine_tuning_reference_is_a_frozen_copy_of_the_start(tiny_dir):
    spec = ModelSpec(name=tiny_dir, lora=None)
    model, _, _ = load_policy(spec)
    reference = ReferencePolicy(model, spec)
    ids = torch.tensor([[5, 6, 7]])
    before = _logits(model, ids)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with reference.active() as ref_model:
        assert ref_model is not model
        assert torch.allclose(_logits(ref_model, ids), before)
        assert not any(p.requires_grad for p in ref_model.parameters())


def test_init_from_an_adapter_merges_it_into_the_base(tiny_dir, tmp_path):
    spec = ModelSpec(name=tiny_dir, lora={"r": 2, "alpha": 4})
    model, tokenizer, _ = load_policy(spec)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.fill_(0.3)
    ids = torch.tensor([[5, 6, 7]])
    expected = _logits(model, ids)
    model.save_pretrained(str(tmp_path / "adapter"))
    merged, _, _ = load_policy(
        ModelSpec(name=tiny_dir, init_from=str(tmp_path / "adapter"), lora=None)
    )
    assert torch.allclose(_logits(merged, ids), expected, atol=1e-5)


def test_a_model_that_is_nowhere_fails_clearly(tmp_path):
    with pytest.raises(OSError, match="neither a local directory nor reachable"):
        load_policy(ModelSpec(name=str(tmp_path / "missing"), lora=None))


def test_dtype_choice():
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


@pytest.mark.parametrize("lora", [None, {"r": 2, "alpha": 4}])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_dir, lora):
    from rlvr.logprobs import Warp
    from rlvr.rollout import policy_logprobs

    results = []
    for checkpointing in (False, True):
        spec = ModelSpec(name=tiny_dir, lora=lora, gradient_checkpointing=checkpointing)
        torch.manual_seed(0)  # the same LoRA initialisation both times
        model, _, _ = load_policy(spec)
        model.train()
        active = any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
        assert active == checkpointing
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.data.normal_()  # give the adapters' A a gradient
        prompt = torch.tensor([[0, 5, 6, 7], [8, 9, 10, 11]])
        prompt_mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
        completion = torch.tensor([[12, 13, 14], [15, 16, 17]])
        logprobs, entropies = policy_logprobs(
            model, prompt, prompt_mask, completion, torch.ones(2, 3), torch.tensor([1.0, 0.7]),
            with_entropy=True, warp=Warp(top_k=100),
        )  # fmt: skip
        loss = -(logprobs.sum() + 0.1 * entropies.sum())
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((loss.item(), grads))
    (plain_loss, plain), (ckpt_loss, ckpt) = results
    assert ckpt_loss == pytest.approx(plain_loss, abs=1e-5)
    assert plain.keys() == ckpt.keys()
    for name in plain:
        assert torch.allclose(plain[name], ckpt[name], atol=1e-5), name
    assert sum(g.abs().sum() for g in plain.values()) > 0

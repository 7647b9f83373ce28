"""Mixed precision: fp32 master weights keep a small step that bf16 weights round away."""

import torch

from rlvr.policy import load_policy, precision_of
from rlvr.precision import Precision
from rlvr.spec import ModelSpec


def _changed_share(model, precision: Precision, lr: float) -> float:
    """Share of the trained weights one AdamW step at ``lr`` changes (every one gets a grad)."""
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    ids = torch.arange(3, 40).view(1, -1)
    with precision.autocast():
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    changed = sum(int((p.detach() != b).sum()) for p, b in zip(params, before, strict=True))
    return changed / sum(b.numel() for b in before)


def test_bf16_compute_keeps_fp32_masters_and_a_small_step_changes_the_weights(tiny_dir):
    spec = ModelSpec(name=tiny_dir, lora=None, dtype="bfloat16", device="cpu")
    model, _, _ = load_policy(spec)
    precision = precision_of(spec)
    assert precision.compute_dtype == torch.bfloat16 and precision.mixed
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not precision.grad_scaler().is_enabled()  # bf16 needs no loss scaling
    assert _changed_share(model, precision, lr=1e-5) > 0.99
    # The same step on pure bf16 weights (what dtype meant before) loses most of it.
    pure, _, _ = load_policy(spec)
    assert _changed_share(pure.to(torch.bfloat16), precision, lr=1e-5) < 0.5


def test_lora_keeps_a_low_precision_base_and_fp32_adapters(tiny_dir):
    spec = ModelSpec(name=tiny_dir, lora={"r": 4, "alpha": 8}, dtype="bfloat16", device="cpu")
    model, _, _ = load_policy(spec)
    trained = {p.dtype for p in model.parameters() if p.requires_grad}
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    assert trained == {torch.float32} and frozen == {torch.bfloat16}
    assert (
        _changed_share(model, precision_of(spec), lr=1e-5) > 0.49
    )  # lora_B: at 0, so only it has a gradient


def test_float16_gets_a_grad_scaler_and_float32_no_autocast():
    assert Precision(torch.device("cpu"), torch.float16).grad_scaler().is_enabled()
    assert not Precision(torch.device("cpu"), torch.float32).mixed

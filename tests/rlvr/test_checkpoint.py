"""Checkpoint layout: atomic writes, latest, pruning, RNG round trip."""

import random

import torch

from rlvr.checkpoint import latest_checkpoint, load_state, restore_rng, rng_state, save_checkpoint
from rlvr.policy import load_policy
from rlvr.spec import ModelSpec


def test_save_prune_and_find_latest(tiny_dir, tmp_path):
    model, tokenizer, _ = load_policy(ModelSpec(name=tiny_dir, lora={"r": 2, "alpha": 4}))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    assert latest_checkpoint(tmp_path) is None
    for step in (1, 2, 3):
        path = save_checkpoint(
            tmp_path, step, model, tokenizer, optimizer, scheduler, {"stream": step}, keep=2
        )
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-000002",
        "step-000003",
    ]
    assert latest_checkpoint(tmp_path) == path
    state = load_state(path)
    assert (state["step"], state["trainer"]) == (3, {"stream": 3})
    assert (path / "model" / "adapter_config.json").exists() and (
        path / "model" / "tokenizer.json"
    ).exists()


def test_rng_state_round_trips():
    saved = rng_state()
    first = (random.random(), torch.rand(3))
    restore_rng(saved)
    again = (random.random(), torch.rand(3))
    assert first[0] == again[0] and torch.equal(first[1], again[1])

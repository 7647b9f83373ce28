"""The replay buffer: bounded, gated, and replayed rows that the loss sees as they were sampled."""

import pytest
import torch

from rlvr.policy import load_policy
from rlvr.replay import ReplayBuffer, mix, replay_count
from rlvr.rollout import generate, policy_logprobs
from rlvr.spec import ModelSpec

PROMPTS = ["1+2", "33+4", "5+66"]


@pytest.fixture(scope="module")
def policy(tiny_dir):
    torch.manual_seed(0)
    model, tokenizer, _ = load_policy(ModelSpec(name=tiny_dir, lora=None))
    return model, tokenizer


@pytest.fixture(scope="module")
def rollout(policy):
    model, tokenizer = policy
    return generate(model, tokenizer, PROMPTS, group_size=2, max_new_tokens=6)


def test_replay_share():
    assert [replay_count(30, f) for f in (0.0, 0.25, 0.5)] == [0, 10, 30]
    with pytest.raises(ValueError):
        ReplayBuffer(10, 1, 1.0)


def test_only_valid_rows_are_kept_and_only_the_newest(rollout):
    buffer = ReplayBuffer(size=4, min_size=1, fraction=0.5)
    valid = torch.tensor([True, False, True, True, True, True])
    buffer.add(rollout, torch.arange(6.0), valid, step=1)
    assert len(buffer) == 4 and [row.advantage for row in buffer.rows] == [2.0, 3.0, 4.0, 5.0]
    assert all(row.step == 1 for row in buffer.rows)


def test_nothing_is_replayed_before_min_size(rollout, policy):
    buffer = ReplayBuffer(size=100, min_size=7, fraction=0.5)
    buffer.add(rollout, torch.zeros(6), torch.ones(6, dtype=torch.bool), step=1)
    assert buffer.sample(6, policy[1].pad_token_id) is None
    buffer.add(rollout, torch.zeros(6), torch.ones(6, dtype=torch.bool), step=2)
    replayed, advantages, steps = buffer.sample(6, policy[1].pad_token_id)
    assert (
        len(replayed.completions) == 6
        and advantages.shape == (6,)
        and set(steps.tolist()) <= {1, 2}
    )


def test_replayed_rows_keep_their_sampling_logprobs(rollout, policy):
    model, tokenizer = policy
    buffer = ReplayBuffer(size=100, min_size=1, fraction=0.5, seed=1)
    buffer.add(rollout, torch.linspace(-1, 1, 6), torch.ones(6, dtype=torch.bool), step=1)
    fresh_advantages = torch.ones(6)
    merged, advantages, valid = mix(
        rollout,
        fresh_advantages,
        torch.ones(6, dtype=torch.bool),
        buffer.sample(6, tokenizer.pad_token_id),
        tokenizer.pad_token_id,
    )
    assert len(merged.completions) == 12 and advantages.shape == (12,) and valid.all()
    assert set(merged.completions[6:]) <= set(rollout.completions)
    with torch.no_grad():  # the policy has not moved: every replayed ratio is exactly 1
        now, _ = policy_logprobs(
            model,
            merged.prompt_ids,
            merged.prompt_mask,
            merged.completion_ids,
            merged.completion_mask,
            merged.temperatures,
        )
    mask = merged.completion_mask.bool()
    assert torch.allclose(now[mask], merged.logprobs[mask], atol=1e-4)

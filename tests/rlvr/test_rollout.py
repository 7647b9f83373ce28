"""Rollout: one batched generate, left padding, EOS masks, sampling log-probs, warper."""

import pytest
import torch

from rlvr.policy import load_policy
from rlvr.rollout import (
    generate,
    merge_rollouts,
    policy_logprobs,
    sample_temperatures,
)
from rlvr.spec import ModelSpec


@pytest.fixture(scope="module")
def policy(tiny_dir):
    model, tokenizer, _ = load_policy(ModelSpec(name=tiny_dir, lora=None))
    return model, tokenizer


PROMPTS = [
    "1+2",
    "Numbers: 30, 100, 93. Target: 23. Expression:",
]  # different lengths: padding matters


def test_shapes_left_padding_and_eos_masks(policy):
    model, tokenizer = policy
    torch.manual_seed(0)
    rollout = generate(model, tokenizer, PROMPTS, group_size=3, max_new_tokens=5)
    assert rollout.completion_ids.shape[0] == 6 and rollout.completion_ids.shape[1] <= 5
    assert (
        rollout.prompt_mask[0, 0] == 0 and rollout.prompt_mask[0, -1] == 1
    )  # short prompt padded on the left
    for row in range(6):
        ids, mask = rollout.completion_ids[row], rollout.completion_mask[row]
        eos = (ids == tokenizer.eos_token_id).nonzero()
        kept = int(eos[0]) + 1 if len(eos) else ids.shape[0]
        assert mask.tolist() == [1.0] * kept + [0.0] * (ids.shape[0] - kept)
        assert bool(rollout.truncated[row]) == (len(eos) == 0)
    assert (rollout.logprobs[rollout.completion_mask == 0] == 0).all()


def test_sampling_logprobs_equal_a_fresh_forward_pass(policy):
    model, tokenizer = policy
    torch.manual_seed(1)
    rollout = generate(
        model, tokenizer, PROMPTS, group_size=2, temperature=[0.7, 1.3], top_p=1.0, max_new_tokens=6
    )
    with torch.no_grad():
        fresh, _ = policy_logprobs(
            model,
            rollout.prompt_ids,
            rollout.prompt_mask,
            rollout.completion_ids,
            rollout.completion_mask,
            rollout.temperatures,
        )
    mask = rollout.completion_mask.bool()
    assert torch.allclose(fresh[mask], rollout.logprobs[mask], atol=1e-4)
    assert rollout.temperatures.tolist() == pytest.approx([0.7, 1.3, 0.7, 1.3])


def test_tiny_temperature_samples_what_greedy_picks(policy):
    model, tokenizer = policy
    greedy = generate(model, tokenizer, PROMPTS, greedy=True, max_new_tokens=5)
    torch.manual_seed(2)
    cold = generate(model, tokenizer, PROMPTS, group_size=1, temperature=1e-4, max_new_tokens=5)
    assert cold.completions == greedy.completions


def test_sample_temperatures_repeat_per_group():
    assert sample_temperatures([0.5, 1.0], prompts=2, group_size=2).tolist() == [0.5, 1.0, 0.5, 1.0]
    assert sample_temperatures(0.8, prompts=1, group_size=3).tolist() == pytest.approx([0.8] * 3)


def test_merge_rollouts_repads_and_keeps_the_chosen_rows(policy):
    model, tokenizer = policy
    torch.manual_seed(3)
    short = generate(model, tokenizer, ["1+2"], group_size=2, max_new_tokens=2)
    long = generate(model, tokenizer, [PROMPTS[1]], group_size=2, max_new_tokens=4)
    merged = merge_rollouts([short, long], [[1], [0, 1]], tokenizer.pad_token_id)
    assert merged.completions == [short.completions[1]] + long.completions
    assert merged.prompt_ids.shape[1] == long.prompt_ids.shape[1]
    width = short.prompt_ids.shape[1]
    assert torch.equal(merged.prompt_ids[0, -width:], short.prompt_ids[1])
    assert merged.completion_mask[0, short.completion_ids.shape[1] :].sum() == 0

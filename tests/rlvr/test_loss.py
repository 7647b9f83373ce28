"""The policy-gradient math against numbers computed by hand."""

import math

import pytest
import torch

from rlvr.loss import (
    AGGREGATIONS,
    clip_fractions,
    clipped_policy_loss,
    completion_mask,
    ema_advantages,
    ema_update,
    entropy,
    group_advantages,
    kl_k1,
    kl_k3,
    plain_policy_loss,
    rloo_advantages,
    token_logprobs,
)

ALL_VALID = torch.ones(1, 4, dtype=torch.bool)


def test_group_advantages_subtract_mean_and_divide_by_unbiased_std():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    # mean 0.5; unbiased std sqrt(4 * 0.25 / 3) = 0.57735; 0.5 / (0.57735 + 1e-4) = 0.865875
    got = group_advantages(rewards, ALL_VALID, scale=True, baseline=0.0)
    assert got == pytest.approx(
        torch.tensor([[0.865875, -0.865875, -0.865875, 0.865875]]), abs=1e-5
    )


def test_dr_grpo_advantages_do_not_scale():
    got = group_advantages(
        torch.tensor([[1.0, 0.0, 0.0, 1.0]]), ALL_VALID, scale=False, baseline=0.0
    )
    assert got.tolist() == [[0.5, -0.5, -0.5, 0.5]]


def test_none_rewards_are_left_out_of_the_group_mean_and_get_no_advantage():
    rewards = torch.tensor([[1.0, 0.0, 0.0]])  # the middle one was None, filled with 0
    valid = torch.tensor([[True, False, True]])
    got = group_advantages(rewards, valid, scale=False, baseline=0.0)
    assert got.tolist() == [[0.5, 0.0, -0.5]]


def test_equal_rewards_give_zero_advantage_even_when_scaled():
    got = group_advantages(torch.ones(1, 4), ALL_VALID, scale=True, baseline=0.0)
    assert got.abs().max().item() == 0.0


def test_rloo_uses_the_mean_of_the_other_samples():
    got = rloo_advantages(
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]), ALL_VALID, scale=False, baseline=0.0
    )
    # sample 0: 1 - mean(0, 0, 0) = 1; others: 0 - mean(1, 0, 0) = -1/3
    assert got == pytest.approx(torch.tensor([[1.0, -1 / 3, -1 / 3, -1 / 3]]))


def test_rloo_group_with_one_valid_sample_has_no_advantage():
    valid = torch.tensor([[True, False, False, False]])
    got = rloo_advantages(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), valid, scale=False, baseline=0.0)
    assert got.abs().max().item() == 0.0


def test_ema_advantages_subtract_the_baseline_and_whiten_over_the_batch():
    rewards, valid = torch.tensor([[1.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool)
    assert ema_advantages(rewards, valid, scale=False, baseline=0.25).tolist() == [[0.75, -0.25]]
    # batch std of (1, 0) = 0.70711; 0.75 / 0.70721 = 1.06051
    assert ema_advantages(rewards, valid, scale=True, baseline=0.25) == pytest.approx(
        torch.tensor([[1.06051, -0.35350]]), abs=1e-4
    )


def test_ema_baseline_starts_at_the_first_mean_then_decays():
    rewards, valid = torch.tensor([[1.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool)
    assert ema_update(None, rewards, valid, decay=0.9) == 0.5
    assert ema_update(0.5, torch.ones(1, 2), valid, decay=0.9) == pytest.approx(0.55)
    assert ema_update(0.5, rewards, torch.zeros(1, 2, dtype=torch.bool), decay=0.9) == 0.5


@pytest.mark.parametrize(
    "ids, eos, expected",
    [
        ([[5, 2, 0, 0], [5, 6, 7, 8]], 2, [[1, 1, 0, 0], [1, 1, 1, 1]]),
        ([[5, 0, 0]], 0, [[1, 1, 0]]),  # pad id == eos id: only the first EOS counts
        ([[2, 2, 2]], 2, [[1, 0, 0]]),
    ],
)
def test_completion_mask_keeps_tokens_up_to_the_first_eos(ids, eos, expected):
    assert completion_mask(torch.tensor(ids), eos).tolist() == expected


RATIOS = torch.tensor([[1.5, 1.5, 0.5, 0.5]])


def test_clipped_policy_loss_by_hand():
    logprobs = RATIOS.log()
    old = torch.zeros_like(logprobs)
    # one token per row: (ratio, A) = (1.5, +1), (1.5, -1), (0.5, -1), (0.5, +1)
    per_token = clipped_policy_loss(
        logprobs.T, old.T, torch.tensor([1.0, -1.0, -1.0, 1.0]), 0.2, 0.2
    )
    assert per_token.squeeze(1) == pytest.approx(torch.tensor([-1.2, 1.5, 0.8, -0.5]))


def test_clip_higher_raises_only_the_ceiling():
    per_token = clipped_policy_loss(
        RATIOS.log().T, torch.zeros(4, 1), torch.tensor([1.0, -1.0, -1.0, 1.0]), 0.2, 0.28
    )
    assert per_token.squeeze(1) == pytest.approx(torch.tensor([-1.28, 1.5, 0.8, -0.5]))


def test_clip_fractions_count_low_and_high_clipped_tokens():
    stats = clip_fractions(
        RATIOS.log().T,
        torch.zeros(4, 1),
        torch.tensor([1.0, -1.0, -1.0, 1.0]),
        torch.ones(4, 1),
        0.2,
        0.2,
    )
    assert stats == {
        "clip_ratio/low_mean": 0.25,
        "clip_ratio/high_mean": 0.25,
        "clip_ratio/region_mean": 0.5,
    }


@pytest.mark.parametrize("loss_fn", [clipped_policy_loss, plain_policy_loss])
def test_policy_gradient_at_ratio_one_is_minus_the_advantage(loss_fn):
    logprobs = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss_fn(logprobs, logprobs.detach(), torch.tensor([0.7]), 0.2, 0.2).sum().backward()
    assert logprobs.grad[0].tolist() == pytest.approx([-0.7, -0.7])


def test_plain_policy_loss_is_not_clipped():
    per_token = plain_policy_loss(
        torch.tensor([[math.log(3.0)]]), torch.zeros(1, 1), torch.tensor([1.0]), 0.2, 0.2
    )
    assert per_token.item() == pytest.approx(-3.0)


PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
MASK = torch.tensor(
    [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
)  # the last row was excluded


@pytest.mark.parametrize(
    "name, expected",
    [
        ("token", (1 + 2 + 3 + 4) / 4),
        ("sequence", (2 + 4) / 2),
        ("constant", (1 + 2 + 3 + 4) / (2 * 4)),  # 2 sequences with tokens x max_new_tokens 4
    ],
)
def test_aggregations_by_hand(name, expected):
    assert AGGREGATIONS[name](PER_TOKEN, MASK, 4).item() == pytest.approx(expected)


def test_kl_estimators_by_hand():
    logprobs, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert kl_k1(logprobs, ref).item() == pytest.approx(math.log(2))
    # k3 = q/p - log(q/p) - 1 = 0.5 + log 2 - 1
    assert kl_k3(logprobs, ref).item() == pytest.approx(0.5 + math.log(2) - 1)
    assert kl_k3(logprobs, logprobs).item() == 0.0


def test_entropy_and_token_logprobs_by_hand():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # probabilities 0.25, 0.75
    assert token_logprobs(logits, torch.tensor([[1]])).item() == pytest.approx(math.log(0.75))
    assert entropy(torch.zeros(1, 1, 2)).item() == pytest.approx(math.log(2))
    assert entropy(logits).item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))

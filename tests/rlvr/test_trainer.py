"""The RL loop on a very small model: what a few steps change, stop and resume."""

import pytest
import torch
from safetensors.torch import load_file

from rlvr.callbacks import Callback
from rlvr.rewards.base import REWARDS, SETTINGS, register_reward
from rlvr.trainer import Trainer, train


class Recorder(Callback):
    def __init__(self, stop_after: int | None = None):
        self.metrics, self.experiences, self.checkpoints = [], [], []
        self.stop_after = stop_after

    def on_step(self, step, metrics):
        self.metrics.append((step, metrics))

    def on_experiences(self, step, records):
        self.experiences.extend(records)

    def on_checkpoint(self, step, path):
        self.checkpoints.append((step, path))

    def should_stop(self):
        return self.stop_after is not None and len(self.metrics) >= self.stop_after


def _always_none(completions, **_):
    return [None] * len(completions)


def _constant(completions, **_):
    return [1.0] * len(completions)


def _by_length(completions, **_):
    return [float(len(c) % 3) for c in completions]


@pytest.fixture(autouse=True)
def _test_rewards():
    added = {"_always_none": _always_none, "_constant": _constant, "_by_length": _by_length}
    for name, fn in added.items():
        register_reward(name)(fn)
    yield
    for name in added:
        del REWARDS[name], SETTINGS[name]


TRL_METRICS = {
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "completions/mean_length",
    "completions/clipped_ratio",
    "entropy",
    "clip_ratio/low_mean",
    "clip_ratio/high_mean",
    "clip_ratio/region_mean",
    "policy_loss",
    "grad_norm",
    "learning_rate",
    "step_time",
    "num_tokens",
    "pass_rate",
    "num_none_rewards",
    "rewards/_by_length/mean",
    "rewards/_by_length/std",
    "kl",
}


def test_a_few_steps_move_the_adapters_and_report_metrics_and_experiences(train_spec, tmp_path):
    spec = train_spec(rewards=[{"name": "_by_length"}], algorithm={"group_size": 4, "kl_coef": 0.1})
    recorder = Recorder()
    trainer = Trainer(spec, tmp_path, recorder)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    result = trainer.run()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before if "lora_B" in n)
    assert all(torch.equal(before[n], after[n]) for n in before if "lora_" not in n)
    step_metrics = [m for _, m in recorder.metrics]
    assert set(step_metrics[0]) >= TRL_METRICS
    assert step_metrics[0]["kl"] == pytest.approx(
        0.0, abs=1e-6
    )  # adapters start at zero: policy == reference
    assert step_metrics[1]["kl"] > 0
    assert len(recorder.experiences) == 2 * 2 * 4  # steps x prompts x group
    record = recorder.experiences[-1]
    assert (record.step, record.prompt_index, record.sample_index) == (2, 1, 3)
    assert record.reward == float(len(record.completion) % 3)
    assert record.completion_tokens >= 1 and record.reward_components == {
        "_by_length": record.reward
    }
    assert result.stop_reason == "max_steps" and (result.final_dir / "adapter_config.json").exists()


def test_none_rewards_are_excluded_from_the_loss_not_scored_zero(train_spec, tmp_path):
    # With every reward None nothing may move, not even through the entropy bonus.
    spec = train_spec(
        rewards=[{"name": "_always_none"}],
        algorithm={"entropy_coef": 0.5},
        stopping={"max_steps": 1},
    )
    recorder = Recorder()
    trainer = Trainer(spec, tmp_path, recorder)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.run()
    assert all(torch.equal(before[n], p) for n, p in trainer.model.named_parameters())
    assert recorder.metrics[0][1]["num_none_rewards"] == 8
    assert all(r.reward is None and r.advantage == 0.0 for r in recorder.experiences)


def test_the_entropy_bonus_alone_moves_weights_when_rewards_are_valid(train_spec, tmp_path):
    spec = train_spec(
        rewards=[{"name": "_constant"}], algorithm={"entropy_coef": 0.5}, stopping={"max_steps": 1}
    )
    trainer = Trainer(spec, tmp_path)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.run()
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())


def test_dynamic_sampling_refills_groups_without_signal(train_spec, tmp_path):
    spec = train_spec(
        rewards=[{"name": "_constant"}],
        data={"dynamic_sampling": True, "max_refills": 2},
        stopping={"max_steps": 1},
    )
    recorder = Recorder()
    trainer = Trainer(spec, tmp_path, recorder)
    trainer.run()
    assert (
        trainer.stream.state.index == 2 * 3
    )  # prompts_per_step x (1 + max_refills): every group was flat
    metrics = recorder.metrics[0][1]
    assert metrics["frac_reward_zero_std"] == 1.0
    assert (metrics["num_samples"], metrics["num_trained_samples"]) == (2 * 3 * 4, 2 * 4)


def test_cancel_checkpoints_and_stops(train_spec, tmp_path):
    recorder = Recorder(stop_after=1)
    result = train(train_spec(stopping={"max_steps": 5}), tmp_path, recorder)
    assert (result.steps, result.stop_reason) == (1, "cancelled")
    assert [step for step, _ in recorder.checkpoints] == [1]


def test_convergence_stops_the_run(train_spec, tmp_path):
    spec = train_spec(
        rewards=[{"name": "_constant"}],
        stopping={"max_steps": 10, "window": 1, "convergence_threshold": 0.01},
    )
    assert train(spec, tmp_path).stop_reason == "converged"


def test_stopped_and_resumed_run_ends_with_the_same_weights(train_spec, tmp_path):
    spec = train_spec(
        rewards=[{"name": "_by_length"}],
        model={"lora": {"r": 4, "alpha": 8, "dropout": 0.1}},
        algorithm={"name": "ppo", "ppo_epochs": 2, "minibatches": 2, "kl_coef": 0.05},
        stopping={"max_steps": 4},
    )
    straight = train(spec, tmp_path / "straight")
    stopped = train(spec, tmp_path / "resumed", Recorder(stop_after=2))
    assert stopped.steps == 2
    resumed = train(spec, tmp_path / "resumed")
    assert resumed.steps == 4
    a = load_file(straight.final_dir / "adapter_model.safetensors")
    b = load_file(resumed.final_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _sequence_logprobs(trainer, rollout):
    from rlvr.rollout import policy_logprobs

    with torch.no_grad():
        logprobs, _ = policy_logprobs(
            trainer.model,
            rollout.prompt_ids,
            rollout.prompt_mask,
            rollout.completion_ids,
            rollout.completion_mask,
            rollout.temperatures,
        )
    return (logprobs * rollout.completion_mask).sum(dim=1)


@pytest.mark.parametrize("algorithm", ["grpo", "dr_grpo", "rloo", "ppo", "reinforce"])
def test_one_update_makes_better_than_average_samples_more_likely(train_spec, tmp_path, algorithm):
    spec = train_spec(
        rewards=[{"name": "_by_length"}],
        algorithm={"name": algorithm, "group_size": 4},
        optim={"prompts_per_step": 4, "learning_rate": 1e-3},
    )
    trainer = Trainer(spec, tmp_path)
    trainer.baseline = 1.0  # the EMA algorithms compare with a baseline; start it mid-range
    batch = trainer.collect()
    advantages = trainer.advantages(batch)
    before = _sequence_logprobs(trainer, batch.rollout)
    trainer.update(batch, advantages)
    change = _sequence_logprobs(trainer, batch.rollout) - before
    assert (advantages > 0).any() and (advantages < 0).any()
    assert change[advantages > 0].mean() > 0 > change[advantages < 0].mean()


def test_a_pass_rate_held_over_the_window_stops_the_run(train_spec, tmp_path):
    data = tmp_path / "always.jsonl"
    data.write_text(
        "\n".join(f'{{"prompt": "{i}+{i}", "answer": ""}}' for i in range(8))
    )  # "" is in every text
    spec = train_spec(
        task={"name": "jsonl", "path": str(data), "heldout_size": 2, "match": "contains"},
        stopping={"max_steps": 10, "target_pass_rate": 0.5, "window": 2, "min_confidence": 0.9},
    )
    result = train(spec, tmp_path / "run")
    assert (result.steps, result.stop_reason) == (2, "target_pass_rate")


@pytest.mark.parametrize("aggregation", ["token", "sequence", "constant"])
def test_micro_batches_accumulate_the_gradient_of_one_pass(train_spec, tmp_path, aggregation):
    """Gradient accumulation over uneven micro-batches (3, 3, 2 rows) is the one-pass gradient."""
    spec = train_spec(
        model={"lora": None},
        algorithm={"loss_aggregation": aggregation, "kl_coef": 0.1, "entropy_coef": 0.01},
    )
    trainer = Trainer(spec, tmp_path)
    batch = trainer.collect()
    advantages = trainer.advantages(batch)
    advantages = advantages + torch.linspace(-1, 1, len(advantages))  # every row counts
    rollout = batch.rollout
    rows = torch.arange(len(rollout.completions))
    with trainer.reference.active() as reference:
        ref_logprobs = trainer._frozen_logprobs(reference, rollout)
    grads = []
    for size in (None, 3):
        optim = trainer.spec.optim.model_copy(update={"micro_batch_size": size})
        trainer.spec = trainer.spec.model_copy(update={"optim": optim})
        trainer.optimizer.zero_grad()
        kept = trainer.accumulate_gradients(
            rollout, rows, rollout.completion_mask, advantages, ref_logprobs
        )
        grads.append([p.grad.clone() for p in trainer.params])
        assert kept["logprobs"].shape == rollout.completion_ids.shape
    for whole, pieces in zip(*grads, strict=True):
        assert torch.allclose(whole, pieces, atol=1e-6, rtol=1e-4)
    assert sum(g.abs().sum() for g in grads[0]) > 0

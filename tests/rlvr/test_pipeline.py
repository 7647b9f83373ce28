"""Pipelined training: scoring in the background, stale rows and their ratio, exact resume.

The scoring thread is tested with events, not clocks; the trainer on the tiny model with
arithmetic, whose grades are decided in-process (the code-reward case, with nsjail, is in
test_code_training.py).
"""

import threading

import pytest
import torch
from safetensors.torch import load_file

from rlvr.callbacks import Callback
from rlvr.checkpoint import latest_checkpoint, load_state
from rlvr.pipeline import Round, Scoring
from rlvr.rollout import policy_logprobs
from rlvr.scoring import ScoredBatch
from rlvr.tasks.base import Problem
from rlvr.trainer import Trainer, train

# Completions of different lengths score differently, so every step has advantages to follow.
BY_LENGTH = [{"name": "length_penalty", "kwargs": {"target_chars": 8}}]


class Recorder(Callback):
    def __init__(self, stop_after: int | None = None):
        self.metrics, self.experiences, self.stop_after = [], [], stop_after

    def on_step(self, step, metrics):
        self.metrics.append(metrics)

    def on_experiences(self, step, records):
        self.experiences.extend(records)

    def should_stop(self):
        return self.stop_after is not None and len(self.metrics) >= self.stop_after

    def problems_by_step(self) -> list[tuple[int, str]]:
        return [(r.step, r.problem_id) for r in self.experiences if r.sample_index == 0]


def _round(name: str) -> Round:
    return Round(
        [Problem(id=name, prompt=name, answer="")],
        rollout=None,
        generation_time=0.0,
        policy_version=0,
    )


def test_background_scoring_lets_the_caller_work_meanwhile_and_scores_each_round_once():
    release, scored = threading.Event(), []

    def score(round):
        assert release.wait(30), "start() blocked until the round was scored"
        scored.append((round.problems[0].id, threading.current_thread().name))
        return ScoredBatch(grades=["pass"], rewards=[1.0], components={})

    scoring = Scoring(score, background=True)
    first, second = _round("first"), _round("second")
    scoring.start(first)
    scoring.start(second)
    scoring.start(first)  # already under way: not scored again
    release.set()  # the caller's own work, which a blocking start() would never reach
    assert scoring.wait(second).batch.rewards == [1.0] and scoring.wait(first).batch.grades == [
        "pass"
    ]
    scoring.close()
    assert [name for name, _ in scored] == ["first", "second"]  # one at a time, in order
    assert all(thread.startswith("rlvr-score") for _, thread in scored)


def test_without_the_background_thread_a_round_is_scored_when_its_scores_are_asked_for():
    scored = []
    scoring = Scoring(
        lambda round: scored.append(round) or ScoredBatch(["fail"], [0.0], {}), background=False
    )
    first = _round("first")
    scoring.start(first)
    assert scored == []
    found = scoring.wait(first)
    assert scored == [first] and found.wait_time == found.verify_time  # the caller waited all of it


def test_pipelined_rows_are_one_update_stale_and_their_ratio_is_not_one(train_spec, tmp_path):
    runs = {}
    for pipelined in (False, True):
        recorder = Recorder()
        spec = train_spec(
            rewards=BY_LENGTH, overlap_verification=pipelined, stopping={"max_steps": 3}
        )
        Trainer(spec, tmp_path / str(pipelined), recorder).run()
        runs[pipelined] = recorder
    sequential, pipelined = runs[False].metrics, runs[True].metrics
    assert [m["policy_lag"] for m in sequential] == [0, 0, 0]
    assert [m["policy_lag"] for m in pipelined] == [0, 1, 1]
    # The loss's old policy is the sampling-time log-probs: rows sampled with the weights that
    # train on them start at ratio 1 (approx KL ~ 0); rows sampled one update earlier do not.
    assert max(m["approx_kl"] for m in sequential) < 1e-9 and pipelined[0]["approx_kl"] < 1e-9
    assert min(m["approx_kl"] for m in pipelined[1:]) > 1e-7
    # The same problems at the same steps: nothing skipped, nothing twice.
    assert runs[True].problems_by_step() == runs[False].problems_by_step()
    assert {"generation_time", "verify_time", "verify_wait_time", "update_time"} <= set(
        pipelined[0]
    )


def test_a_stale_rows_ratio_to_the_current_weights_is_not_one(train_spec, tmp_path):
    spec = train_spec(rewards=BY_LENGTH, overlap_verification=True, stopping={"max_steps": 3})
    trainer = Trainer(spec, tmp_path, Recorder(stop_after=1))
    trainer.run()
    ahead = trainer.ahead  # step 2's rows, sampled before step 1's update
    assert ahead is not None and ahead.policy_version == 0 and trainer.step == 1
    rollout = ahead.rollout
    with torch.no_grad():
        current, _ = policy_logprobs(
            trainer.model,
            rollout.prompt_ids,
            rollout.prompt_mask,
            rollout.completion_ids,
            rollout.completion_mask,
            rollout.temperatures,
        )
    ratio = torch.exp(current - rollout.logprobs)[rollout.completion_mask.bool()]
    assert (ratio - 1).abs().max() > 1e-3


def test_a_stopped_and_resumed_pipelined_run_ends_with_the_same_weights(train_spec, tmp_path):
    spec = train_spec(
        rewards=BY_LENGTH,
        overlap_verification=True,
        model={"lora": {"r": 4, "alpha": 8, "dropout": 0.1}},
        algorithm={"name": "ppo", "ppo_epochs": 2, "minibatches": 2, "kl_coef": 0.05},
        stopping={"max_steps": 4},
    )
    straight = Recorder()
    straight_result = train(spec, tmp_path / "straight", straight)
    first = Recorder(stop_after=2)
    assert train(spec, tmp_path / "resumed", first).steps == 2
    state = load_state(latest_checkpoint(tmp_path / "resumed"))["trainer"]
    step_3 = [problem for step, problem in straight.problems_by_step() if step == 3]
    assert [
        p.id for p in state["ahead"]["problems"]
    ] == step_3  # sampled, not trained: kept in the checkpoint
    assert state["stream"] == {
        "epoch": 0,
        "index": 3 * 2,
    }  # the data position counts it as consumed
    second = Recorder()
    assert train(spec, tmp_path / "resumed", second).steps == 4
    assert first.problems_by_step() + second.problems_by_step() == straight.problems_by_step()
    a = load_file(straight_result.final_dir / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_dynamic_sampling_refills_after_the_overlapped_round(train_spec, tmp_path):
    flat = [
        {"name": "length_penalty", "kwargs": {"target_chars": 1000}}
    ]  # every reward 0: every group refilled
    recorder = Recorder()
    spec = train_spec(
        rewards=flat,
        overlap_verification=True,
        data={"dynamic_sampling": True, "max_refills": 2},
        stopping={"max_steps": 2},
    )
    trainer = Trainer(spec, tmp_path, recorder)
    trainer.run()
    assert (
        trainer.stream.state.index == 2 * 3 * 2
    )  # steps x rounds x prompts, as without the overlap
    assert [m["num_samples"] for m in recorder.metrics] == [3 * 2 * 4] * 2
    assert [m["policy_lag"] for m in recorder.metrics] == [0, 1]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"refinement": {"max_turns": 2}}, "refinement"),
        ({"algorithm": {"name": "reinforce"}}, "policy_loss: clipped"),
    ],
)
def test_options_that_do_not_overlap_are_refused(train_spec, overrides, message):
    with pytest.raises(ValueError, match=message):
        train_spec(overlap_verification=True, **overrides)
    assert not train_spec(**overrides).overlap_verification

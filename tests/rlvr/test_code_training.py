"""Training and evaluating code tasks end to end: real tiny model, real nsjail, real CLI.

Covers what the trainer does with code verdicts (partial credit, None on unjudged batches,
code details in experiences, error analysis), refinement turns, replayed rows, pipelined
scoring, and `python -m rlvr eval` judging MBPP and HumanEval reference solutions.
"""

import json
import subprocess
import sys
import threading

import pytest
import torch
import yaml

from rlvr.analysis import error_patterns
from rlvr.callbacks import Callback, JsonlCallback
from rlvr.spec import TrainSpec
from rlvr.trainer import Trainer
from rlvr.verifier import RequestVerifier, local_sandbox_verifier

TASK = {"name": "program_synthesis", "max_depth": 1, "train_size": 32, "test_size": 4}
# The random tiny model fails every test; a length term gives its groups something to rank.
REWARDS = [
    {"name": "code_tests"},
    {"name": "length_penalty", "weight": 0.1, "kwargs": {"target_chars": 12}},
]


class Recorder(Callback):
    def __init__(self):
        self.metrics, self.experiences = [], []

    def on_step(self, step, metrics):
        self.metrics.append(metrics)

    def on_experiences(self, step, records):
        self.experiences.extend(records)


@pytest.fixture(scope="module")
def verify():
    return local_sandbox_verifier(concurrency=2)


@pytest.fixture
def code_spec(tiny_dir):
    def make(**overrides) -> TrainSpec:
        data = {
            "model": {"name": tiny_dir, "lora": {"r": 4, "alpha": 8}},
            "task": TASK,
            "algorithm": {"group_size": 4},
            "sampling": {"max_new_tokens": 8},
            "optim": {"prompts_per_step": 2, "learning_rate": 1e-2, "seed": 3},
            "stopping": {"max_steps": 2},
            "rewards": REWARDS,
        }
        for section, values in overrides.items():
            data[section] = (
                {**data.get(section, {}), **values} if isinstance(values, dict) else values
            )
        return TrainSpec.model_validate(data)

    return make


def test_code_rewards_reach_the_loss_and_the_records(code_spec, verify, tmp_path):
    recorder = Recorder()
    trainer = Trainer(code_spec(), tmp_path, callback=recorder, verify=verify)
    before = [p.detach().clone() for p in trainer.params]
    trainer.run()
    metrics = recorder.metrics[-1]
    assert metrics["num_none_rewards"] == 0 and "rewards/code_tests/mean" in metrics
    assert all(-0.5 <= r.reward_components["code_tests"] <= 1.0 for r in recorder.experiences)
    code = recorder.experiences[0].extra["code"]
    assert code["status"] in {"ok", "timeout", "memory", "output_limit"} and len(code["tests"]) == 5
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.params))
    found = error_patterns(recorder.experiences)
    assert found["programs"] == len(recorder.experiences) and set(found["reward_by_step"]) == {1, 2}


def test_an_unverifiable_batch_scores_none_and_leaves_the_weights(code_spec, tmp_path):
    down = RequestVerifier(
        lambda requests: (_ for _ in ()).throw(ConnectionError("verify queue down")), retries=0
    )
    recorder = Recorder()
    trainer = Trainer(
        code_spec(stopping={"max_steps": 1}), tmp_path, callback=recorder, verify=down
    )
    before = [p.detach().clone() for p in trainer.params]
    trainer.run()
    assert recorder.metrics[-1]["num_none_rewards"] == 8
    assert {r.verdict for r in recorder.experiences} == {"error"} and {
        r.reward for r in recorder.experiences
    } == {None}
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.params))


@pytest.mark.parametrize("loss", ["last", "all"])
def test_refinement_turns_are_trained_and_recorded(code_spec, verify, tmp_path, loss):
    recorder = Recorder()
    spec = code_spec(refinement={"max_turns": 2, "loss": loss}, stopping={"max_steps": 1})
    Trainer(spec, tmp_path, callback=recorder, verify=verify).run()
    metrics = recorder.metrics[-1]
    assert 1.0 <= metrics["refine/mean_turns"] <= 2.0
    retried = [r for r in recorder.experiences if len(r.extra["turns"]) == 2]
    assert retried, "the random tiny model fails, so its attempts are retried"
    assert (
        retried[0].extra["turns"][0]["feedback"]
        and retried[0].completion == retried[0].extra["turns"][1]["completion"]
    )


def test_replayed_rows_join_the_update_once_the_buffer_fills(code_spec, verify, tmp_path):
    recorder = Recorder()
    spec = code_spec(
        replay={"enabled": True, "size": 64, "min_size": 8, "fraction": 0.5},
        stopping={"max_steps": 3},
    )
    Trainer(spec, tmp_path, callback=recorder, verify=verify).run()
    replayed = [m["replay/rows"] for m in recorder.metrics]
    assert replayed[0] == 0 and replayed[-1] > 0


def test_pipelined_training_scores_code_in_the_background_while_it_samples(
    code_spec, verify, tmp_path
):
    callers = []

    def watched(problems, programs):
        callers.append(threading.current_thread().name)
        return verify(problems, programs)

    recorder = Recorder()
    spec = code_spec(
        overlap_verification=True, stopping={"max_steps": 3}, data={"eval_every": 2, "eval_size": 4}
    )
    Trainer(spec, tmp_path, callback=recorder, verify=watched).run()
    steps = [m for m in recorder.metrics if "step_time" in m]
    assert [m["policy_lag"] for m in steps] == [0, 1, 1]
    assert all(m["num_none_rewards"] == 0 and m["verify_time"] > 0 for m in steps)
    assert len(recorder.experiences) == 3 * 8 and all(
        r.extra["code"]["total"] == 5 for r in recorder.experiences
    )
    # Every training round was scored by the scoring thread; the eval after step 2 scored in
    # the trainer's own thread, with step 3's round sampled and handed to the other one.
    assert sorted(callers) == ["MainThread"] + ["rlvr-score_0"] * 3
    assert any("eval/greedy/pass_rate" in m for m in recorder.metrics)


def test_cli_eval_of_reference_solutions_passes_everything(tmp_path):
    for task in ({"name": "mbpp", "limit": 6}, {"name": "humaneval", "limit": 6}):
        spec = tmp_path / f"{task['name']}.yaml"
        spec.write_text(yaml.safe_dump({"kind": "eval", "task": task, "use_references": True}))
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "rlvr",
                "eval",
                str(spec),
                "--run-dir",
                str(tmp_path / task["name"]),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        metrics = json.loads((tmp_path / task["name"] / "eval.json").read_text())
        assert (
            metrics["num_problems"] == 6
            and metrics["pass@1"] == 1.0
            and metrics["num_none_rewards"] == 0
        )


def test_jsonl_experiences_feed_the_analysis(code_spec, verify, tmp_path):
    Trainer(
        code_spec(stopping={"max_steps": 1}),
        tmp_path,
        callback=JsonlCallback(tmp_path),
        verify=verify,
    ).run()
    rows = [json.loads(line) for line in (tmp_path / "experiences.jsonl").read_text().splitlines()]
    found = error_patterns(rows)
    assert found["programs"] == 8 and sum(found["verdicts"].values()) == 8

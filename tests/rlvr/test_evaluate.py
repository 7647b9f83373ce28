"""Eval: pass@k and best-of-k estimators, and running a model over a split."""

import dataclasses
import doctest
import json

import pytest

from rlvr import evaluate as evaluate_module
from rlvr.evaluate import best_of_k, evaluate, pass_at_k, run_eval
from rlvr.policy import load_policy
from rlvr.rollout import generate
from rlvr.spec import EvalSpec, ModelSpec, SamplingSpec
from rlvr.tasks.base import build_task
from rlvr.tasks.jsonl import JsonlOptions


def test_doctests():
    assert doctest.testmod(evaluate_module).failed == 0


@pytest.mark.parametrize(
    "n, c, k, expected", [(10, 3, 1, 0.3), (5, 2, 2, 1 - 3 / 10), (3, 3, 3, 1.0), (3, 0, 1, 0.0)]
)
def test_pass_at_k_by_hand(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_best_of_k_ignores_none():
    assert best_of_k([None, None], 2) is None
    assert best_of_k([0.2, None, 0.9], 2) == 0.2


@pytest.fixture
def half_right_task(tiny_dir, tmp_path):
    """A JSONL task whose answers are the model's own greedy completions for half the prompts."""
    model, tokenizer, _ = load_policy(ModelSpec(name=tiny_dir, lora=None))
    prompts = [f"{a}+{a}" for a in range(6)]
    greedy = generate(model, tokenizer, prompts, greedy=True, max_new_tokens=4).completions
    rows = [
        {"prompt": p, "answer": g if i % 2 == 0 else g + "#"}
        for i, (p, g) in enumerate(zip(prompts, greedy))
    ]
    path = tmp_path / "half.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return model, tokenizer, build_task(JsonlOptions(path=str(path), heldout_size=6))


def test_greedy_accuracy_and_sampled_estimates(half_right_task):
    model, tokenizer, task = half_right_task
    problems = task.problems("test")
    metrics = evaluate(
        model,
        tokenizer,
        task,
        problems,
        [{"name": "verdict", "weight": 1.0}],
        SamplingSpec(max_new_tokens=4),
        greedy=True,
        num_samples=4,
        ks=[1, 4],
        batch_size=8,
    )
    assert metrics["greedy/pass_rate"] == 0.5 and metrics["greedy/mean_reward"] == 0.5
    assert metrics["pass@1"] == pytest.approx(metrics["pass_rate"])
    assert metrics["pass@4"] >= metrics["pass@1"]
    assert metrics["best_of_4/reward"] >= metrics["mean_reward"]


def test_metrics_per_part_when_problems_carry_one(half_right_task):
    """program_synthesis marks problems ``seen`` or ``verifier_only``: each part is reported
    on its own, and the whole is their weighted mean."""
    model, tokenizer, task = half_right_task
    problems = [  # the fixture's answers are right on even rows: part "right", wrong on odd
        dataclasses.replace(p, metadata={"part": "right" if i % 2 == 0 else "wrong"})
        for i, p in enumerate(task.problems("test"))
    ]
    metrics = evaluate(
        model,
        tokenizer,
        task,
        problems,
        [{"name": "verdict", "weight": 1.0}],
        SamplingSpec(max_new_tokens=4),
        greedy=True,
        num_samples=2,
        ks=[1],
        batch_size=8,
    )
    assert metrics["right/greedy/pass_rate"] == 1.0 and metrics["wrong/greedy/pass_rate"] == 0.0
    assert metrics["right/num_problems"] == metrics["wrong/num_problems"] == 3
    assert metrics["pass@1"] == pytest.approx(
        (metrics["right/pass@1"] + metrics["wrong/pass@1"]) / 2
    )


def test_run_eval_writes_eval_json(tiny_dir, tmp_path):
    spec = EvalSpec.model_validate(
        {
            "model": {"name": tiny_dir, "lora": None},
            "task": {"name": "arithmetic", "max_digits": 1, "test_size": 4},
            "num_samples": 2,
            "k": [1, 2],
            "sampling": {"max_new_tokens": 3},
        }
    )
    metrics = run_eval(spec, tmp_path)
    assert json.loads((tmp_path / "eval.json").read_text()) == metrics
    assert {"greedy/pass_rate", "pass@1", "pass@2", "best_of_2/reward", "num_none_rewards"} <= set(
        metrics
    )

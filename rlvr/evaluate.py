"""Evaluation: greedy and sampled accuracy, pass@k (unbiased), best-of-k, mean reward.

Owns the estimators (pure) and running a model over a task's split in batches. Used by
eval jobs, by the trainer's periodic held-out eval and by the benchmark.
"""

import json
from collections.abc import Sequence
from math import comb
from pathlib import Path
from typing import Any

import torch

from rlvr.callbacks import Callback
from rlvr.rollout import generate, sampling_options
from rlvr.scoring import reward_specs, score_batch
from rlvr.spec import EvalSpec, SamplingSpec
from rlvr.tasks.base import Grade, Problem, Task, VerifyFn, build_task


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k).

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 2), pass_at_k(4, 0, 2), pass_at_k(4, 3, 2)
    (0.25, 0.5, 0.0, 1.0)
    """
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def best_of_k(rewards: Sequence[float | None], k: int) -> float | None:
    """The best valid reward among the first k samples, or None when none is valid.

    >>> best_of_k([0.1, None, 0.7, 0.9], 3)
    0.7
    """
    valid = [r for r in rewards[:k] if r is not None]
    return max(valid) if valid else None


def _mean(values: Sequence[float | None]) -> float:
    valid = [v for v in values if v is not None]
    return sum(valid) / len(valid) if valid else 0.0


def evaluate(
    model,
    tokenizer,
    task: Task,
    problems: Sequence[Problem],
    rewards: Sequence[dict[str, Any]],
    sampling: SamplingSpec,
    greedy: bool = True,
    num_samples: int = 0,
    ks: Sequence[int] = (),
    batch_size: int = 64,
    verify: VerifyFn | None = None,
) -> dict[str, float]:
    """Metrics over ``problems``: ``greedy/*`` from argmax decoding, the rest from n samples
    each. Where problems carry ``metadata["part"]`` (program_synthesis's ``seen`` and
    ``verifier_only``), every metric is also reported per part as ``<part>/<metric>``."""
    greedy_run = (
        _run(model, tokenizer, task, problems, rewards, sampling, 1, True, batch_size, verify)
        if greedy
        else None
    )
    sampled_run = (
        _run(
            model,
            tokenizer,
            task,
            problems,
            rewards,
            sampling,
            num_samples,
            False,
            batch_size,
            verify,
        )
        if num_samples
        else None
    )
    chosen = range(len(problems))
    metrics = _metrics(chosen, greedy_run, sampled_run, num_samples, ks)
    parts = sorted({p.metadata["part"] for p in problems if "part" in p.metadata})
    for part in parts:
        chosen = [i for i, p in enumerate(problems) if p.metadata.get("part") == part]
        found = _metrics(chosen, greedy_run, sampled_run, num_samples, ks)
        metrics |= {f"{part}/{name}": value for name, value in found.items()}
    return metrics


Run = tuple[list[list[Grade]], list[list[float | None]]]


def _metrics(
    chosen: Sequence[int],
    greedy_run: Run | None,
    sampled_run: Run | None,
    num_samples: int,
    ks: Sequence[int],
) -> dict[str, float]:
    """The metrics of the problems at indices ``chosen`` from their grades and rewards."""
    count = max(len(chosen), 1)
    metrics: dict[str, float] = {"num_problems": float(len(chosen))}
    if greedy_run is not None:
        grades, scores = greedy_run
        metrics["greedy/pass_rate"] = sum(grades[i][0] == "pass" for i in chosen) / count
        metrics["greedy/mean_reward"] = _mean([scores[i][0] for i in chosen])
    if sampled_run is not None:
        grades, scores = sampled_run
        passes = [sum(g == "pass" for g in grades[i]) for i in chosen]
        rewards = [scores[i] for i in chosen]
        metrics["pass_rate"] = sum(passes) / (count * num_samples)
        metrics["mean_reward"] = _mean([s for row in rewards for s in row])
        metrics["num_none_rewards"] = float(sum(s is None for row in rewards for s in row))
        for k in ks:
            metrics[f"pass@{k}"] = sum(pass_at_k(num_samples, c, k) for c in passes) / count
            metrics[f"best_of_{k}/reward"] = _mean([best_of_k(row, k) for row in rewards])
    return metrics


def _run(model, tokenizer, task, problems, rewards, sampling, n, greedy, batch_size, verify):
    """Grades and rewards per problem, n completions each, ``batch_size`` completions per generate."""
    per_batch = max(1, batch_size // n)
    grades: list[list[Grade]] = []
    scores: list[list[float | None]] = []
    for start in range(0, len(problems), per_batch):
        chunk = list(problems[start : start + per_batch])
        rollout = generate(
            model,
            tokenizer,
            [p.prompt for p in chunk],
            group_size=n,
            greedy=greedy,
            **sampling_options(sampling),
        )
        repeated = [p for p in chunk for _ in range(n)]
        result = score_batch(task, repeated, rollout.completions, rewards, verify)
        for i in range(len(chunk)):
            grades.append(result.grades[i * n : (i + 1) * n])
            scores.append(result.rewards[i * n : (i + 1) * n])
    return grades, scores


def run_eval(
    spec: EvalSpec,
    run_dir: str | Path,
    callback: Callback | None = None,
    verify: VerifyFn | None = None,
) -> dict[str, float]:
    """An eval job: load, evaluate, report through ``callback`` and write ``eval.json``."""
    from rlvr.policy import load_policy

    task = build_task(spec.task)
    problems = task.problems(spec.split)[: spec.num_problems]
    if spec.use_references:
        metrics = evaluate_references(task, problems, reward_specs(task, spec.rewards), verify)
        return _report(metrics, run_dir, callback)
    torch.manual_seed(spec.seed)
    model, tokenizer, _ = load_policy(spec.model, frozen=True)  # in the compute dtype
    metrics = evaluate(
        model,
        tokenizer,
        task,
        problems,
        reward_specs(task, spec.rewards),
        spec.sampling,
        greedy=spec.greedy,
        num_samples=spec.num_samples,
        ks=spec.k,
        batch_size=spec.batch_size,
        verify=verify,
    )
    return _report(metrics, run_dir, callback)


def evaluate_references(
    task: Task,
    problems: Sequence[Problem],
    rewards: Sequence[dict[str, Any]],
    verify: VerifyFn | None = None,
) -> dict[str, float]:
    """The task's reference solutions scored as completions: a check of the task and its verifier."""
    chosen = [p for p in problems if task.reference(p) is not None]
    result = score_batch(task, chosen, [task.reference(p) for p in chosen], rewards, verify)
    passed = sum(g == "pass" for g in result.grades)
    return {
        "num_problems": float(len(chosen)),
        "pass@1": passed / max(len(chosen), 1),
        "greedy/pass_rate": passed / max(len(chosen), 1),
        "mean_reward": _mean(result.rewards),
        "num_none_rewards": float(sum(r is None for r in result.rewards)),
        "num_failed": float(len(chosen) - passed),
    }


def _report(
    metrics: dict[str, float], run_dir: str | Path, callback: Callback | None
) -> dict[str, float]:
    (callback or Callback()).on_step(0, {f"eval/{name}": value for name, value in metrics.items()})
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(metrics, indent=2))
    return metrics

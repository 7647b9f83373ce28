"""Proof that rlvr learns on this machine's CPU: SFT a tiny model, then GRPO on arithmetic.

    .venv/bin/python bench/learn_arith.py [--rl-minutes 10] [--sft-steps 500]

1. builds the tiny local Llama (seeded) and SFTs it on 2-digit additions, stopped early
   at a modest held-out greedy accuracy;
2. runs GRPO from that checkpoint for a fixed wall-clock budget (a callback's
   ``should_stop``, the same cooperative cancel the service uses);
3. prints held-out greedy accuracy before and after RL, wall times, time per RL step and
   generated tokens/s, and writes bench/results/learn_arith.json and learn_arith.png.

The held-out problems are the arithmetic task's test split: never in its train split.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from rlvr.callbacks import Callback, CallbackList, JsonlCallback
from rlvr.evaluate import evaluate
from rlvr.judge import reward_specs
from rlvr.policy import load_policy
from rlvr.sft import run_sft
from rlvr.spec import ModelSpec, SamplingSpec, SFTSpec, TrainSpec
from rlvr.tasks import build_task
from rlvr.tiny import build_tiny_model
from rlvr.trainer import train

TASK = {
    "name": "arithmetic",
    "min_digits": 2,
    "max_digits": 2,
    "operators": ["+"],
    "test_size": 200,
}
RESULTS = Path(__file__).resolve().parent / "results"


class Budget(Callback):
    """Collects step metrics and asks the trainer to stop once the wall-clock budget is spent."""

    def __init__(self, seconds: float):
        self.deadline = time.perf_counter() + seconds
        self.steps: list[dict[str, float]] = []
        self.evals: list[tuple[int, float]] = []

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if "eval/greedy/pass_rate" in metrics:
            self.evals.append((step, metrics["eval/greedy/pass_rate"]))
        else:
            self.steps.append({"step": step, **metrics})
            print(
                f"step {step:4d} reward {metrics['reward']:.3f} pass_rate {metrics['pass_rate']:.3f} "
                f"step_time {metrics['step_time']:.2f}s",
                flush=True,
            )

    def should_stop(self) -> bool:
        return time.perf_counter() > self.deadline


def held_out_accuracy(model_dir: Path) -> float:
    model, tokenizer, _ = load_policy(ModelSpec(name=str(model_dir), lora=None))
    task = build_task(TrainSpec.model_validate({"task": TASK}).task)
    metrics = evaluate(
        model,
        tokenizer,
        task,
        task.problems("test"),
        reward_specs(task, []),
        SamplingSpec(max_new_tokens=6),
        greedy=True,
    )
    return metrics["greedy/pass_rate"]


def plot(
    steps: list[dict[str, float]], evals: list[tuple[int, float]], before: float, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [s["step"] for s in steps]
    ax.plot(
        xs, [s["reward"] for s in steps], alpha=0.35, label="train reward, all samples (per step)"
    )
    window = 10
    smooth = [
        sum(s["pass_rate"] for s in steps[max(0, i - window + 1) : i + 1])
        / len(steps[max(0, i - window + 1) : i + 1])
        for i in range(len(steps))
    ]
    ax.plot(xs, smooth, label=f"train pass rate, all samples ({window}-step mean)")
    ax.plot(
        [0] + [s for s, _ in evals],
        [before] + [v for _, v in evals],
        "o-",
        label="held-out greedy accuracy",
    )
    ax.set_xlabel("GRPO step")
    ax.set_ylim(0, 1.05)
    ax.set_title("GRPO on 2-digit addition, tiny Llama (1.1M params), CPU")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="/tmp/rlvr-bench-learn-arith")
    parser.add_argument("--sft-steps", type=int, default=500)
    parser.add_argument("--rl-minutes", type=float, default=10.0)
    parser.add_argument("--lr", type=float, default=2e-4, help="GRPO learning rate")
    parser.add_argument("--temperature", type=float, default=1.2, help="GRPO sampling temperature")
    parser.add_argument("--prompts", type=int, default=16, help="GRPO prompts per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; 1 avoids thrashing when other jobs share the cores",
    )
    parser.add_argument(
        "--sft-dir", help="reuse this SFT result instead of building and training one"
    )
    return parser.parse_args()


def train_sft(work: Path, steps: int, seed: int) -> Path:
    """Build the tiny model and SFT it on the task's reference answers; returns the result dir."""
    tiny = build_tiny_model(work / "tiny", seed=seed)
    sft_spec = SFTSpec.model_validate(
        {
            "model": {"name": str(tiny), "lora": None},
            "task": TASK,
            "max_steps": steps,
            "batch_size": 64,
            "learning_rate": 2e-3,
            "schedule": "constant",
            "warmup_steps": 20,
            "max_new_tokens": 6,
            "eval_size": 200,
            "seed": seed,
        }
    )
    return run_sft(sft_spec, work / "sft").final_dir


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    shutil.rmtree(
        work / "grpo", ignore_errors=True
    )  # the trainer would resume an old run found there
    started = time.perf_counter()
    sft_dir = Path(args.sft_dir) if args.sft_dir else train_sft(work, args.sft_steps, args.seed)
    sft_seconds = time.perf_counter() - started
    before = held_out_accuracy(sft_dir)
    print(f"after SFT ({sft_seconds:.0f}s): held-out greedy accuracy {before:.3f}", flush=True)

    rl_spec = TrainSpec.model_validate(
        {
            "model": {"name": str(sft_dir), "lora": None},
            "task": TASK,
            "rewards": [
                {"name": "verdict", "weight": 1.0},
                {"name": "arithmetic_format", "weight": 0.1},
            ],
            "algorithm": {"name": "grpo", "group_size": 8, "clip_low": 0.2, "clip_high": 0.28},
            "sampling": {"temperature": args.temperature, "max_new_tokens": 6},
            "optim": {
                "learning_rate": args.lr,
                "prompts_per_step": args.prompts,
                "seed": args.seed,
            },
            "stopping": {"max_steps": 100_000},
            "data": {
                "eval_every": 50,
                "eval_size": 200,
                "dynamic_sampling": True,
                "max_refills": 3,
            },
        }
    )
    budget = Budget(args.rl_minutes * 60)
    rl_started = time.perf_counter()
    result = train(rl_spec, work / "grpo", CallbackList([JsonlCallback(work / "grpo"), budget]))
    rl_seconds = time.perf_counter() - rl_started
    after = held_out_accuracy(result.final_dir)

    generated = sum(s["tokens_per_second"] * s["rollout_time"] for s in budget.steps)
    figures = {
        "command": " ".join(["python bench/learn_arith.py", *sys.argv[1:]]),
        "held_out_problems": 200,
        "accuracy_after_sft": before,
        "accuracy_after_grpo": after,
        "gain_points": round(100 * (after - before), 1),
        "sft_steps": args.sft_steps,
        "sft_seconds": round(sft_seconds, 1),
        "rl_steps": result.steps,
        "rl_seconds": round(rl_seconds, 1),
        "seconds_per_rl_step": round(rl_seconds / max(result.steps, 1), 2),
        "generated_tokens_per_second": round(
            generated / sum(s["rollout_time"] for s in budget.steps), 1
        ),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "rl_spec": rl_spec.model_dump(mode="json"),
        "reward_curve": [
            {"step": s["step"], "reward": s["reward"], "pass_rate": s["pass_rate"]}
            for s in budget.steps
        ],
        "held_out_curve": [{"step": 0, "accuracy": before}]
        + [{"step": s, "accuracy": v} for s, v in budget.evals],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "learn_arith.json").write_text(json.dumps(figures, indent=2))
    plot(budget.steps, budget.evals, before, RESULTS / "learn_arith.png")
    print(
        json.dumps(
            {
                k: v
                for k, v in figures.items()
                if k not in ("rl_spec", "reward_curve", "held_out_curve")
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

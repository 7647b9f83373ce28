"""Step time of rlvr's GRPO trainer against TRL's GRPOTrainer on the same batch.

    .venv-trl/bin/python bench/step_time_vs_trl.py [--steps 10] [--rounds 4] [--prompts 16]
        [--group 8] [--max-new-tokens 6] [--out bench/results/step_time_vs_trl.json]

Runs in .venv-trl (``make trl-venv``). Both trainers start from the same tiny Llama
(``build_tiny_model``, seed 0, untrained: every completion runs to ``--max-new-tokens``, so
both batches have the same shape) on bench/learn_arith.py's arithmetic task and rewards
(``verdict`` + 0.1 ``arithmetic_format``, computed in-process by ``rlvr.scoring.score_batch``
for both: no sandbox), P prompts x G samples per step, one generation and one optimizer step,
no KL, fp32 on the CPU, one torch thread, seed 0. rlvr runs without dynamic sampling, so each
step generates exactly one batch, as TRL's does.

Each round runs ``--steps`` steps of each trainer, from a fresh trainer, the order alternating
between rounds so that load on a shared machine falls on both; the first step of every run is a
warm-up and is left out. Two step times are reported per trainer:

* ``period``: wall time from one step's end to the next's (everything the loop does per step:
  the headline, ratio ours / TRL, lower is better for rlvr);
* ``inner``: the trainer's own span of a step (rlvr's ``step_time`` metric; TRL from
  ``on_step_begin`` to ``on_step_end``: generation, rewards, forward, backward, optimizer).

and where each spends it: rlvr from its metrics (``generation_time``, ``verify_wait_time``,
``update_time``, the rest being advantages and batch assembly), TRL by timing its methods
(``_generate_single_turn``, ``_calculate_rewards``, the rest of
``_generate_and_score_completions``, ``training_step``'s loss forward and backward, and the
optimizer step outside it).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import time
import warnings
from pathlib import Path

import torch
import trl
from datasets import Dataset
from learn_arith import TASK  # the batch is bench/learn_arith.py's task
from learn_code_trl import check_same_tokens, grpo_config
from transformers import PrinterCallback, TrainerCallback
from trl import GRPOTrainer

import rlvr.rollout
import rlvr.trainer
from rlvr.callbacks import Callback
from rlvr.policy import load_policy
from rlvr.scoring import score_batch
from rlvr.spec import ModelSpec, TrainSpec
from rlvr.tasks.base import build_task
from rlvr.tiny import build_tiny_model

REWARDS = [{"name": "verdict", "weight": 1.0}, {"name": "arithmetic_format", "weight": 0.1}]
OURS_PHASES = ("generation_time", "verify_wait_time", "update_time")


class OurSteps(Callback):
    def __init__(self, totals: dict[str, float]):
        self.totals, self.rows = totals, []
        self.last = time.perf_counter()

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        now = time.perf_counter()
        t = self.totals
        row = {"period": now - self.last, "inner": metrics["step_time"]}
        row |= {name: metrics[name] for name in OURS_PHASES}
        row["other_time"] = row["inner"] - sum(row[name] for name in OURS_PHASES)
        # within generation_time: prompt encoding and the rollout's finishing (decode, masks)
        row["encode_time"] = t.get("encode", 0.0)
        row["finish_rollout_time"] = t.get("finish", 0.0)
        # within update_time: the loss's forward and backward, and the rest (clip, optimizer)
        row["loss_forward_backward_time"] = t.get("forward_backward", 0.0)
        row["optimizer_and_other_time"] = row["update_time"] - t.get("forward_backward", 0.0)
        t.clear()
        row["verify_time"] = metrics["verify_time"]  # the scoring thread's, waited for or not
        row["completion_length"] = metrics["completions/mean_length"]
        self.rows.append(row)
        self.last = now


def run_ours(args, model_dir: str, work: Path) -> list[dict[str, float]]:
    spec = TrainSpec.model_validate(
        {
            "model": {"name": model_dir, "lora": None, "device": "cpu"},
            "task": TASK,
            "rewards": REWARDS,
            "algorithm": {
                "name": "grpo",
                "group_size": args.group,
                "clip_low": 0.2,
                "clip_high": 0.28,
                "ppo_epochs": 1,
                "minibatches": 1,
                "kl_coef": 0.0,
            },
            "sampling": {"max_new_tokens": args.max_new_tokens, "temperature": 1.0},
            "optim": {
                "learning_rate": 2e-4,
                "warmup_steps": 0,
                "prompts_per_step": args.prompts,
                "seed": 0,
            },
            "data": {"dynamic_sampling": False, "eval_every": 0},
            "stopping": {"max_steps": args.steps},
        }
    )
    totals: dict[str, float] = {}
    patched = (
        (rlvr.rollout, "encode_prompts", "encode"),
        (rlvr.rollout, "finish_rollout", "finish"),
        (rlvr.trainer.Trainer, "accumulate_gradients", "forward_backward"),
    )
    originals = [getattr(owner, name) for owner, name, _ in patched]
    for (owner, name, label), original in zip(patched, originals):
        setattr(owner, name, _timed_function(totals, label, original))
    steps = OurSteps(totals)
    try:
        rlvr.trainer.train(spec, work, steps)
    finally:  # only this process's copies of rlvr's functions were wrapped, and only for this run
        for (owner, name, _), original in zip(patched, originals):
            setattr(owner, name, original)
    return steps.rows


def _timed_function(totals: dict[str, float], name: str, function):
    """``function`` (a plain function or a method looked up on its class), adding its wall time
    into ``totals[name]``."""

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - started

    return timed


class Timed:
    """Wraps a trainer's method (an instance attribute shadowing the class's) and adds up its
    wall time into ``totals[name]``."""

    def __init__(self, totals: dict[str, float], name: str, method):
        self.totals, self.name, self.method = totals, name, method

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.method(*args, **kwargs)
        finally:
            self.totals[self.name] = self.totals.get(self.name, 0.0) + time.perf_counter() - started


class TheirSteps(TrainerCallback):
    def __init__(self, totals: dict[str, float]):
        self.totals, self.rows = totals, []
        self.last = self.started = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.totals.clear()
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        t = self.totals
        inner = now - self.started
        row = {
            "period": now - self.last,
            "inner": inner,
            "generation_time": t.get("generate", 0.0),
            "reward_time": t.get("rewards", 0.0),
            "prepare_other_time": t.get("generate_and_score", 0.0)
            - t.get("generate", 0.0)
            - t.get("rewards", 0.0),
            "loss_forward_backward_time": t.get("training_step", 0.0)
            - t.get("generate_and_score", 0.0),
            "optimizer_and_other_time": inner - t.get("training_step", 0.0),
        }
        self.rows.append(row)
        self.last = now

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.rows and logs and "completions/mean_length" in logs:
            self.rows[-1]["completion_length"] = float(logs["completions/mean_length"])


def run_trl(args, model_dir: str, work: Path) -> list[dict[str, float]]:
    task = build_task(TrainSpec.model_validate({"task": TASK}).task)
    problems = task.problems("train")
    model, tokenizer, _ = load_policy(ModelSpec(name=model_dir, lora=None, device="cpu"))
    texts = [p.prompt for p in problems]

    def arithmetic(completions, index, **_):
        scored = score_batch(task, [problems[i] for i in index], completions, REWARDS)
        return scored.rewards

    config = grpo_config(
        str(work),
        args.prompts,
        args.group,
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        learning_rate=2e-4,
        warmup=0,
        loss_type="grpo",
        max_steps=args.steps,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=arithmetic,
        args=config,
        train_dataset=Dataset.from_dict({"prompt": texts, "index": list(range(len(texts)))}),
        processing_class=tokenizer,
    )
    check_same_tokens(trainer, tokenizer, model, texts[:256], texts[:256])
    totals: dict[str, float] = {}
    for name, method in (
        ("generate", "_generate_single_turn"),
        ("rewards", "_calculate_rewards"),
        ("generate_and_score", "_generate_and_score_completions"),
        ("training_step", "training_step"),
    ):
        setattr(trainer, method, Timed(totals, name, getattr(trainer, method)))
    steps = TheirSteps(totals)
    trainer.add_callback(steps)
    trainer.remove_callback(PrinterCallback)
    steps.last = time.perf_counter()
    trainer.train()
    return steps.rows


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    found = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        found[f"{key}_mean"] = round(statistics.mean(values), 4)
        found[f"{key}_median"] = round(statistics.median(values), 4)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps", type=int, default=10, help="steps per run (the first is warm-up)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="runs of each trainer, alternating")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=6, help="learn_arith.py's")
    parser.add_argument("--work-dir", default="/tmp/step_time_vs_trl")
    parser.add_argument("--out", default="bench/results/step_time_vs_trl.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)
    work = Path(args.work_dir)
    model_dir = str(build_tiny_model(work / "base", seed=0))
    runners = {"ours": run_ours, "trl": run_trl}
    rows: dict[str, list[dict[str, float]]] = {"ours": [], "trl": []}
    for round_ in range(args.rounds):
        order = ["ours", "trl"] if round_ % 2 == 0 else ["trl", "ours"]
        for name in order:
            run_dir = work / f"{name}-{round_}"
            shutil.rmtree(run_dir, ignore_errors=True)  # rlvr would resume from a checkpoint there
            found = runners[name](args, model_dir, run_dir)
            rows[name] += found[1:]  # the first step warms up
            print(
                f"round {round_} {name}: period median "
                f"{statistics.median(r['period'] for r in found[1:]):.3f}s over {len(found) - 1} steps",
                flush=True,
            )
    ours, theirs = summary(rows["ours"]), summary(rows["trl"])
    report = {
        "command": "python bench/step_time_vs_trl.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "trl_version": trl.__version__,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": 1,
            "load_average_at_end": os.getloadavg(),
        },
        "batch": {
            "task": TASK,
            "prompts": args.prompts,
            "group": args.group,
            "max_new_tokens": args.max_new_tokens,
        },
        "timed_steps_each": len(rows["ours"]),
        "ratio_ours_over_trl": {
            "period_mean": round(ours["period_mean"] / theirs["period_mean"], 3),
            "period_median": round(ours["period_median"] / theirs["period_median"], 3),
            "inner_mean": round(ours["inner_mean"] / theirs["inner_mean"], 3),
            "inner_median": round(ours["inner_median"] / theirs["inner_median"], 3),
        },
        "ours": ours,
        "trl": theirs,
        "steps": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "steps"}, indent=2))


if __name__ == "__main__":
    main()

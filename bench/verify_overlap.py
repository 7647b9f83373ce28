"""How much verification the pipelined trainer hides: one short code-reward run with and
without ``overlap_verification``, alternated, side by side.

    .venv/bin/python bench/verify_overlap.py [--pairs 3] [--steps 6] [--out bench/results/verify_overlap.json]

Every run is the same job: the tiny Llama (rlvr.tiny, untrained: its programs fail, but a
failing program costs a jail like a passing one), the program_synthesis task, GRPO with
P prompts x G samples a step, and every completion judged in a fresh nsjail jail by the
in-process pool (rlvr.verifier.local_sandbox_verifier), the CLI's verifier. Runs alternate
sequential / pipelined, `--pairs` times, so that a change of load on a shared machine falls
on both alike. Per step the trainer's own metrics are kept: step_time (wall), generation_time,
verify_time (wall clock of the judging), verify_wait_time (how long the step stood still for
its verdicts) and update_time. The fraction of verification hidden is
1 - sum(verify_wait_time) / sum(verify_time). A pipelined run's first step samples two
rounds and its last step none, so the mean over the inner steps (all but the first and last
of each run) is reported beside the mean over all. Prints a table per step and a summary,
and writes the results file.

Torch runs on one thread (as in bench/learn_code.py); the jails use the other core(s).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import torch

from rlvr.callbacks import Callback
from rlvr.spec import TrainSpec
from rlvr.tiny import build_tiny_model
from rlvr.trainer import train
from rlvr.verifier import local_sandbox_verifier

MODES = {"sequential": False, "pipelined": True}
KEPT = (
    "step_time",
    "generation_time",
    "verify_time",
    "verify_wait_time",
    "update_time",
    "reward",
    "policy_lag",
)


class Steps(Callback):
    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.append({"step": step, **{name: metrics[name] for name in KEPT}})


def spec(model_dir: str, steps: int, prompts: int, group: int, pipelined: bool) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"name": model_dir, "lora": {"r": 8, "alpha": 16}},
            "task": {"name": "program_synthesis", "max_depth": 1},
            "algorithm": {"name": "grpo", "group_size": group},
            "sampling": {"max_new_tokens": 32, "temperature": 1.2},
            "optim": {"learning_rate": 1e-3, "prompts_per_step": prompts, "seed": 0},
            "stopping": {"max_steps": steps},
            "overlap_verification": pipelined,
        }
    )


def summary(runs: list[list[dict]]) -> dict[str, float]:
    rows = [row for run in runs for row in run]
    inner = [row for run in runs for row in run[1:-1]]
    verify, wait = sum(r["verify_time"] for r in rows), sum(r["verify_wait_time"] for r in rows)
    return {
        "steps": len(rows),
        "mean_step_seconds": round(statistics.mean(r["step_time"] for r in rows), 3),
        "mean_inner_step_seconds": round(statistics.mean(r["step_time"] for r in inner), 3)
        if inner
        else None,
        "median_step_seconds": round(statistics.median(r["step_time"] for r in rows), 3),
        "mean_generation_seconds": round(statistics.mean(r["generation_time"] for r in rows), 3),
        "mean_verify_seconds": round(verify / len(rows), 3),
        "mean_verify_wait_seconds": round(wait / len(rows), 3),
        "mean_update_seconds": round(statistics.mean(r["update_time"] for r in rows), 3),
        "verify_hidden_fraction": round(1 - wait / verify, 3) if verify else None,
        "loop_seconds_per_run": round(sum(r["step_time"] for r in rows) / len(runs), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pairs", type=int, default=3, help="sequential + pipelined runs, alternated"
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--group", type=int, default=8, help="samples per prompt")
    parser.add_argument("--work-dir", default="/tmp/verify_overlap")
    parser.add_argument("--out", default="bench/results/verify_overlap.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work_dir)
    model_dir = str(build_tiny_model(work / "model", seed=0))
    verify = local_sandbox_verifier()
    runs: dict[str, list[list[dict]]] = {mode: [] for mode in MODES}
    started = time.perf_counter()
    print(
        f"{'run':>4} {'mode':<10} {'step':>4} {'wall s':>7} {'gen s':>6} {'verify s':>8} {'waited s':>8} "
        f"{'update s':>8} {'hidden':>6}"
    )
    for pair in range(args.pairs):
        for mode, pipelined in MODES.items():
            run_dir = work / f"{mode}-{pair}"
            shutil.rmtree(run_dir, ignore_errors=True)
            steps = Steps()
            train(
                spec(model_dir, args.steps, args.prompts, args.group, pipelined),
                run_dir,
                steps,
                verify,
            )
            runs[mode].append(steps.rows)
            for r in steps.rows:
                hidden = 1 - r["verify_wait_time"] / r["verify_time"] if r["verify_time"] else 0.0
                print(
                    f"{pair:>4} {mode:<10} {r['step']:>4} {r['step_time']:>7.2f} {r['generation_time']:>6.2f} "
                    f"{r['verify_time']:>8.2f} {r['verify_wait_time']:>8.2f} {r['update_time']:>8.2f} "
                    f"{hidden:>6.0%}",
                    flush=True,
                )
            print(
                f"{pair:>4} {mode:<10} {'all':>4} {sum(r['step_time'] for r in steps.rows):>7.2f}",
                flush=True,
            )
    results = {mode: summary(mode_runs) for mode, mode_runs in runs.items()}
    sequential, pipelined = results["sequential"], results["pipelined"]
    report = {
        "command": "python bench/verify_overlap.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch_threads": 1,
            "jails_at_once": 2 * (os.cpu_count() or 1),
            "load_average_at_end": os.getloadavg(),
        },
        "job": {
            "task": "program_synthesis (max_depth 1)",
            "model": "tiny Llama, untrained, LoRA r=8",
            "prompts_per_step": args.prompts,
            "group_size": args.group,
            "max_new_tokens": 32,
            "steps_per_run": args.steps,
            "runs_per_mode": args.pairs,
        },
        "results": results,
        "step_time_ratio_pipelined_over_sequential": round(
            pipelined["mean_step_seconds"] / sequential["mean_step_seconds"], 3
        ),
        "programs_judged": verify.stats.programs,
        "unjudged": verify.stats.unjudged,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()

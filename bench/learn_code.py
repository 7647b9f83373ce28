"""Proof that code rewards teach: SFT, then RL, on programs-from-examples, judged in nsjail.

    .venv/bin/python bench/learn_code.py [--sft-steps 400] [--rl-cpu-minutes 10] [--lr 2e-4]
        [--methods grpo,rft] [--operations basic --max-depth 2 --verifier-only 0.5
        --rl-part verifier_only] [--sft-dir DIR] [--eval-every 50] [--out bench/results/X.json]

Builds the tiny Llama (rlvr.tiny) from scratch and warm-starts it with a short SFT on
reference programs (or reuses ``--sft-dir``). From that one SFT model, each of ``--methods``
then trains with the same CPU budget (CPU, not wall time, so that other work on a shared
machine does not shrink the run; the jails' CPU counts), every reward computed by running the
completion on hidden inputs in nsjail (rlvr.verifier.local_sandbox_verifier):
``grpo`` is this project's trainer with the ``code_tests`` reward; ``rft`` is rejection-sampling
fine-tuning, the baseline that learns from the same verifier without negatives.

With ``--verifier-only S`` a share S of the programs has no reference: SFT never sees them and
``--rl-part verifier_only`` trains RL on them alone, as users run RLVR where only a verifier
exists. Reports held-out pass@1 (greedy, and the unbiased estimate from n samples at
temperature 1) and pass@8, overall and per part (``seen`` in SFT, ``verifier_only``), after
SFT and after each method; wall and CPU time of each phase (CPU includes the jails, which are
child processes); and the share of GRPO step time spent verifying. TRL's GRPOTrainer from the
same SFT model runs in its own venv: bench/learn_code_trl.py.

With ``--eval-every N`` the trainer's own held-out eval (greedy, all 200 test problems, in
nsjail) runs every N GRPO steps and the curve goes into the results file; its time counts
against the budget (about 6 s each).

GRPO warms its learning rate up over ``--warmup`` steps: Adam's first update moves every
weight by about the full learning rate, and at 1e-3 that one step moved the policy by a KL
of about 1 nat per token on the next step's samples.

Torch runs on one thread: on a shared 2-core machine a second thread mostly waits for the
first (generation was 5-25x slower with two threads while other jobs ran).
"""

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

import torch

from rlvr.callbacks import Callback
from rlvr.data import ProblemStream
from rlvr.evaluate import evaluate
from rlvr.policy import load_policy
from rlvr.rollout import generate
from rlvr.scoring import score_batch
from rlvr.sft import run_sft, sft_batch
from rlvr.spec import ModelSpec, SamplingSpec, SFTSpec, TrainSpec
from rlvr.tasks.base import build_task
from rlvr.tasks.program_synthesis import ProgramSynthesisOptions
from rlvr.tiny import build_tiny_model
from rlvr.trainer import train
from rlvr.verifier import local_sandbox_verifier


def cpu_seconds() -> float:
    """This process's CPU, its reaped children's, and its live descendants': the sandbox's
    jails live for a thousand programs, so their CPU reaches `os.times()` only when they end."""
    times = os.times()
    return (
        times.user
        + times.system
        + times.children_user
        + times.children_system
        + _live_descendants_cpu()
    )


def _live_descendants_cpu() -> float:
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry))
            stats[int(entry)] = fields
    total, todo = 0, list(parents.get(os.getpid(), []))
    while todo:  # each one's own time and its reaped children's: nothing counted twice
        pid = todo.pop()
        total += sum(int(x) for x in stats[pid][11:15])  # utime, stime, cutime, cstime
        todo += parents.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


class Clock:
    """Wall and CPU seconds of a phase."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *_):
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu_seconds() - self.cpu

    def report(self) -> dict[str, float]:
        return {"wall_seconds": round(self.wall, 1), "cpu_seconds": round(self.cpu, 1)}


class StepLog(Callback):
    """Per GRPO step: its time, the verifier's time within it, reward and pass rate; asks the
    trainer to stop once the phase has used ``cpu_budget`` CPU seconds."""

    def __init__(self, verify, cpu_budget: float):
        self.verify, self.rows, self.seen = verify, [], verify.stats.seconds
        self.evals: list[dict[str, float]] = []
        self.cpu_limit = cpu_seconds() + cpu_budget

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if "eval/greedy/pass_rate" in metrics:
            found = {"step": step}
            for part in ("", "seen/", "verifier_only/"):
                if f"eval/{part}greedy/pass_rate" in metrics:
                    found[f"{part}greedy_pass@1"] = metrics[f"eval/{part}greedy/pass_rate"]
            self.evals.append(found)
            print(f"  step {step:3d} held-out greedy pass@1 {found}", flush=True)
            return
        if "step_time" not in metrics:
            return
        verifying = self.verify.stats.seconds - self.seen
        self.seen = self.verify.stats.seconds
        self.rows.append(
            {
                "step": step,
                "step_time": metrics["step_time"],
                "verify_time": verifying,
                "reward": metrics["reward"],
                "pass_rate": metrics["pass_rate"],
            }
        )
        print(
            f"  step {step:3d} reward {metrics['reward']:+.3f} pass {metrics['pass_rate']:.2f} "
            f"step {metrics['step_time']:.1f}s verify {verifying:.1f}s",
            flush=True,
        )

    def should_stop(self) -> bool:
        return cpu_seconds() > self.cpu_limit


def held_out(
    model_dir: str, task_options: ProgramSynthesisOptions, verify, samples: int
) -> dict[str, float]:
    """Held-out pass@1 (greedy and sampled) and pass@8 over the test split, and per part
    (``seen`` in SFT, ``verifier_only``) when the task sets a part apart."""
    model, tokenizer, _ = load_policy(ModelSpec(name=model_dir, lora=None))
    task = build_task(task_options)
    metrics = evaluate(
        model,
        tokenizer,
        task,
        task.problems("test"),
        task.default_rewards,
        SamplingSpec(max_new_tokens=32),
        greedy=True,
        num_samples=samples,
        ks=[k for k in (1, 8) if k <= samples],
        batch_size=256,
        verify=verify,
    )
    named = {"greedy/pass_rate": "greedy_pass@1", "pass@1": "sampled_pass@1"}
    named |= {"pass@8": "pass@8", "mean_reward": "mean_reward"}
    found = {}
    for prefix in ("", "seen/", "verifier_only/"):
        for theirs, ours in named.items():
            if prefix + theirs in metrics:
                found[prefix + ours] = metrics[prefix + theirs]
    return found


def run_grpo(
    start_dir: str,
    task_options: ProgramSynthesisOptions,
    verify,
    cpu_budget: float,
    work: Path,
    args,
) -> tuple[Path, list[dict[str, float]], list[dict[str, float]]]:
    """This project's GRPO from ``start_dir`` until ``cpu_budget`` CPU seconds are spent, every
    reward computed in nsjail.  -> final model, per-step rows, held-out curve"""
    rl_spec = TrainSpec.model_validate(
        {
            "model": {"name": start_dir, "lora": None},
            "task": task_options.model_dump(),
            "rewards": [{"name": "code_tests", "kwargs": {"partial_scale": args.partial_scale}}],
            "algorithm": {
                "name": "grpo",
                "group_size": args.group,
                "clip_low": 0.2,
                "clip_high": 0.28,
                "ppo_epochs": args.ppo_epochs,
                "minibatches": args.ppo_epochs,
                "kl_coef": args.kl,
                "loss_aggregation": args.aggregation,
            },
            "sampling": {"max_new_tokens": 32, "temperature": args.temperature},
            "optim": {
                "learning_rate": args.lr,
                "warmup_steps": args.warmup,
                "prompts_per_step": args.prompts,
                "seed": 0,
            },
            "data": {
                "dynamic_sampling": True,
                "max_refills": 2,
                "eval_every": args.eval_every,
                "eval_size": task_options.test_size,
            },
            "stopping": {"max_steps": 100_000},
        }
    )
    steps = StepLog(verify, cpu_budget)
    result = train(rl_spec, work / "grpo", steps, verify)
    return result.final_dir, steps.rows, steps.evals


def run_rft(
    start_dir: str,
    task_options: ProgramSynthesisOptions,
    verify,
    cpu_budget: float,
    out_dir: Path,
    prompts: int,
    group: int,
    temperature: float,
    learning_rate: float,
    batch_size: int,
) -> tuple[Path, list[dict[str, float]]]:
    """Rejection-sampling fine-tuning, online: each step samples ``group`` completions for
    ``prompts`` train problems as a GRPO step does, keeps those the sandbox passes (every
    test) in a buffer of distinct (problem, program) pairs, and takes one SFT step on
    ``batch_size`` pairs drawn from the buffer, until ``cpu_budget`` CPU seconds are spent.
    The baseline RL must beat: it learns from the same verifier, without negatives."""
    torch.manual_seed(0)
    draw = random.Random(0)
    model, tokenizer, device = load_policy(ModelSpec(name=start_dir, lora=None))
    task = build_task(task_options)
    stream = ProblemStream(task.problems("train"), seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    buffer: dict[tuple[str, str], tuple] = {}
    rows: list[dict[str, float]] = []
    limit = cpu_seconds() + cpu_budget
    while cpu_seconds() < limit:
        started = time.perf_counter()
        chosen = stream.take(prompts)
        rollout = generate(
            model,
            tokenizer,
            [p.prompt for p in chosen],
            group_size=group,
            temperature=temperature,
            max_new_tokens=32,
        )
        repeated = [p for p in chosen for _ in range(group)]
        scored = score_batch(task, repeated, rollout.completions, task.default_rewards, verify)
        passed = [
            (p, c) for p, c, g in zip(repeated, rollout.completions, scored.grades) if g == "pass"
        ]
        for problem, completion in passed:
            buffer[(problem.prompt, completion)] = (problem, completion)
        loss = float("nan")
        if buffer:
            pairs = draw.sample(list(buffer.values()), min(batch_size, len(buffer)))
            batch = sft_batch(
                tokenizer,
                task,
                [p for p, _ in pairs],
                device,
                completions=[c for _, c in pairs],
            )
            model.train()
            output = model(**batch)
            optimizer.zero_grad()
            output.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            loss = output.loss.item()
        rows.append(
            {
                "step": len(rows) + 1,
                "step_time": time.perf_counter() - started,
                "pass_rate": len(passed) / len(repeated),
                "buffer": len(buffer),
                "loss": loss,
            }
        )
        print(
            f"  rft step {len(rows):3d} pass {len(passed) / len(repeated):.2f} "
            f"buffer {len(buffer)} loss {loss:.3f} step {rows[-1]['step_time']:.1f}s",
            flush=True,
        )
    final_dir = out_dir / "final"
    model.save_pretrained(str(final_dir))
    tokenizer.save_pretrained(str(final_dir))
    return final_dir, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sft-steps", type=int, default=400)
    parser.add_argument("--rl-cpu-minutes", type=float, default=10.0, help="GRPO's CPU budget")
    parser.add_argument("--lr", type=float, default=2e-4, help="GRPO learning rate")
    parser.add_argument("--temperature", type=float, default=1.0, help="GRPO sampling temperature")
    parser.add_argument("--prompts", type=int, default=8, help="GRPO prompts per step")
    parser.add_argument("--group", type=int, default=8, help="GRPO samples per prompt")
    parser.add_argument("--warmup", type=int, default=20, help="GRPO learning-rate warmup steps")
    parser.add_argument(
        "--kl", type=float, default=0.0, help="weight of the KL penalty to the SFT model"
    )
    parser.add_argument(
        "--eval-every", type=int, default=50, help="held-out eval every N GRPO steps (0: off)"
    )
    parser.add_argument("--ppo-epochs", type=int, default=1, help="passes over each step's samples")
    parser.add_argument(
        "--partial-scale",
        type=float,
        default=0.0,
        help="code_tests reward per passed fraction when some tests fail",
    )
    parser.add_argument("--sft-dir", help="reuse this SFT result instead of training one")
    parser.add_argument(
        "--samples", type=int, default=4, help="samples per held-out problem for pass@1"
    )
    parser.add_argument(
        "--operations",
        choices=["basic", "composed"],
        default="basic",
        help="program_synthesis's primitive table",
    )
    parser.add_argument("--max-depth", type=int, default=1, help="operations per program")
    parser.add_argument(
        "--verifier-only",
        type=float,
        default=0.0,
        help="share of programs without a reference: SFT skips them, RL trains on them",
    )
    parser.add_argument(
        "--rl-part",
        choices=["all", "seen", "verifier_only"],
        default="all",
        help="the train problems GRPO samples from",
    )
    parser.add_argument(
        "--methods",
        default="grpo",
        help="comma-separated, each from the same SFT model with the same CPU budget: "
        "grpo (this project's trainer), rft (rejection-sampling fine-tuning); empty: SFT only",
    )
    parser.add_argument(
        "--aggregation",
        choices=["sequence", "token", "constant"],
        default=None,
        help="GRPO loss aggregation (default: the grpo preset's)",
    )
    parser.add_argument("--rft-lr", type=float, default=5e-4, help="RFT learning rate")
    parser.add_argument("--rft-batch", type=int, default=32, help="RFT pairs per SFT step")
    parser.add_argument("--work-dir", default="/tmp/learn_code")
    parser.add_argument("--out", default="bench/results/learn_code.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work_dir)
    task = ProgramSynthesisOptions(
        max_depth=args.max_depth, operations=args.operations, verifier_only=args.verifier_only
    )
    verify = local_sandbox_verifier()
    phases: dict[str, dict] = {}
    started_wall, started_cpu = time.perf_counter(), cpu_seconds()

    base_dir = str(build_tiny_model(work / "base", seed=0))
    if not args.sft_dir:  # the untrained model, once: a reused SFT model was measured with it
        with Clock() as clock:
            phases["base"] = {"held_out": held_out(base_dir, task, verify, args.samples)}
        phases["base"].update(clock.report())
        print("base", phases["base"], flush=True)

    sft_spec = SFTSpec.model_validate(
        {
            "model": {"name": base_dir, "lora": None},
            "task": task.model_dump(),
            "max_steps": args.sft_steps,
            "batch_size": 32,
            "learning_rate": 2e-3,
            "warmup_steps": 10,
            "eval_size": 16,
            "max_new_tokens": 32,
        }
    )
    with Clock() as clock:
        sft_dir = args.sft_dir or str(run_sft(sft_spec, work / "sft", verify=verify).final_dir)
        phases["sft"] = {"held_out": held_out(sft_dir, task, verify, args.samples)}
    phases["sft"].update(clock.report())
    print("sft", phases["sft"], flush=True)

    budget = args.rl_cpu_minutes * 60
    rl_task = task.model_copy(update={"train_part": args.rl_part})
    runs: dict[str, dict] = {}
    for method in [m for m in args.methods.split(",") if m]:
        with Clock() as clock:
            if method == "grpo":
                final_dir, rows, evals = run_grpo(sft_dir, rl_task, verify, budget, work, args)
            else:
                evals = []
                final_dir, rows = run_rft(
                    sft_dir,
                    rl_task,
                    verify,
                    budget,
                    work / "rft",
                    args.prompts,
                    args.group,
                    args.temperature,
                    args.rft_lr,
                    args.rft_batch,
                )
            phases[method] = {"held_out": held_out(str(final_dir), task, verify, args.samples)}
        phases[method].update(clock.report())
        print(method, phases[method], flush=True)
        runs[method] = {"steps": len(rows), "rows": rows, "evals": evals}

    sft_found = phases["sft"]["held_out"]
    report = {
        "command": "python bench/learn_code.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch_threads": 1,
            "load_average_at_end": os.getloadavg(),
        },
        "task": task.model_dump(),
        "phases": phases,
        "gain_points": {  # each method's gain over its start, the SFT model
            method: {
                metric: round(100 * (phases[method]["held_out"][metric] - sft_found[metric]), 1)
                for metric in phases[method]["held_out"]
                if "pass@" in metric
            }
            for method in runs
        },
        "steps": {method: run["steps"] for method, run in runs.items()},
        "total_wall_seconds": round(time.perf_counter() - started_wall, 1),
        "total_cpu_seconds": round(cpu_seconds() - started_cpu, 1),
        "programs_verified": verify.stats.programs,
        "unjudged": verify.stats.unjudged,
    }
    if "grpo" in runs:
        rows = runs["grpo"]["rows"]
        step_time = sum(row["step_time"] for row in rows)
        verify_time = sum(row["verify_time"] for row in rows)
        report["verify_share_of_grpo_step_time"] = (
            round(verify_time / step_time, 3) if step_time else None
        )
        start = {k: v for k, v in sft_found.items() if k.endswith("greedy_pass@1")}
        report["grpo_held_out_curve"] = [{"step": 0, **start}] + runs["grpo"]["evals"]
    report["step_rows"] = {method: run["rows"] for method, run in runs.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "step_rows"}, indent=2))


if __name__ == "__main__":
    main()

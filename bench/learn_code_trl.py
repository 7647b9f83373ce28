"""TRL's GRPOTrainer on bench/learn_code.py's task, from the same SFT start, with the same budget.

    .venv-trl/bin/python bench/learn_code_trl.py --sft-dir DIR [--operations basic] [--max-depth 2]
        [--verifier-only 0.5] [--rl-part verifier_only] [--rl-cpu-minutes 20] [--lr 2e-4]
        [--warmup 20] [--temperature 1] [--prompts 8] [--group 8] [--loss-type grpo]
        [--samples 8] [--out bench/results/learn_code_trl.json]

Runs in .venv-trl (``make trl-venv``): TRL is not a dependency of the project. The task, its
train problems (``train_part``), the ``code_tests`` reward and the verifier are the project's:
each reward TRL asks for is ``rlvr.scoring.score_batch`` on the problems behind the dataset's
``index`` column, judged in the same nsjail sandbox as bench/learn_code.py's GRPO
(``local_sandbox_verifier``). The SFT start and the result are evaluated here by learn_code.py's
own ``held_out`` (greedy and sampled pass@1, pass@8, per part), so the gain is measured inside
this one run. Training stops once the run's CPU, the jails' included, has grown by
``--rl-cpu-minutes`` (learn_code.py's budget, counted the same way).

Set as learn_code.py sets rlvr's GRPO: P prompts x G samples per step, one generation and one
optimizer step per step (no gradient accumulation, one PPO epoch), temperature T with top_k 0 and
top_p 1, 32 new tokens, AdamW (betas 0.9/0.999, eps 1e-8, no weight decay, gradient norm clipped
at 1) at ``--lr`` warmed up linearly over ``--warmup`` steps then constant (rlvr's
``constant_with_warmup``), clip 0.2 / 0.28, no KL term and no reference model, advantages scaled
by each group's (unbiased) std + 1e-4, fp32 on the CPU, one torch thread, seed 0. TRL's
``loss_type`` ``grpo`` is rlvr's ``sequence`` aggregation (each completion's token mean, then
the mean over completions); ``dapo``/``bnpo`` are ``token``; ``dr_grpo`` is ``constant``.
Before training the script checks that TRL encodes every train prompt to the token ids
``rlvr.rollout.encode_prompts`` gives and stops completions on the same ids, and refuses to run
if not.

What cannot be matched:

* Dynamic sampling. rlvr drops groups whose rewards are all equal and samples new prompts, up to
  2 more rounds, so that a step trains on up to P groups that carry signal; TRL trains on the P
  groups it drew, the zero-advantage ones included (they add no gradient, but with ``grpo`` they
  count in the mean over completions, so a step with few informative groups moves less). A TRL
  step therefore also generates and verifies at most P x G samples, where rlvr's may do 3x.
* The ratio's old log-probs. rlvr takes them from the sampler (the warped distribution each
  token was drawn from); TRL with one iteration uses the training forward's own, detached, so
  its ratio is exactly 1 while rlvr's differs from 1 by the two forwards' rounding.
* A reward of None (a program the sandbox could not judge): both leave it out of its group's
  mean and std; rlvr also masks it out of the loss, TRL gives it advantage 0 and still counts
  it in the loss's mean over completions (the results file's ``unjudged`` says how many).
* Data order and sampling draws: both shuffle the train problems and sample with seed 0, but
  through different samplers and RNG streams, so the problems and completions differ.
"""

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import torch
import trl
from datasets import Dataset
from learn_code import Clock, cpu_seconds, held_out
from transformers import PrinterCallback, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from rlvr.policy import load_policy
from rlvr.rollout import encode_prompts, stop_token_ids, uses_chat_template
from rlvr.scoring import score_batch
from rlvr.spec import ModelSpec
from rlvr.tasks.base import build_task
from rlvr.tasks.program_synthesis import ProgramSynthesisOptions
from rlvr.verifier import local_sandbox_verifier


class CodeReward:
    """TRL reward function: the project's ``code_tests`` reward of each completion, judged in
    nsjail; keeps the grades of its last call for the step log."""

    __name__ = "code_tests"  # TRL names the reward's metrics after it

    def __init__(self, task, problems, partial_scale: float, verify):
        self.task, self.problems, self.verify = task, problems, verify
        self.rewards = [{"name": "code_tests", "kwargs": {"partial_scale": partial_scale}}]
        self.last_rewards: list[float | None] = []
        self.last_passes = 0

    def __call__(self, completions, index, **_) -> list[float | None]:
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        problems = [self.problems[i] for i in index]
        scored = score_batch(self.task, problems, texts, self.rewards, self.verify)
        self.last_rewards = scored.rewards
        self.last_passes = sum(g == "pass" for g in scored.grades)
        return scored.rewards


class StepLog(TrainerCallback):
    """Per step: its wall time, the verifier's time within it, reward and pass rate; stops
    training once the run has used ``cpu_budget`` more CPU seconds."""

    def __init__(self, reward: CodeReward, verify, cpu_budget: float):
        self.reward, self.verify = reward, verify
        self.cpu_limit = cpu_seconds() + cpu_budget
        self.rows: list[dict[str, float]] = []
        self.started = self.seen = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.started, self.seen = time.perf_counter(), self.verify.stats.seconds

    def on_step_end(self, args, state, control, **kwargs):
        step_time = time.perf_counter() - self.started
        verifying = self.verify.stats.seconds - self.seen
        rewards = [r for r in self.reward.last_rewards if r is not None] or [0.0]
        row = {
            "step": state.global_step,
            "step_time": step_time,
            "verify_time": verifying,
            "reward": sum(rewards) / len(rewards),
            "pass_rate": self.reward.last_passes / max(len(self.reward.last_rewards), 1),
        }
        self.rows.append(row)
        print(
            f"  step {row['step']:3d} reward {row['reward']:+.3f} pass {row['pass_rate']:.2f} "
            f"step {step_time:.1f}s verify {verifying:.1f}s",
            flush=True,
        )
        if cpu_seconds() > self.cpu_limit:
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.rows and logs:  # TRL's own figures of the step just ended
            for key in ("frac_reward_zero_std", "entropy", "completions/mean_length", "grad_norm"):
                if key in logs:
                    self.rows[-1][key] = float(logs[key])


def check_same_tokens(trainer: GRPOTrainer, tokenizer, model, prompts: list, texts: list[str]):
    """TRL must show the model the prompts rlvr shows it, token for token, and stop where rlvr
    stops; a mismatch would compare the two trainers on different inputs."""
    ours = encode_prompts(tokenizer, texts)
    theirs = trainer._tokenize_prompts(prompts)[0]
    for row, (text, ids) in enumerate(zip(texts, theirs)):
        expected = ours["input_ids"][row][ours["attention_mask"][row].bool()].tolist()
        if list(ids) != expected:
            raise SystemExit(
                f"TRL encodes a prompt differently from rlvr.rollout.encode_prompts:\n  {text!r}\n"
                f"  rlvr: {expected}\n  TRL:  {list(ids)}"
            )
    ours_stop = stop_token_ids(model.generation_config, tokenizer)
    if sorted(set(trainer.eos_token_ids)) != ours_stop:
        raise SystemExit(
            f"TRL stops completions on {sorted(set(trainer.eos_token_ids))}, rlvr on {ours_stop}"
        )


def grpo_config(
    output_dir: str,
    prompts: int,
    group: int,
    max_new_tokens: int,
    temperature: float,
    learning_rate: float,
    warmup: int,
    loss_type: str,
    max_steps: int,
) -> GRPOConfig:
    """TRL's GRPOConfig set as rlvr's GRPO is set: ``prompts`` x ``group`` completions and one
    optimizer step per generation, top_k 0 / top_p 1, AdamW (0.9/0.999, eps 1e-8, no weight
    decay, clip 1), lr constant after ``warmup`` steps, clip 0.2 / 0.28, no KL, advantages
    scaled per group, fp32 on the CPU, seed 0, no checkpoints or reporting."""
    return GRPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=prompts * group,
        num_generations=group,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_iterations=1,
        max_completion_length=max_new_tokens,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        learning_rate=learning_rate,
        lr_scheduler_type="constant_with_warmup" if warmup else "constant",
        warmup_steps=warmup,
        optim="adamw_torch",
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        weight_decay=0.0,
        max_grad_norm=1.0,
        epsilon=0.2,
        epsilon_high=0.28,
        beta=0.0,
        scale_rewards="group",
        loss_type=loss_type,
        mask_truncated_completions=False,
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        seed=0,
        data_seed=0,
        max_steps=max_steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sft-dir", required=True, help="the SFT checkpoint both trainers start from"
    )
    parser.add_argument("--rl-cpu-minutes", type=float, default=20.0, help="GRPO's CPU budget")
    parser.add_argument("--lr", type=float, default=2e-4, help="GRPO learning rate")
    parser.add_argument("--warmup", type=int, default=20, help="learning-rate warmup steps")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--group", type=int, default=8, help="samples per prompt")
    parser.add_argument(
        "--loss-type",
        choices=["grpo", "dapo", "bnpo", "dr_grpo"],
        default="grpo",
        help="TRL's loss aggregation; grpo is rlvr's grpo preset (sequence)",
    )
    parser.add_argument(
        "--partial-scale",
        type=float,
        default=0.0,
        help="code_tests reward per passed fraction when some tests fail",
    )
    parser.add_argument("--samples", type=int, default=8, help="samples per held-out problem")
    parser.add_argument("--operations", choices=["basic", "composed"], default="basic")
    parser.add_argument("--max-depth", type=int, default=1, help="operations per program")
    parser.add_argument("--verifier-only", type=float, default=0.0)
    parser.add_argument("--rl-part", choices=["all", "seen", "verifier_only"], default="all")
    parser.add_argument("--work-dir", default="/tmp/learn_code_trl")
    parser.add_argument("--out", default="bench/results/learn_code_trl.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' renames, each step
    started_wall, started_cpu = time.perf_counter(), cpu_seconds()
    work = Path(args.work_dir)
    task_options = ProgramSynthesisOptions(
        max_depth=args.max_depth, operations=args.operations, verifier_only=args.verifier_only
    )
    rl_options = ProgramSynthesisOptions(
        max_depth=args.max_depth,
        operations=args.operations,
        verifier_only=args.verifier_only,
        train_part=args.rl_part,
    )
    verify = local_sandbox_verifier()
    phases: dict[str, dict] = {}

    with Clock() as clock:
        phases["sft"] = {"held_out": held_out(args.sft_dir, task_options, verify, args.samples)}
    phases["sft"].update(clock.report())
    print("sft", phases["sft"], flush=True)

    task = build_task(rl_options)
    problems = task.problems("train")
    model, tokenizer, _ = load_policy(ModelSpec(name=args.sft_dir, lora=None, device="cpu"))
    texts = [p.prompt for p in problems]
    chat = uses_chat_template(
        tokenizer, "auto"
    )  # rlvr renders through the template when there is one
    prompts = [[{"role": "user", "content": t}] for t in texts] if chat else texts
    dataset = Dataset.from_dict({"prompt": prompts, "index": list(range(len(problems)))})
    reward = CodeReward(task, problems, args.partial_scale, verify)
    config = grpo_config(
        str(work / "grpo"),
        args.prompts,
        args.group,
        max_new_tokens=32,
        temperature=args.temperature,
        learning_rate=args.lr,
        warmup=args.warmup,
        loss_type=args.loss_type,
        max_steps=100_000,  # the CPU budget stops it (StepLog)
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    check_same_tokens(trainer, tokenizer, model, prompts, texts)
    print(f"TRL encodes all {len(texts)} train prompts as rlvr does; same stop ids", flush=True)
    steps = StepLog(reward, verify, args.rl_cpu_minutes * 60)
    trainer.add_callback(steps)
    trainer.remove_callback(PrinterCallback)  # its dict per step; StepLog prints a line
    with Clock() as clock:
        trainer.train()
        final_dir = work / "final"
        trainer.save_model(str(final_dir))
        tokenizer.save_pretrained(str(final_dir))
        phases["trl"] = {"held_out": held_out(str(final_dir), task_options, verify, args.samples)}
    phases["trl"].update(clock.report())
    print("trl", phases["trl"], flush=True)

    step_time = sum(row["step_time"] for row in steps.rows)
    verify_time = sum(row["verify_time"] for row in steps.rows)
    report = {
        "command": "python bench/learn_code_trl.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "trl_version": trl.__version__,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": 1,
            "load_average_at_end": os.getloadavg(),
        },
        "task": rl_options.model_dump(),
        "phases": phases,
        "gain_points": {
            metric: round(
                100 * (phases["trl"]["held_out"][metric] - phases["sft"]["held_out"][metric]), 1
            )
            for metric in phases["trl"]["held_out"]
            if "pass@" in metric
        },
        "grpo_steps": len(steps.rows),
        "mean_step_seconds": round(step_time / len(steps.rows), 2) if steps.rows else None,
        "verify_share_of_step_time": round(verify_time / step_time, 3) if step_time else None,
        "programs_verified": verify.stats.programs,
        "unjudged": verify.stats.unjudged,
        "total_wall_seconds": round(time.perf_counter() - started_wall, 1),
        "total_cpu_seconds": round(cpu_seconds() - started_cpu, 1),
        "steps": steps.rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "steps"}, indent=2))


if __name__ == "__main__":
    main()

"""Supervised fine-tuning on a task's reference completions: the warm start before RL.

Owns tokenising (prompt tokens as at rollout time, then the reference and EOS, loss on the
completion only), the training loop, periodic greedy held-out accuracy and saving the
result in ``<run_dir>/final`` for ``ModelSpec.init_from``. Uses the same specs, callback
and loading as RL jobs.
"""

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import get_scheduler, set_seed

from rlvr.callbacks import Callback
from rlvr.data import ProblemStream
from rlvr.evaluate import evaluate
from rlvr.policy import load_policy, precision_of
from rlvr.rollout import render_prompts
from rlvr.scoring import reward_specs
from rlvr.spec import SamplingSpec, SFTSpec
from rlvr.tasks.base import Problem, Task, VerifyFn, build_task
from rlvr.trainer import SCHEDULES

IGNORE = -100


@dataclass
class SFTResult:
    final_dir: Path
    metrics: dict[str, float]


def sft_batch(
    tokenizer,
    task: Task,
    problems: list[Problem],
    device: torch.device,
    chat_template: str = "auto",
    system_prompt: str | None = None,
    completions: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels (-100 on prompt and padding), right-padded.  -> 3 x (N, L)

    The targets are ``completions`` (one per problem: verified samples, for rejection-sampling
    fine-tuning), else the task's reference completions. Prompts are rendered as rollouts
    render them (`rlvr.rollout.render_prompts`: the chat template and system prompt), so the
    RL job that starts from this model samples from the prompts it was trained on."""
    texts, special = render_prompts(
        tokenizer, [p.prompt for p in problems], chat_template, system_prompt
    )
    targets = completions if completions is not None else [task.reference(p) for p in problems]
    rows, labels = [], []
    for text, target in zip(texts, targets, strict=True):
        prompt = tokenizer(text, add_special_tokens=special).input_ids
        completion = tokenizer(target, add_special_tokens=False).input_ids
        rows.append(prompt + completion + [tokenizer.eos_token_id])
        labels.append([IGNORE] * len(prompt) + completion + [tokenizer.eos_token_id])
    width = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor(
            [row + [pad] * (width - len(row)) for row in rows], device=device
        ),
        "attention_mask": torch.tensor(
            [[1] * len(row) + [0] * (width - len(row)) for row in rows], device=device
        ),
        "labels": torch.tensor(
            [label + [IGNORE] * (width - len(label)) for label in labels], device=device
        ),
    }


def run_sft(
    spec: SFTSpec,
    run_dir: str | Path,
    callback: Callback | None = None,
    verify: VerifyFn | None = None,
) -> SFTResult:
    """Train on reference completions for ``max_steps`` and save ``<run_dir>/final``."""
    callback = callback or Callback()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "spec.json").write_text(spec.model_dump_json(indent=2))
    set_seed(spec.seed)
    model, tokenizer, device = load_policy(spec.model)
    precision = precision_of(spec.model)  # fp32 master weights, autocast compute
    scaler = precision.grad_scaler()
    task = build_task(spec.task)
    problems = [
        p for p in task.problems("train")[: spec.max_examples] if task.reference(p) is not None
    ]
    stream = ProblemStream(problems, spec.seed)
    held_out = task.problems("test")[: spec.eval_size]
    sampling = SamplingSpec(  # the evals prompt as training does
        max_new_tokens=spec.max_new_tokens,
        chat_template=spec.chat_template,
        system_prompt=spec.system_prompt,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    scheduler = get_scheduler(
        SCHEDULES[spec.schedule],
        optimizer,
        num_warmup_steps=spec.warmup_steps,
        num_training_steps=spec.max_steps,
    )

    def held_out_metrics() -> dict[str, float]:
        with precision.autocast():
            found = evaluate(
                model,
                tokenizer,
                task,
                held_out,
                reward_specs(task, []),
                sampling,
                greedy=True,
                verify=verify,
            )
        return {f"eval/{name}": value for name, value in found.items()}

    model.train()
    for step in range(1, spec.max_steps + 1):
        started = time.perf_counter()
        with precision.autocast():
            batch = sft_batch(
                tokenizer,
                task,
                stream.take(spec.batch_size),
                device,
                spec.chat_template,
                spec.system_prompt,
            )
            loss = model(**batch).loss
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradient
        grad_norm = torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm or float("inf"))
        scaler.step(optimizer)
        scaler.update()
        learning_rate = scheduler.get_last_lr()[0]
        scheduler.step()
        callback.on_step(
            step,
            {
                "loss": loss.item(),
                "grad_norm": grad_norm.item(),
                "learning_rate": learning_rate,
                "step_time": time.perf_counter() - started,
            },
        )
        if spec.eval_every and step % spec.eval_every == 0 and step < spec.max_steps:
            callback.on_step(step, held_out_metrics())
        if callback.should_stop():
            break
    metrics = held_out_metrics()
    callback.on_step(step, metrics)
    final_dir = run_dir / "final"
    model.save_pretrained(str(final_dir))
    tokenizer.save_pretrained(str(final_dir))
    (run_dir / "sft.json").write_text(json.dumps({"steps": step, **metrics}, indent=2))
    callback.on_checkpoint(step, str(final_dir))
    return SFTResult(final_dir, metrics)

"""GPU smoke test: GRPO on a 0.5B-class model, LoRA and full fine-tuning, hf and vllm engines.

    python bench/gpu_smoke.py                  # one H100: sized for under 8 minutes
    python bench/gpu_smoke.py --cpu-check      # here: the same code at toy sizes, on CPU

Builds a randomly initialised Qwen2 with Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14
heads, 2 KV heads, vocabulary 151936; ``rlvr.tiny.build_qwen2_model``, its tokenizer
trained locally and padded to the vocabulary: nothing is downloaded), then runs four
jobs of ``--steps`` GRPO steps each (default 20): LoRA x {hf, vllm} and full fine-tuning
x {hf, vllm}, each in a fresh process so that one's GPU memory is not another's. Per job
it prints and records the mean step time (the first step, which warms up kernels and
vLLM, left out), generated tokens/s, peak GPU memory (PyTorch's allocator, which vLLM's
weights and KV cache also come from), whether loss and KL stayed finite at every step,
and for vllm the trainer-vs-vLLM log-prob gap and the mean TIS ratio. The reward is the
task's verdict plus a length penalty, so that a random model's completions still differ
in reward and the policy gradient is not zero. Figures go to ``$OUT/gpu_smoke.json`` when
``$OUT`` is set, else ``bench/results/gpu_smoke.json`` (``gpu_smoke_cpu_check.json`` for
``--cpu-check``). Exit status 1 when a job failed or a loss or KL was not finite; a job
past ``--job-timeout`` (240 s) is killed and counts as failed. The sizes (8 prompts x 8
samples of 64 tokens) were chosen to fit 8 minutes on an H100 by estimate: this script has
so far run only with ``--cpu-check`` (see the README for what it printed).

What the machine needs: one CUDA GPU with about 40 GB free, and a Python with the
project's dependencies (torch, transformers, peft, pydantic, pyyaml, tokenizers, ...;
``pip install -e .`` from the repository) plus, for the vllm jobs, vLLM: ``make vllm-venv``
builds ``.venv-vllm`` with vllm 0.33.0 and everything else, so
``.venv-vllm/bin/python bench/gpu_smoke.py`` is the one command. Without vllm the vllm
jobs are skipped, and the results file says why. No network is used.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's rlvr, installed or not

RESULTS = ROOT / "bench" / "results"
SIZES = {
    # model shape, prompts x group per step, completion length
    "gpu": {"model": {}, "prompts": 8, "group": 8, "max_new_tokens": 64},
    "cpu": {
        "model": {
            "hidden_size": 64,
            "layers": 2,
            "heads": 2,
            "kv_heads": 1,
            "intermediate_size": 128,
            "vocab_size": 1024,
            "dtype": "float32",
        },
        "prompts": 2,
        "group": 4,
        "max_new_tokens": 16,
    },
}
JOBS = [(finetune, engine) for finetune in ("lora", "full") for engine in ("hf", "vllm")]


def job_spec(model_dir: str, finetune: str, engine: str, steps: int, size: dict) -> dict:
    # A random model's tokens are mostly the tokenizer's fillers, "x<id>": about 1 + digits
    # characters each. A target two thirds of the way there puts every completion past it
    # by a different amount, so rewards differ within each group.
    digits = len(str(size["model"].get("vocab_size", 151936)))
    target_chars = round(size["max_new_tokens"] * (1 + digits) * 2 / 3)
    return {
        "model": {
            "name": model_dir,
            "lora": {"r": 16, "alpha": 32} if finetune == "lora" else None,
        },
        "task": {"name": "arithmetic", "max_digits": 2, "train_size": 512, "test_size": 8},
        "rewards": [
            {"name": "verdict"},
            {"name": "length_penalty", "kwargs": {"target_chars": target_chars}},
        ],
        "algorithm": {"name": "grpo", "group_size": size["group"], "kl_coef": 0.04},
        "sampling": {
            "max_new_tokens": size["max_new_tokens"],
            "temperature": 1.0,
            "engine": engine,
        },
        "optim": {
            "prompts_per_step": size["prompts"],
            "learning_rate": 1e-4 if finetune == "lora" else 1e-5,
        },
        "stopping": {"max_steps": steps},
    }


def run_job(spec: dict) -> dict:
    """One job in this process; its figures."""
    import torch

    from rlvr.callbacks import Callback
    from rlvr.spec import TrainSpec
    from rlvr.trainer import Trainer

    class Steps(Callback):
        def __init__(self):
            self.rows: list[dict[str, float]] = []

        def on_step(self, step: int, metrics: dict[str, float]) -> None:
            self.rows.append(metrics)

    cuda = torch.cuda.is_available()
    steps = Steps()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(TrainSpec.model_validate(spec), run_dir, steps)
        setup_seconds = time.perf_counter() - started
        trainer.run()
    rows = steps.rows
    timed = rows[1:] or rows  # the first step warms up kernels (and vLLM's graphs)
    finite = {
        name: all(math.isfinite(row.get(name, 0.0)) for row in rows) for name in ("loss", "kl")
    }
    figures = {
        "steps": len(rows),
        "setup_seconds": round(setup_seconds, 1),
        "step_seconds": round(sum(row["step_time"] for row in timed) / len(timed), 3),
        "generation_seconds": round(sum(row["generation_time"] for row in timed) / len(timed), 3),
        "update_seconds": round(sum(row["update_time"] for row in timed) / len(timed), 3),
        "generated_tokens_per_second": round(
            sum(row["tokens_per_second"] for row in timed) / len(timed), 1
        ),
        "mean_completion_tokens": round(
            sum(row["completions/mean_length"] for row in rows) / len(rows), 1
        ),
        "loss_finite": finite["loss"],
        "kl_finite": finite["kl"],
        "last_loss": rows[-1]["loss"],
        "last_kl": rows[-1].get("kl"),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }
    if cuda:
        figures["peak_gpu_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        figures["peak_gpu_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    else:
        figures["peak_rss_gib"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2
        )
    if "sampling/logp_difference/max" in rows[-1]:
        figures["logp_difference_max"] = max(row["sampling/logp_difference/max"] for row in rows)
        figures["logp_difference_mean"] = sum(
            row["sampling/logp_difference/mean"] for row in rows
        ) / len(rows)
        figures["importance_ratio_mean"] = sum(
            row["sampling/importance_ratio/mean"] for row in rows
        ) / len(rows)
    return figures


def run_in_child(spec: dict, env: dict, timeout: float) -> dict:
    """One job in a fresh process (its GPU memory and vLLM's state die with it); its figures,
    or why it failed. A job past ``timeout`` is killed, so one hang cannot eat the budget."""
    command = [sys.executable, __file__, "--job", json.dumps(spec)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        tail = (expired.stderr or b"")[-3000:]
        return {
            "failed": f"killed after {timeout:.0f} s",
            "stderr_tail": tail.decode(errors="replace"),
        }
    lines = [line for line in done.stdout.splitlines() if line.startswith("FIGURES ")]
    if done.returncode != 0 or not lines:
        return {"failed": f"exit {done.returncode}", "stderr_tail": done.stderr[-3000:]}
    return json.loads(lines[-1].removeprefix("FIGURES "))


def vllm_missing() -> str | None:
    try:
        import vllm  # noqa: F401
    except ImportError as error:
        return f"vllm cannot be imported ({error}): make vllm-venv, then use .venv-vllm/bin/python"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cpu-check", action="store_true", help="toy sizes on CPU: proves the script runs"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="GRPO steps per job (default 20; 3 with --cpu-check)",
    )
    parser.add_argument(
        "--job-timeout", type=float, default=None, help="seconds per job (default 240; 1200 on CPU)"
    )
    # A JSON spec: run it in this process and print its figures (how the jobs are run).
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print("FIGURES " + json.dumps(run_job(json.loads(args.job))), flush=True)
        return 0

    import torch

    from rlvr.tiny import build_qwen2_model

    if not args.cpu_check and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --cpu-check for the toy-size run on CPU", file=sys.stderr)
        return 2
    size = SIZES["cpu" if args.cpu_check else "gpu"]
    steps = args.steps or (3 if args.cpu_check else 20)
    args.job_timeout = args.job_timeout or (1200 if args.cpu_check else 240)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    skipped = vllm_missing()
    results: dict = {
        "jobs": {},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "steps": steps,
        "cpu_check": args.cpu_check,
        "sizes": size,
        "loadavg": os.getloadavg(),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        built = time.perf_counter()
        model_dir = str(build_qwen2_model(Path(scratch) / "model", **size["model"]))
        results["model_build_seconds"] = round(time.perf_counter() - built, 1)
        for finetune, engine in JOBS:
            name = f"{finetune}/{engine}"
            if engine == "vllm" and skipped:
                results["jobs"][name] = {"skipped": skipped}
                print(f"{name}: skipped, {skipped}", flush=True)
                continue
            figures = run_in_child(
                job_spec(model_dir, finetune, engine, steps, size), env, args.job_timeout
            )
            results["jobs"][name] = figures
            if "failed" in figures:
                print(f"{name}: FAILED ({figures['failed']})\n{figures['stderr_tail']}", flush=True)
                continue
            print(f"{name}: {json.dumps(results['jobs'][name])}", flush=True)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["loadavg_after"] = os.getloadavg()
    print_table(results)
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("gpu_smoke_cpu_check.json" if args.cpu_check else "gpu_smoke.json")
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    ran = [job for job in results["jobs"].values() if "skipped" not in job]
    healthy = all("failed" not in job and job["loss_finite"] and job["kl_finite"] for job in ran)
    return 0 if healthy else 1


COLUMNS = ("job", "step s", "gen s", "upd s", "tok/s", "peak GiB", "finite", "|dlogp|max")


def print_table(results: dict) -> None:
    print("\n" + " ".join(f"{title:>10}" for title in COLUMNS))
    for name, job in results["jobs"].items():
        if "steps" not in job:
            print(f"{name:>10} {'skipped' if 'skipped' in job else 'FAILED':>10}")
            continue
        gap = job.get("logp_difference_max")
        cells = [
            name,
            f"{job['step_seconds']:.2f}",
            f"{job['generation_seconds']:.2f}",
            f"{job['update_seconds']:.2f}",
            f"{job['generated_tokens_per_second']:.1f}",
            f"{job.get('peak_gpu_allocated_gib', job.get('peak_rss_gib')):.2f}",
            "yes" if job["loss_finite"] and job["kl_finite"] else "NO",
            "" if gap is None else f"{gap:.1e}",
        ]
        print(" ".join(f"{cell:>10}" for cell in cells))
    print(f"total {results['total_seconds']} s")


if __name__ == "__main__":
    sys.exit(main())

"""Rollout throughput: generated tokens/s of the hf and the vllm engine, side by side in one run.

    .venv-vllm/bin/python bench/rollout_throughput.py [--size cpu|0.5b] [--prompts P] [--group G]
        [--max-new-tokens T] [--rounds N]

Both engines get the same model (a randomly initialised Qwen2 built locally by
``rlvr.tiny.build_qwen2_model``: ``cpu`` is a 30M-parameter one for this machine, ``0.5b``
Qwen2.5-0.5B's shape for a GPU), the same P arithmetic prompts x G samples, the same
temperature and max_new_tokens, and are timed through ``Engine.generate``, the call the
trainer makes (tokenising, sampling, log-probs, the rollout record). A random model almost
never samples EOS, so completions run to max_new_tokens in both (the file records the mean
length of each). Each engine has one untimed warm-up round; then the timed rounds
alternate hf, vllm, so that a change of load on a shared machine falls on both alike.
The vLLM engine is built first: on CPU it fixes the process's torch threads, which the hf
engine then uses too (recorded). Prints a table and writes bench/results/rollout_throughput.json
(or ``$OUT/rollout_throughput.json``). Needs vllm: ``make vllm-venv``.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's rlvr, installed or not

SIZES = {
    "cpu": {
        "model": {
            "hidden_size": 256,
            "layers": 4,
            "heads": 4,
            "kv_heads": 2,
            "intermediate_size": 1024,
            "vocab_size": 32768,
            "dtype": "float32",
        },
        "prompts": 4,
        "group": 8,
        "max_new_tokens": 64,
    },
    "0.5b": {"model": {}, "prompts": 16, "group": 8, "max_new_tokens": 256},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", choices=sorted(SIZES), default=None, help="default: 0.5b on a GPU, else cpu"
    )
    parser.add_argument("--prompts", type=int)
    parser.add_argument("--group", type=int)
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per engine")
    args = parser.parse_args()

    import torch

    from rlvr.engines.hf import HFEngine
    from rlvr.engines.vllm_engine import VLLMEngine
    from rlvr.policy import load_policy
    from rlvr.spec import ModelSpec
    from rlvr.tasks.arithmetic import ArithmeticOptions
    from rlvr.tasks.base import build_task
    from rlvr.tiny import build_qwen2_model

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB, CPU only
    size_name = args.size or ("0.5b" if torch.cuda.is_available() else "cpu")
    size = SIZES[size_name]
    prompts_per_round = args.prompts or size["prompts"]
    group = args.group or size["group"]
    max_new_tokens = args.max_new_tokens or size["max_new_tokens"]
    problems = build_task(ArithmeticOptions(max_digits=2, train_size=64)).problems("train")
    prompts = [problem.prompt for problem in problems[:prompts_per_round]]
    loadavg_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = str(build_qwen2_model(Path(scratch) / "model", **size["model"]))
        model, tokenizer, device = load_policy(ModelSpec(name=model_dir, lora=None))
        model.eval()
        parameter = next(model.parameters())
        started = time.perf_counter()
        engines = {
            "vllm": VLLMEngine(
                model_dir,
                tokenizer,
                device=device,
                dtype=parameter.dtype,
                gpu_memory_utilization=0.3,
                seed=0,
            ),
            "hf": HFEngine(model, tokenizer),
        }
        vllm_start_seconds = time.perf_counter() - started
        rounds: dict[str, list[dict]] = {"hf": [], "vllm": []}
        for index in range(args.rounds + 1):
            for name in ("hf", "vllm"):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                began = time.perf_counter()
                rollout = engines[name].generate(
                    prompts, group_size=group, temperature=1.0, max_new_tokens=max_new_tokens
                )
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - began
                tokens = int(rollout.completion_mask.sum().item())
                if index > 0:  # round 0 warms up
                    rounds[name].append(
                        {
                            "seconds": round(seconds, 3),
                            "tokens": tokens,
                            "tokens_per_second": round(tokens / seconds, 1),
                        }
                    )
                print(
                    f"round {index} {name:>4}: {tokens} tokens in {seconds:.2f} s"
                    f"{'  (warm-up)' if index == 0 else ''}",
                    flush=True,
                )

    summary = {
        name: {
            "tokens_per_second_median": statistics.median(r["tokens_per_second"] for r in timed),
            "seconds_median": statistics.median(r["seconds"] for r in timed),
            "mean_completion_tokens": statistics.mean(r["tokens"] for r in timed)
            / (len(prompts) * group),
        }
        for name, timed in rounds.items()
    }
    ratio = summary["vllm"]["tokens_per_second_median"] / summary["hf"]["tokens_per_second_median"]
    results = {
        "size": size_name,
        "model": size["model"] or "Qwen2.5-0.5B shape (rlvr.tiny.build_qwen2_model defaults)",
        "prompts": len(prompts),
        "group": group,
        "rows": len(prompts) * group,
        "max_new_tokens": max_new_tokens,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "dtype": str(parameter.dtype),
        "torch_threads": torch.get_num_threads(),
        "vllm_start_seconds": round(vllm_start_seconds, 1),
        "summary": summary,
        "vllm_over_hf": round(ratio, 2),
        "rounds": rounds,
        "loadavg_before": loadavg_before,
        "loadavg_after": os.getloadavg(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"\n{'engine':<6} {'tokens/s':>10} {'s/round':>9} {'tokens/row':>11}")
    for name, row in summary.items():
        print(
            f"{name:<6} {row['tokens_per_second_median']:>10.1f} {row['seconds_median']:>9.2f} "
            f"{row['mean_completion_tokens']:>11.1f}"
        )
    load = f"load average {results['loadavg_before'][0]:.1f} -> {results['loadavg_after'][0]:.1f}"
    shape = f"{results['rows']} rows x {max_new_tokens} tokens, {results['device']}"
    print(f"vllm / hf = {ratio:.2f}x ({shape}, {load})")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rollout_throughput.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Memory of one update: whole-batch logits (before) against chunked log-probs (after), on CPU.

    .venv/bin/python bench/update_memory.py [--rows 4] [--lengths 128 512] [--vocabs 16384 65536]

One update is what the trainer's minibatch does to the model: the completion tokens'
log-probs and entropies with gradients, a loss, backward. ``before`` is the code this
replaced (``logits_to_keep`` logits of the whole batch, scaled, log-softmaxed and
entropied in fp32, every tensor (B, T, V)); ``after`` is ``rlvr.rollout.policy_logprobs``
(hidden states, then the output layer a chunk of ``LOGIT_CHUNK_TOKENS`` tokens at a time,
each chunk recomputed in backward). Each measurement runs in a fresh process: peak RSS
(``ru_maxrss``) minus the RSS just before the update, on a random Qwen2 of 2 layers and
hidden size 64 (so the vocabulary, not the layers, dominates), float32, and its wall time.
Prints a table and the GPU memory the formula below predicts for Qwen2.5 0.5B/1.5B/7B, and
writes bench/results/update_memory.json (or ``$OUT/update_memory.json``).

The formula (``predict_gib``, an estimate, not a measurement) for one GPU, mixed precision
(``rlvr.precision``), AdamW, the hf engine:
    weights    full: 16 bytes/param (fp32 weights, grads, two Adam moments) + 2 (bf16 copy
               autocast caches) [+ 2 for the KL reference copy]; LoRA: 2 (bf16 base) + 16
               per adapter param
    update     checkpointing: layers x tokens x hidden x 2 bytes (each layer's input) + one
               layer's activations; without: every layer's, about (8 hidden + 3 intermediate)
               x 2 bytes per token per layer; plus the logits of one chunk,
               LOGIT_CHUNK_TOKENS x V x 4 bytes x c, c the fp32 copies measured here
    rollout    KV cache: rows x sequence x layers x 2 x kv_heads x head_dim x 2 bytes
    fixed      2 GiB for the CUDA context, allocator slack and workspace
Cards are compared in GiB (a "24 GB" card has 24 GiB).
peak = weights + max(update, rollout) + fixed, tokens = micro_batch_size x sequence.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's rlvr, installed or not

PROMPT_TOKENS = 32
GIB = 1024**3

QWEN = {  # Qwen2.5 shapes, from their config.json
    "0.5B": {"params": 0.494e9, "layers": 24, "hidden": 896, "intermediate": 4864,
             "vocab": 151936, "kv_heads": 2, "head_dim": 64},
    "1.5B": {"params": 1.54e9, "layers": 28, "hidden": 1536, "intermediate": 8960,
             "vocab": 151936, "kv_heads": 2, "head_dim": 128},
    "7B": {"params": 7.62e9, "layers": 28, "hidden": 3584, "intermediate": 18944,
           "vocab": 152064, "kv_heads": 4, "head_dim": 128},
}  # fmt: skip


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_one(mode: str, rows: int, length: int, vocab: int) -> dict:
    """One update in this process: peak RSS growth and seconds."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlvr.loss import entropy, token_logprobs
    from rlvr.rollout import policy_logprobs

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config).train()
    prompt = torch.randint(0, vocab, (rows, PROMPT_TOKENS))
    prompt_mask = torch.ones_like(prompt)
    completion = torch.randint(0, vocab, (rows, length))
    mask = torch.ones(rows, length)
    temperatures = torch.ones(rows)
    before = _rss_bytes()
    started = time.perf_counter()
    if mode == "before":  # the replaced code, as it was
        ids = torch.cat([prompt, completion], dim=1)
        attention = torch.cat([prompt_mask, mask.long()], dim=1)
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
        logits = model(
            input_ids=ids, attention_mask=attention, position_ids=positions,
            logits_to_keep=length + 1,
        ).logits[:, :-1]  # fmt: skip
        logits = logits.float() / temperatures.unsqueeze(1).unsqueeze(2)
        entropies = entropy(logits)
        logprobs = token_logprobs(logits, completion)
    else:
        logprobs, entropies = policy_logprobs(
            model, prompt, prompt_mask, completion, mask, temperatures, with_entropy=True
        )
    loss = -(logprobs * mask).mean() - 0.01 * (entropies * mask).mean()
    loss.backward()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"mode": mode, "rows": rows, "length": length, "vocab": vocab,
            "peak_growth_bytes": max(0, peak - before), "seconds": seconds}  # fmt: skip


def lora_params(shape: dict, r: int = 16) -> float:
    """Adapter parameters of all-linear LoRA of rank r (q, k, v, o, gate, up, down)."""
    h, i, kv = shape["hidden"], shape["intermediate"], shape["kv_heads"] * shape["head_dim"]
    per_layer = r * ((h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h))
    return per_layer * shape["layers"]


def predict_gib(
    shape: dict,
    lora: bool,
    micro_rows: int,
    sequence: int,
    rollout_rows: int,
    checkpointing: bool = True,
    kl_reference: bool = False,
    logit_copies: float = 4.0,
    chunk_tokens: int = 1024,
) -> float:
    """The module docstring's formula, in GiB."""
    params, layers, hidden = shape["params"], shape["layers"], shape["hidden"]
    full = 18 * params + (2 * params if kl_reference else 0)
    weights = 2 * params + 16 * lora_params(shape) if lora else full
    tokens = micro_rows * sequence
    per_layer = (8 * hidden + 3 * shape["intermediate"]) * 2 * tokens
    activations = layers * 2 * hidden * tokens + per_layer if checkpointing else layers * per_layer
    logits = chunk_tokens * shape["vocab"] * 4 * logit_copies
    kv_cache = rollout_rows * sequence * layers * 2 * shape["kv_heads"] * shape["head_dim"] * 2
    return (weights + max(activations + logits, kv_cache) + 2 * GIB) / GIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--vocabs", type=int, nargs="+", default=[16384, 65536])
    parser.add_argument("--one", nargs=4, metavar=("MODE", "ROWS", "LENGTH", "VOCAB"))
    args = parser.parse_args()
    if args.one:
        mode, rows, length, vocab = args.one
        print(json.dumps(measure_one(mode, int(rows), int(length), int(vocab))))
        return

    from rlvr.logprobs import LOGIT_CHUNK_TOKENS

    runs = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for vocab in args.vocabs:
        for length in args.lengths:
            for mode in ("before", "after"):
                command = [sys.executable, __file__, "--one", mode, str(args.rows), str(length),
                           str(vocab)]  # fmt: skip
                out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
                run = json.loads(out.stdout.strip().splitlines()[-1])
                tokens = args.rows * length
                run["logit_tensor_bytes"] = tokens * vocab * 4  # one fp32 (B, T, V)
                run["fp32_logit_copies"] = run["peak_growth_bytes"] / run["logit_tensor_bytes"]
                runs.append(run)
                print(f"{mode:>6}  rows {args.rows} x {length:>4} tokens, V {vocab:>6}: "
                      f"peak +{run['peak_growth_bytes'] / 2**20:8.1f} MiB "
                      f"({run['fp32_logit_copies']:.2f} x one (B,T,V) fp32), "
                      f"{run['seconds']:.2f} s", flush=True)  # fmt: skip
    # c: fp32 (chunk, V) copies alive at the peak, from the largest "after" run (several
    # chunks; in small runs the fixed costs of the first backward dominate).
    largest = max((r for r in runs if r["mode"] == "after"), key=lambda r: r["logit_tensor_bytes"])
    chunk_copies = largest["peak_growth_bytes"] / (LOGIT_CHUNK_TOKENS * largest["vocab"] * 4)
    predictions = []
    for name, shape in QWEN.items():
        for lora in (True, False):
            gib = predict_gib(shape, lora, micro_rows=4, sequence=1024, rollout_rows=64,
                              logit_copies=chunk_copies)  # fmt: skip
            predictions.append({"model": name, "lora": lora, "predicted_gib": round(gib, 1),
                                **{f"fits_{size}gb": gib <= size for size in (24, 40, 80)}})  # fmt: skip
            fits = " ".join(f"{s}GB:{'yes' if gib <= s else 'no '}" for s in (24, 40, 80))
            print(f"predicted {name:>4} {'LoRA' if lora else 'full':>4}: {gib:6.1f} GiB  {fits}")
    results = {
        "rows": args.rows,
        "prompt_tokens": PROMPT_TOKENS,
        "logit_chunk_tokens": LOGIT_CHUNK_TOKENS,
        "after_chunk_fp32_copies": chunk_copies,
        "runs": runs,
        "prediction_setting": "micro_batch_size 4 x 1024-token sequences, gradient checkpointing, "
        "rollout 64 rows x 1024 tokens, LoRA r=16 all-linear, no KL reference",
        "predictions": predictions,
        "loadavg_after": os.getloadavg(),
    }
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "update_memory.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Throughput of the sandbox on the 974 MBPP reference solutions, side by side with two
unsandboxed baselines, in one run:

  naive    one subprocess of the real interpreter binary (not the virtualenv's link to it)
           per sample, running the program and its asserts;
  fork     a human-eval style in-process harness: fork per sample, exec, no isolation;
  nsjail   this project's sandbox: each sample forked, confined, in its own namespaces,
           from a warm zygote in a long-lived nsjail; its values judged on the host.

Latency is per sample, from the start of its run to its verdict, the same way in all three.

Each mode runs with 1x, 2x and 3x as many workers as the machine has cores and is reported
at its best setting, so no mode is held back by a concurrency that suits another. Modes
alternate inside each setting so that a noisy neighbour hurts all of them alike. Prints a
table and writes bench/results/sandbox_throughput.json.

    .venv/bin/python bench/sandbox_throughput.py [--limit N] [--rounds R]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox import Limits, Sandbox  # noqa: E402
from sandbox.datasets import from_mbpp  # noqa: E402

MBPP = ROOT / "data" / "mbpp" / "mbpp.jsonl"  # the repository's copy (data/README.md)
RESULTS = ROOT / "bench" / "results" / "sandbox_throughput.json"
TIMEOUT = 30.0
PYTHON = os.path.realpath(sys.executable)  # the binary itself: a venv's python is a symlink to it
SAME_TIMEOUT = Limits(wall_seconds=TIMEOUT, cpu_seconds=int(TIMEOUT), test_seconds=TIMEOUT)


def script(row: dict) -> str:
    return "\n".join([row["code"], row["test_setup_code"] or "", *row["test_list"], ""])


def naive_one(row: dict) -> tuple[bool, float]:
    start = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(script(row))
    try:
        proc = subprocess.run([PYTHON, fh.name], capture_output=True, timeout=TIMEOUT)
        ok = proc.returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    finally:
        os.unlink(fh.name)
    return ok, time.perf_counter() - start


def fork_one(row: dict) -> tuple[bool, float]:
    start = time.perf_counter()
    code = compile(script(row), f"<mbpp {row['task_id']}>", "exec")
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            exec(code, {"__name__": "__main__"})
            os._exit(0)
        except BaseException:
            os._exit(1)
    pidfd = os.pidfd_open(pid)
    if not select.select([pidfd], [], [], TIMEOUT)[0]:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    return os.waitstatus_to_exitcode(status) == 0, time.perf_counter() - start


def run_pool(fn, rows: list[dict], workers: int) -> dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(fn, rows))
    return summarise(
        [ok for ok, _ in results], [t for _, t in results], time.perf_counter() - start
    )


def nsjail_one(box: Sandbox, row: dict) -> tuple[bool, float]:
    start = time.perf_counter()
    verdict = box.run(from_mbpp(row, limits=SAME_TIMEOUT))
    return verdict.all_passed, time.perf_counter() - start


def summarise(passed: list[bool], latencies: list[float], elapsed: float) -> dict:
    ordered = sorted(latencies)
    return {
        "samples": len(passed),
        "passed": sum(passed),
        "seconds": round(elapsed, 2),
        "samples_per_second": round(len(passed) / elapsed, 1),
        "p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="first N samples only")
    parser.add_argument(
        "--multipliers", default="1,2,3", help="workers per core to try, comma-separated"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    args = parser.parse_args()

    rows = [json.loads(line) for line in MBPP.read_text().splitlines() if line.strip()][
        : args.limit
    ]
    cores = os.cpu_count() or 1
    load_at_start = os.getloadavg()
    with Sandbox() as box:
        modes = {
            "naive": lambda w: run_pool(naive_one, rows, w),
            "fork": lambda w: run_pool(fork_one, rows, w),
            "nsjail": lambda w: run_pool(functools.partial(nsjail_one, box), rows, w),
        }
        runs: dict[str, dict[int, dict]] = {m: {} for m in modes}
        for workers in (cores * int(m) for m in args.multipliers.split(",")):
            for name, fn in modes.items():
                runs[name][workers] = result = {
                    **fn(workers),
                    "load_average_1min_after": round(os.getloadavg()[0], 2),
                }
                print(f"{name:7s} workers={workers:<3d} {result}", file=sys.stderr)
        cgroups = box.cgroups
    best = {
        m: max(
            ({"workers": w, **r} for w, r in by_w.items()), key=lambda r: r["samples_per_second"]
        )
        for m, by_w in runs.items()
    }
    ratios = {
        "nsjail_vs_naive": round(
            best["nsjail"]["samples_per_second"] / best["naive"]["samples_per_second"], 2
        ),
        "nsjail_vs_fork": round(
            best["nsjail"]["samples_per_second"] / best["fork"]["samples_per_second"], 2
        ),
    }
    print(
        f"\n{'mode':8s} {'workers':>7s} {'samples/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'passed':>9s}"
    )
    for name, res in best.items():
        print(
            f"{name:8s} {res['workers']:7d} {res['samples_per_second']:10.1f} {res['p50_ms']:8.1f} "
            f"{res['p99_ms']:8.1f} {res['passed']:>4d}/{res['samples']}"
        )
    print(
        f"\nnsjail / naive = {ratios['nsjail_vs_naive']}x   nsjail / fork = {ratios['nsjail_vs_fork']}x"
    )
    print(f"load average: {load_at_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": {
                    "cores": cores,
                    "python": sys.version.split()[0],
                    "naive_binary": PYTHON,
                    "load_average_at_start": load_at_start,
                    "load_average_at_end": os.getloadavg(),
                },
                "best": best,
                "ratios": ratios,
                "all_runs": runs,
                "cgroups": cgroups,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

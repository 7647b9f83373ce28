"""What the service adds to a training run: the same short run in-process and through the stack.

    .venv/bin/python bench/service_overhead.py [--reps 5] [--steps 8] [--tasks program_synthesis arithmetic]
                                               [--databases sqlite postgres]

in-process   `python -m rlvr train SPEC --run-dir DIR`: one process; code is judged by an nsjail
             pool inside it.
service      Procfile under honcho (gunicorn, a train and a verify worker, beat) on a
             private Redis and a fresh SQLite file (and with `--databases ... postgres`, a fresh
             Postgres database): `POST /api/v1/jobs`, then `GET /jobs/<id>` every 0.1 s until it ends.
             The train worker runs the job in a fresh process, code goes to the verify queue in
             batches, every step's metrics and rollouts are written to the database.

Both runs start from the same tiny model (built once, untimed) with the same spec and torch
threads. The stack stays up all along, so both share the machine alike, and the two modes
alternate, repetition by repetition. Wall time runs from launch (or submit) to the end the
client sees. Each run's own `step_time` metrics split it into the loop and the rest (process
start, imports, model load, saving, and for the service the queue and the database).
Prints a table and writes bench/results/service_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "deploy")]

import redis  # noqa: E402

import stack  # noqa: E402  (deploy/stack.py)
from queue_latency import postgres_database  # noqa: E402
from service.settings import load_settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "service_overhead.json"
TARGET = 1.1  # service wall time / in-process wall time
LOOP_METRICS = ("step_time", "generation_time", "verify_time", "update_time")
KEYS = (
    "wall_seconds",
    "loop_seconds",
    "generation_seconds",
    "verify_seconds",
    "update_seconds",
    "outside_loop_seconds",
)
TASKS = {
    # Rewards from the sandbox: the verify pool is on the service's path.
    "program_synthesis": {
        "task": {"name": "program_synthesis", "max_depth": 1},
        "sampling": {"max_new_tokens": 32, "temperature": 1.0},
        "optim": {"learning_rate": 1e-4, "prompts_per_step": 8, "seed": 0},
    },
    # Rule rewards only: the queue, the fresh process and the database writes, no verify pool.
    "arithmetic": {
        "task": {"name": "arithmetic", "min_digits": 2, "max_digits": 2},
        "sampling": {"max_new_tokens": 6, "temperature": 1.2},
        "optim": {"learning_rate": 2e-4, "prompts_per_step": 16, "seed": 0},
    },
}


def train_spec(task: str, model: str, steps: int) -> dict:
    return {
        "model": {"name": model, "lora": None},
        "algorithm": {"name": "grpo", "group_size": 8},
        "stopping": {"max_steps": steps},
        **TASKS[task],
    }


def in_process(spec_file: Path, run_dir: Path, env: dict) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "rlvr", "train", str(spec_file), "--run-dir", str(run_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"in-process run failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return timings(
        wall, {name: [row[name] for row in rows if name in row] for name in LOOP_METRICS}
    )


def timings(wall: float, series: dict[str, list[float]]) -> dict:
    """Wall time; the loop (sum of step_time) and its parts: sampling, verifying (rewards,
    with the verify queue's round trips on the service), the update; and the rest."""
    loop = sum(series["step_time"])
    parts = {
        f"{name.removesuffix('_time')}_seconds": round(sum(series[name]), 2)
        for name in LOOP_METRICS[1:]
    }
    return {
        "wall_seconds": round(wall, 2),
        "loop_seconds": round(loop, 2),
        **parts,
        "outside_loop_seconds": round(wall - loop, 2),
    }


def through_service(base: str, token: str, spec: dict) -> dict:
    started = time.perf_counter()
    status, job = stack.call(base, "/jobs", token, {"kind": "train", "spec": spec})
    if status != 201:
        sys.exit(f"submit failed: {status} {job}")
    while job["finished_at"] is None:
        time.sleep(0.1)
        job = stack.call(base, f"/jobs/{job['id']}", token)[1]
    wall = time.perf_counter() - started
    if job["status"] != "succeeded":
        sys.exit(f"job {job['id']} {job['status']}: {job['error']}")
    names = ",".join(LOOP_METRICS)
    series = stack.call(base, f"/jobs/{job['id']}/metrics?names={names}", token)[1]["series"]
    at = {
        name: datetime.fromisoformat(job[name])
        for name in ("created_at", "started_at", "finished_at")
    }
    return {
        **timings(wall, {name: [value for _, value in series[name]] for name in LOOP_METRICS}),
        "job_id": job["id"],
        "queued_seconds": round((at["started_at"] - at["created_at"]).total_seconds(), 3),
        "running_seconds": round((at["finished_at"] - at["started_at"]).total_seconds(), 2),
    }


def start_redis(port: str) -> subprocess.Popen:
    broker = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=int(port))
    for _ in range(50):
        try:
            client.ping()
            return broker
        except redis.ConnectionError:
            time.sleep(0.1)
    broker.kill()
    sys.exit(f"redis-server did not answer on port {port}")


def median_of(runs: list[dict], key: str) -> float:
    return round(statistics.median(run[key] for run in runs), 2)


def compare(
    task: str, database: str, args, work: Path, model: str, env: dict, base: str, token: str
) -> dict:
    """`args.reps` runs of each mode on one task, alternated; the medians and their ratio."""
    spec = train_spec(task, model, args.steps)
    spec_file = work / f"{task}.json"
    spec_file.write_text(json.dumps(spec))
    runs: dict[str, list[dict]] = {"in_process": [], "service": []}
    for rep in range(args.reps):
        for mode in ("in_process", "service") if rep % 2 == 0 else ("service", "in_process"):
            if mode == "in_process":
                run = in_process(spec_file, work / f"{database}-{task}-{rep}", env)
            else:
                run = through_service(base, token, spec)
            runs[mode].append({**run, "load_average": round(os.getloadavg()[0], 2)})
            print(
                f"{database} {task} rep {rep + 1}/{args.reps} {mode:<10} wall {run['wall_seconds']:6.2f}s  "
                f"loop {run['loop_seconds']:6.2f}s (verify {run['verify_seconds']:6.2f}s)  "
                f"outside the loop {run['outside_loop_seconds']:5.2f}s",
                flush=True,
            )
    summary = {mode: {key: median_of(rows, key) for key in KEYS} for mode, rows in runs.items()}
    return {
        "task": task,
        "database": database,
        "spec": {**spec, "model": {"name": "tiny (built with seed 0)", "lora": None}},
        "ratio_of_medians": round(
            summary["service"]["wall_seconds"] / summary["in_process"]["wall_seconds"], 3
        ),
        "ratios_per_rep": [
            round(s["wall_seconds"] / i["wall_seconds"], 3)
            for i, s in zip(runs["in_process"], runs["service"])
        ],
        "median": summary,
        "runs": runs,
    }


def on_stack(database: str, args, work: Path, model: str, redis_url: str) -> list[dict]:
    """Starts the Procfile stack on `database` and compares each task on it."""
    pg = postgres_database() if database == "postgres" else None
    if database == "postgres" and pg is None:
        sys.exit("no Postgres answers at TEST_POSTGRES_URL")
    os.environ.update(
        REDIS_URL=redis_url, RLVR_DATA_DIR=str(work / database), OMP_NUM_THREADS=str(args.threads)
    )
    os.environ.pop("DATABASE_URL", None)
    if pg:
        os.environ["DATABASE_URL"] = pg[0]
    env, base, token = stack.prepare(stack.free_bind())
    log = work / f"{database}-stack.log"
    procs = stack.start_stack(env, log)
    try:
        stack.wait_healthy(base, procs, log)
        return [compare(task, database, args, work, model, env, base, token) for task in args.tasks]
    finally:
        stack.stop_stack(procs)
        if pg:
            pg[1]()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks", nargs="+", choices=sorted(TASKS), default=["program_synthesis", "arithmetic"]
    )
    parser.add_argument(
        "--databases", nargs="+", choices=["sqlite", "postgres"], default=["sqlite"]
    )
    parser.add_argument(
        "--steps", type=int, default=8, help="GRPO steps per run (default %(default)s)"
    )
    parser.add_argument(
        "--reps", type=int, default=5, help="runs of each mode, alternated (default %(default)s)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for both modes (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep the model, runs and stack logs here (default: a temporary dir)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rlvr-overhead-") as tmp:
        work = args.work_dir or Path(tmp)
        from rlvr.tiny import build_tiny_model

        model = str(build_tiny_model(work / "tiny", seed=0))
        port = stack.free_bind().split(":")[1]
        broker = start_redis(port)
        try:
            results = [
                result
                for n, database in enumerate(args.databases)
                for result in on_stack(database, args, work, model, f"redis://127.0.0.1:{port}/{n}")
            ]
        finally:
            broker.terminate()
            broker.wait(10)
    print(
        f"\n{'median of ' + str(args.reps) + ', seconds':<36}"
        + "".join(
            f"{name:>9}" for name in ("wall", "loop", "sample", "verify", "update", "outside")
        )
    )
    for result in results:
        for mode, row in result["median"].items():
            name = f"{result['database']} {result['task']} {mode}"
            print(f"{name:<36}" + "".join(f"{row[key]:>9}" for key in KEYS))
        print(
            f"{'':<4}service / in-process: {result['ratio_of_medians']}x (per rep "
            f"{', '.join(map(str, result['ratios_per_rep']))}; target <= {TARGET}x: "
            f"{'met' if result['ratio_of_medians'] <= TARGET else 'missed'})"
        )
    settings = load_settings()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(["python bench/service_overhead.py", *sys.argv[1:]]),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()],
                },
                "settings": {
                    "steps": args.steps,
                    "reps": args.reps,
                    "omp_num_threads": args.threads,
                    "train_concurrency": os.environ.get("TRAIN_CONCURRENCY", "1"),
                    "verify_concurrency": os.environ.get("VERIFY_CONCURRENCY", "2"),
                    "verify_batch_size": settings.verify_batch_size,
                },
                "target_ratio": TARGET,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

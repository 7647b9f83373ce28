"""Queue latency and status-endpoint throughput of the whole stack, in one run:

  submit -> running   time from a client's `POST /api/v1/jobs` to the worker's claim of the
                      job (its `started_at`), with an idle train worker, one job at a time;
  GET /jobs/<id>      requests per second with the project's gunicorn settings
                      (deploy/gunicorn.conf.py), side by side with a bare Flask endpoint
                      (bench/bare_app.py) served with the very same settings.

The stack is Procfile under honcho on a private redis-server, with a fresh SQLite
file, and again on a fresh Postgres database when one answers at TEST_POSTGRES_URL. Load
comes from a few client processes with keep-alive connections, bounded in time. Prints a
table and writes bench/results/queue_latency.json.

    .venv/bin/python bench/queue_latency.py [--jobs N] [--seconds S]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "deploy")]

import redis  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

import stack  # noqa: E402  (deploy/stack.py)
from service.settings import load_settings  # noqa: E402
from service.settings import sqlalchemy_url  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "queue_latency.json"
PG_ADMIN_URL = sqlalchemy_url(
    os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
)
JOB = {
    "kind": "verify",
    "spec": {
        "requests": [
            {"program": "x = 1", "tests": {"kind": "function", "tests": ["assert x == 1"]}}
        ]
    },
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def submit_to_running(base: str, token: str, jobs: int) -> list[float]:
    """Milliseconds from submit to claim, one job at a time, the worker idle before each."""
    latencies = []
    for _ in range(jobs):
        sent = datetime.now(UTC)
        status, job = stack.call(base, "/jobs", token, JOB)
        assert status == 201, job
        while job["status"] not in ("succeeded", "failed"):
            time.sleep(0.05)
            job = stack.call(base, f"/jobs/{job['id']}", token)[1]
        latencies.append((datetime.fromisoformat(job["started_at"]) - sent).total_seconds() * 1000)
        time.sleep(0.3)  # the train worker's fresh process for the next job (one job per process)
    return latencies


def _hammer(args: tuple[str, str, dict, float]) -> int:
    host_port, path, headers, seconds = args
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
        done += 1
    conn.close()
    return done


def requests_per_second(bind: str, path: str, headers: dict, seconds: float, clients: int) -> float:
    _hammer((bind, path, headers, 0.5))  # warm every code path once
    with ProcessPoolExecutor(clients) as pool:
        counts = pool.map(_hammer, [(bind, path, headers, seconds)] * clients)
        return sum(counts) / seconds


def run_backend(name: str, database_url: str | None, args, redis_url: str, data_dir: Path) -> dict:
    os.environ.update(REDIS_URL=redis_url, RLVR_DATA_DIR=str(data_dir / name))
    os.environ.pop("DATABASE_URL", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    env, base, token = stack.prepare(stack.free_bind())
    log = data_dir / f"{name}-stack.log"
    print(f"[{name}] starting the stack (log: {log})")
    procs = stack.start_stack(env, log)
    bare = None
    try:
        stack.wait_healthy(base, procs, log)
        latencies = submit_to_running(base, token, args.jobs)
        job_id = stack.call(base, "/jobs?limit=1", token)[1]["jobs"][0]["id"]
        bare, bare_bind = start_bare(env)
        # Rounds alternate between the two servers, both up all along, so that a busy
        # neighbour on this machine slows both alike; the medians are reported.
        status_rps, bare_rps = [], []
        for _ in range(args.rounds):
            status_rps.append(
                requests_per_second(
                    base.removeprefix("http://"),
                    f"/api/v1/jobs/{job_id}",
                    {"Authorization": f"Bearer {token}"},
                    args.seconds,
                    args.clients,
                )
            )
            bare_rps.append(requests_per_second(bare_bind, "/ping", {}, args.seconds, args.clients))
    finally:
        if bare:
            bare.terminate()
            bare.wait(30)
        stack.stop_stack(procs)
    settings = load_settings(env)
    status, baseline = statistics.median(status_rps), statistics.median(bare_rps)
    return {
        "backend": name,
        "jobs": args.jobs,
        "submit_to_running_ms": {
            "p50": round(percentile(latencies, 0.5), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "min": round(min(latencies), 1),
            "mean": round(statistics.fmean(latencies), 1),
        },
        "status_rps": round(status),
        "bare_rps": round(baseline),
        "status_vs_bare": round(status / baseline, 3),
        "rounds": {
            "status_rps": [round(r) for r in status_rps],
            "bare_rps": [round(r) for r in bare_rps],
        },
        "gunicorn": {
            "workers": settings.web_workers,
            "threads": settings.web_threads,
            "worker_class": "gthread",
        },
    }


def start_bare(env: dict) -> tuple[subprocess.Popen, str]:
    """The bare Flask app under gunicorn with the project's config file, on a free port."""
    bind = stack.free_bind()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "deploy/gunicorn.conf.py",
            "--pythonpath",
            "bench",
            "--bind",
            bind,
            "bare_app:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            _hammer((bind, "/ping", {}, 0.1))
            return server, bind
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.2)


def postgres_database() -> tuple[str, callable] | None:
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"rlvr_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no Postgres here: the SQLite figures stand alone
        print(f"skipping Postgres: {exc}")
        return None

    def drop():
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')

    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False), drop


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--jobs", type=int, default=50, help="jobs for the latency figures (default %(default)s)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=4.0,
        help="load per endpoint per round (default %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds per endpoint (default %(default)s)",
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="load client processes (default %(default)s)"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rlvr-bench-") as tmp:
        port = stack.free_bind().split(":")[1]
        broker = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                port,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(port=int(port))
            for _ in range(50):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.1)
            runs = [run_backend("sqlite", None, args, f"redis://127.0.0.1:{port}/0", Path(tmp))]
            if pg := postgres_database():
                try:
                    runs.append(
                        run_backend(
                            "postgres", pg[0], args, f"redis://127.0.0.1:{port}/1", Path(tmp)
                        )
                    )
                finally:
                    pg[1]()
        finally:
            broker.terminate()
            broker.wait(10)
    print(
        f"\n{'backend':<10}{'p50 ms':>9}{'p99 ms':>9}{'GET /jobs/<id> rps':>20}{'bare rps':>10}{'ratio':>7}"
    )
    for r in runs:
        ms = r["submit_to_running_ms"]
        print(
            f"{r['backend']:<10}{ms['p50']:>9}{ms['p99']:>9}{r['status_rps']:>20}{r['bare_rps']:>10}"
            f"{r['status_vs_bare']:>7}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_average_before": [round(x, 2) for x in load_before],
                },
                "load": {
                    "clients": args.clients,
                    "seconds_per_round": args.seconds,
                    "rounds": args.rounds,
                },
                "targets": {"submit_to_running_p50_ms": 50, "status_vs_bare": 0.5},
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`, `make up` and `make down`: the whole stack on one machine, from Procfile.

    python deploy/stack.py demo [--plan deploy/demo/demo.yaml]   start, SFT -> eval -> RL -> eval, stop
    python deploy/stack.py up                 start in the background, print the URL and a token
    python deploy/stack.py down               stop what `up` started

The stack is the Procfile's web (gunicorn), train, verify and coordinate workers and beat, run by
honcho, with the settings from the environment (SQLite under .data/ unless DATABASE_URL
names a Postgres). The Makefile starts a local Redis first when none answers at REDIS_URL.

The demo builds the tiny local model if needed, then runs the plan in deploy/demo/ through
the public JSON API only: for each task an SFT job, an eval of its model (the baseline), an
RL train job from it, and an eval of the RL model, each followed to its end with a progress
bar; it prints the table "Metric / Baseline / RLVR / Improvement" and each job's page.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from tqdm import tqdm

from rlvr.tiny import default_tiny_model
from service.db import Database, accounts
from service.db.migrate import upgrade
from service.settings import PROJECT_ROOT, load_settings

DEMO_PLAN = Path(__file__).resolve().parent / "demo" / "demo.yaml"
# The metric a job's progress bar shows beside its step count.
SHOWN = {"sft": "loss", "train": "pass_rate"}


def call(
    base: str, path: str, token: str | None = None, body: dict | None = None
) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + "/api/v1" + path, data=data, headers={"Content-Type": "application/json"}
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def start_stack(env: dict, log: Path) -> subprocess.Popen:
    honcho = Path(sys.executable).with_name("honcho")
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(honcho), "start", "-f", "Procfile", "-d", str(PROJECT_ROOT)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_healthy(base: str, stack: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Until the API answers and a train and a verify worker are live."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.poll() is not None:
            sys.exit(f"the stack exited; see {log}")
        try:
            status, health = call(base, "/health")
            if status == 200 and health["workers"]["train"] and health["workers"]["verify"]:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    sys.exit(f"the stack was not healthy within {timeout:.0f}s; see {log}")


def stop_stack(stack: subprocess.Popen) -> None:
    if stack.poll() is not None:
        return
    os.killpg(stack.pid, signal.SIGTERM)  # honcho passes it on; Celery finishes its tasks
    try:
        stack.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(stack.pid, signal.SIGKILL)
        stack.wait()


def prepare(bind: str | None) -> tuple[dict, str, str]:
    """Migrates the database, makes the `demo` user; returns the stack's env, base URL and a token."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
    }
    if bind:
        env["RLVR_BIND"] = bind
    settings = load_settings(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    with db.begin() as s:
        token = accounts.issue_token(s, accounts.ensure_user(s, "demo").id, "stack.py")
    db.dispose()
    return env, f"http://{settings.web_bind}", token


def free_bind() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def port_free(bind: str) -> bool:
    host, port = bind.rsplit(":", 1)
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) != 0


def submit(base: str, token: str, spec: dict) -> dict:
    status, job = call(base, "/jobs", token, {"kind": spec["kind"], "spec": spec})
    if status != 201:
        sys.exit(f"submit failed: {status} {job}")
    return job


def follow(base: str, token: str, job: dict, label: str) -> dict:
    """Polls the job until it has ended, with a progress bar over its steps; returns it."""
    shown = SHOWN.get(job["kind"])
    with tqdm(total=job["progress"]["total"], desc=label, unit="step", dynamic_ncols=True) as bar:
        while job["finished_at"] is None:
            time.sleep(1)
            job = call(base, f"/jobs/{job['id']}", token)[1]
            bar.update(job["progress"]["done"] - bar.n)
            postfix = {"status": job["status"]}
            if shown and job["progress"]["done"]:
                series = call(base, f"/jobs/{job['id']}/metrics?names={shown}", token)[1][
                    "series"
                ].get(shown)
                postfix[shown] = f"{series[-1][1]:.3f}" if series else "-"
            bar.set_postfix(postfix)
    return job


class Demo:
    """The plan's jobs, one after the other, each chained to the one it starts from."""

    def __init__(self, base: str, token: str, plan: Path):
        self.base, self.token, self.plan = base, token, plan
        self.tasks = yaml.safe_load(plan.read_text())["tasks"]
        self.pages: list[tuple[str, int]] = []
        self.current: dict | None = None

    def spec(self, name: str, model: str | None = None) -> dict:
        spec = yaml.safe_load((self.plan.parent / name).read_text())
        if model:
            spec["model"]["name"] = model
        return spec

    def run(self, label: str, spec: dict) -> dict:
        self.current = job = submit(self.base, self.token, spec)
        job = follow(self.base, self.token, job, f"{label} (job {job['id']})")
        self.current = None
        self.pages.append((label, job["id"]))
        if job["status"] != "succeeded":
            sys.exit(
                f"{label}: job {job['id']} {job['status']}: {job['error']}\n"
                f"see {self.base}/jobs/{job['id']}"
            )
        return job

    def task_rows(self, task: dict, step: int) -> list[tuple[str, float, float]]:
        name, total = task["name"], 4 * len(self.tasks)
        sft = self.run(f"[{step + 1}/{total}] {name} SFT", self.spec(task["sft"]))
        baseline = self.run(
            f"[{step + 2}/{total}] {name} eval, baseline",
            self.spec(task["eval"], f"job:{sft['id']}"),
        )
        trained = self.run(
            f"[{step + 3}/{total}] {name} RL", self.spec(task["train"], f"job:{sft['id']}")
        )
        after = self.run(
            f"[{step + 4}/{total}] {name} eval, RLVR",
            self.spec(task["eval"], f"job:{trained['id']}"),
        )
        return [
            (label, baseline["result"][key], after["result"][key])
            for label, key in task["metrics"].items()
        ]

    def table(self) -> list[tuple[str, float, float]]:
        rows = []
        for index, task in enumerate(self.tasks):
            rows += self.task_rows(task, 4 * index)
        return rows

    def cancel_current(self) -> None:
        if self.current:
            call(self.base, f"/jobs/{self.current['id']}/cancel", self.token, {})


def print_table(rows: list[tuple[str, float, float]]) -> None:
    width = max(len("Metric"), *(len(label) for label, _, _ in rows))
    print(f"\n{'Metric':<{width}}  {'Baseline':>8}  {'RLVR':>8}  {'Improvement':>11}")
    for label, before, after in rows:
        print(
            f"{label:<{width}}  {before:>8.1%}  {after:>8.1%}  {100 * (after - before):>+7.1f} pts"
        )


def demo(args) -> int:
    settings = load_settings()
    bind = os.environ.get("RLVR_BIND") or (
        settings.web_bind if port_free(settings.web_bind) else free_bind()
    )
    env, base, token = prepare(bind)
    env.setdefault(
        "OMP_NUM_THREADS", "1"
    )  # a tiny model on a small shared CPU: threads only contend
    log = load_settings(env).data_dir / "demo-stack.log"
    print(
        f"tiny model (`model: tiny` in the specs): {default_tiny_model()}"
    )  # built here once, if missing
    print(f"starting web, train, verify and beat (log: {log})")
    stack = start_stack(env, log)
    plan = Demo(base, token, args.plan)
    try:
        wait_healthy(base, stack, log)
        print(f"jobs, live: {base}/jobs  (sign in with token {token})")
        started = time.monotonic()
        rows = plan.table()
        print_table(rows)
        print(
            f"\n{len(plan.pages)} jobs in {(time.monotonic() - started) / 60:.1f} min; their pages:"
        )
        for label, job_id in plan.pages:
            print(f"  {label.split('] ', 1)[1]:<26} {base}/jobs/{job_id}")
    except KeyboardInterrupt:
        plan.cancel_current()
        return 130
    finally:
        print("stopping the stack")
        stop_stack(stack)
    if base == f"http://{settings.web_bind}":
        print("`make up` serves these pages again.")
    return 0


def up(_args) -> int:
    env, base, token = prepare(None)
    settings = load_settings(env)
    pid_file = settings.data_dir / "stack.pid"
    if pid_file.exists() and _alive(int(pid_file.read_text())):
        sys.exit(f"already up (pid {pid_file.read_text()}); `make down` stops it")
    log = settings.data_dir / "stack.log"
    stack = start_stack(env, log)
    pid_file.write_text(str(stack.pid))
    wait_healthy(base, stack, log)
    print(f"up: {base}/jobs  (API {base}/api/v1, token {token})\nlog: {log}\nstop with: make down")
    return 0


def down(_args) -> int:
    pid_file = load_settings().data_dir / "stack.pid"
    if not pid_file.exists() or not _alive(pid := int(pid_file.read_text())):
        print("not running")
        return 0
    os.killpg(pid, signal.SIGTERM)
    while _alive(pid):
        time.sleep(0.2)
    pid_file.unlink()
    print("stopped")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("demo")
    run.add_argument(
        "--plan",
        type=Path,
        default=DEMO_PLAN,
        help="the demo's tasks and specs (default: %(default)s)",
    )
    sub.add_parser("up")
    sub.add_parser("down")
    args = parser.parse_args()
    return {"demo": demo, "up": up, "down": down}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`, `make up` and `make down`: the whole stack on one machine, from deploy/Procfile.

    python deploy/stack.py demo [--limit N]   start, run one verify job through the API, stop
    python deploy/stack.py up                 start in the background, print the URL and a token
    python deploy/stack.py down               stop what `up` started

The stack is the Procfile's web (gunicorn), train worker, verify worker and beat, run by
honcho, with the settings from the environment (SQLite under .data/ unless DATABASE_URL
names a Postgres). The Makefile starts a local Redis first when none answers at REDIS_URL.
Until training jobs exist, the demo job verifies the MBPP reference solutions.
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

from tqdm import tqdm

from rlvr.db import Database, accounts, load_settings
from rlvr.db.migrate import upgrade
from rlvr.db.settings import PROJECT_ROOT
from sandbox.datasets import read_requests

MBPP = PROJECT_ROOT.parent / "shared/datasets/mbpp/mbpp.jsonl"


def call(base: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(base + "/api/v1" + path, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
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
        return subprocess.Popen([str(honcho), "start", "-f", "deploy/Procfile", "-d", str(PROJECT_ROOT)],
                                cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


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
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}
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


def demo(args) -> int:
    env, base, token = prepare(os.environ.get("RLVR_BIND") or free_bind())
    log = load_settings(env).data_dir / "demo-stack.log"
    requests = [r.model_dump(mode="json", exclude_none=True) for r in read_requests(str(args.mbpp))][: args.limit]
    print(f"starting web, train, verify and beat (log: {log})")
    stack = start_stack(env, log)
    try:
        wait_healthy(base, stack, log)
        status, job = call(base, "/jobs", token, {"kind": "verify", "spec": {"requests": requests}})
        if status != 201:
            sys.exit(f"submit failed: {status} {job}")
        print(f"job {job['id']}: verifying {len(requests)} MBPP reference solutions")
        with tqdm(total=len(requests), unit="prog") as bar:
            while job["status"] not in ("succeeded", "failed", "cancelled", "crashed"):
                time.sleep(0.5)
                job = call(base, f"/jobs/{job['id']}", token)[1]
                bar.update(job["progress"]["done"] - bar.n)
        print(json.dumps({k: job[k] for k in ("id", "status", "attempt", "error", "result")}, indent=2))
        print(f"job page: {base}/jobs/{job['id']}   (sign in with token {token})")
    finally:
        print("stopping the stack")
        stop_stack(stack)
    return 0 if job["status"] == "succeeded" else 1


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("demo")
    run.add_argument("--mbpp", type=Path, default=MBPP, help="MBPP JSONL file (default: %(default)s)")
    run.add_argument("--limit", type=int, default=None, help="verify only the first N problems")
    sub.add_parser("up")
    sub.add_parser("down")
    args = parser.parse_args()
    return {"demo": demo, "up": up, "down": down}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

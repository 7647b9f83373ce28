"""The train worker's watchdog: a job process that stops heart-beating, or outlives its cancel,
is killed by its worker, the job ends saying why, and the worker takes the next job.

A real train worker from Procfile runs real jobs on the tiny model; the faults are real too:
SIGSTOP freezes every thread of the job's process, as a step that holds the GIL did (a
backtracking regex, issue 14), and an eval job never checks its cancel flag. No beat runs, so
the reaper cannot step in: what ends the jobs here is the worker alone.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from support import TINY, train_spec, wait_for, wait_until

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def submit(api, kind: str, spec: dict) -> int:
    response = api.post("/jobs", json={"kind": kind, "spec": spec})
    assert response.status_code == 201, response.json
    return response.json["id"]


def job_process(worker, job_id: int) -> int:
    """The pid of the job's process, as its worker logs it."""
    pattern = rf"job {job_id} \(attempt 1\) runs in process (\d+)"
    found = wait_until(lambda: re.search(pattern, worker.output()), 60, f"job {job_id}'s process")
    return int(found.group(1))


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def test_a_job_that_stops_heart_beating_is_killed_and_the_worker_goes_on(api, procfile, tiny_model):
    worker = procfile("train", RLVR_KILL_GRACE_SECONDS="2", RLVR_STALE_AFTER_SECONDS="60")
    wedged = submit(api, "train", train_spec(TINY, 500))
    following = submit(api, "train", train_spec(TINY, 2))
    pid = job_process(worker, wedged)
    wait_until(
        lambda: api.get(f"/jobs/{wedged}").json["progress"]["done"] >= 1, 120, "a first step"
    )
    os.kill(pid, signal.SIGSTOP)

    job = wait_for(api, wedged, "failed", "cancelled", "succeeded", timeout=30)
    assert job["status"] == "failed", job
    assert "sent no heartbeat for 2s" in job["error"], job["error"]
    wait_until(lambda: gone(pid), 10, f"process {pid} to be gone")
    assert wait_for(api, following, "succeeded", "failed", timeout=180)["status"] == "succeeded"


def test_a_job_that_ignores_its_cancel_is_killed_and_the_worker_goes_on(api, procfile, tiny_model):
    worker = procfile("train", RLVR_CANCEL_GRACE_SECONDS="1")
    # An eval never checks its cancel flag; this one generates for minutes.
    long_eval = {
        "model": {"name": TINY},
        "task": {"name": "arithmetic", "max_digits": 3, "train_size": 8, "test_size": 1000},
        "num_samples": 8,
        "sampling": {"max_new_tokens": 256},
    }
    stubborn = submit(api, "eval", long_eval)
    following = submit(api, "train", train_spec(TINY, 2))
    pid = job_process(worker, stubborn)
    wait_for(api, stubborn, "running", timeout=60)
    assert api.post(f"/jobs/{stubborn}/cancel").status_code == 202

    job = wait_for(api, stubborn, "cancelled", "failed", "succeeded", timeout=30)
    assert job["status"] == "cancelled", job
    assert "still running 1s after its cancel" in job["error"], job["error"]
    wait_until(lambda: gone(pid), 10, f"process {pid} to be gone")
    assert wait_for(api, following, "succeeded", "failed", timeout=180)["status"] == "succeeded"


def test_a_kill_takes_the_processes_the_job_started_with_it(database_url):
    """A job process that started others (as a vLLM engine starts its workers): the watchdog's
    kill leaves none of them running."""
    import subprocess
    import sys

    from worker import runners

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the job's process: a child, and a grandchild below it
        os.close(read)
        inner = "import subprocess, sys, time; p = subprocess.Popen(['sleep', '600']); "
        inner += "print(p.pid, flush=True); time.sleep(600)"
        child = subprocess.Popen([sys.executable, "-c", inner], stdout=subprocess.PIPE, text=True)
        grandchild = int(child.stdout.readline())
        os.write(write, f"{child.pid} {grandchild}".encode())
        time.sleep(600)
        os._exit(0)
    os.close(write)
    child, grandchild = map(int, os.read(read, 100).split())
    assert not any(ended(p) for p in (pid, child, grandchild))
    runners._kill(pid, 0, "test")
    os.waitpid(pid, 0)
    wait_until(lambda: ended(child) and ended(grandchild), 10, "the job's processes to end")


def ended(pid: int) -> bool:
    """Gone, or a zombie that nothing has reaped yet (orphans go to PID 1, which in a container
    may not reap): either way it runs no more."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"

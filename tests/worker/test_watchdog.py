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

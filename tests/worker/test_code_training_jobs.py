"""Train jobs with code rewards on the verify pool: real train and verify worker processes,
nsjail, Redis and Postgres, the tiny model.

A train job sends each step's programs to the `verify` queue as `verify_requests` tasks of up
to 16; every verdict names the worker that ran it (`verified_by`, kept in each experience's
code details), so a test can tell who did the work. Postgres only: each job loads torch in a
fresh process. The verify *job* kind's worker-loss test is in test_lifecycle.py.
"""

from __future__ import annotations

import json
import os
import re
import signal

import pytest
import redis
from sqlalchemy import select
from support import GROUP, TINY, rows_per_step, train_spec, wait_for, wait_until

from service.db.models import ExperienceRow

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

RECEIVED = re.compile(r"Task worker\.tasks\.verify_requests\[([0-9a-f-]+)\] received")


def code_spec(model: str, steps: int, prompts: int, **fields) -> dict:
    """`train_spec` on programs from examples: each step judges prompts x GROUP programs."""
    spec = train_spec(model, steps)
    spec.update(
        task={"name": "program_synthesis", "max_depth": 1, "train_size": 64, "test_size": 4},
        rewards=[{"name": "code_tests"}],
        sampling={"max_new_tokens": 8},
        **fields,
    )
    spec["optim"]["prompts_per_step"] = prompts
    return spec


def run_job(api, spec: dict) -> int:
    response = api.post("/jobs", json={"kind": "train", "spec": spec})
    assert response.status_code == 201, response.json
    return response.json["id"]


def verified_rows(db, job_id: int) -> list[tuple[float | None, str | None]]:
    """(reward, verifying worker's name before the @) of each of the job's experiences."""
    with db.read() as session:
        rows = session.execute(
            select(ExperienceRow.reward, ExperienceRow.extra).where(ExperienceRow.job_id == job_id)
        ).all()
    return [(reward, (extra["code"]["verified_by"] or "").split("@")[0]) for reward, extra in rows]


def test_two_verify_workers_share_a_train_jobs_programs(api, client, procfile, db, tiny_model):
    procfile("train")
    for name in ("verify-a", "verify-b"):  # one batch at a time each, so neither can take all
        procfile("verify", args=f"-n {name}@%h", VERIFY_CONCURRENCY="1")
    steps, prompts = 3, 10  # 40 programs a step: three batches sent at once
    job_id = run_job(api, code_spec(TINY, steps, prompts, overlap_verification=True))
    job = wait_for(api, job_id, "succeeded", "failed", timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert rows_per_step(db, job_id, ExperienceRow) == dict.fromkeys(
        range(1, steps + 1), prompts * GROUP
    )
    rows = verified_rows(db, job_id)
    assert all(reward is not None for reward, _ in rows)
    assert {worker for _, worker in rows} == {"verify-a", "verify-b"}
    series = api.get(f"/jobs/{job_id}/metrics?names=verify_time,verify_wait_time,policy_lag").json[
        "series"
    ]
    assert [lag for _, lag in series["policy_lag"]] == [0, 1, 1] and len(
        series["verify_wait_time"]
    ) == steps
    # Prometheus counts the programs judged for training, by verdict, and each step's duration.
    scraped = client.get("/metrics").get_data(as_text=True)
    counted = sum(
        float(value)
        for value in re.findall(
            r'^rlvr_verified_programs_total\{queue="verify",source="rewards",verdict="\w+"\} (\S+)$',
            scraped,
            re.M,
        )
    )
    assert counted >= steps * prompts * GROUP, scraped
    assert (
        f'rlvr_train_step_seconds_count{{kind="train"}} {float(steps)}' in scraped.splitlines()
    ), scraped


def _freeze_mid_batch(workers: dict, results: redis.Redis) -> tuple[str, str] | None:
    """Stops (SIGSTOP) a verify worker holding a batch whose verdicts it has not stored yet, and
    returns its name and the batch's task id; None when no worker is caught mid-batch."""
    for name, worker in workers.items():
        received = RECEIVED.findall(worker.output())
        if not received or results.exists(f"celery-task-meta-{received[-1]}"):
            continue
        os.killpg(worker.popen.pid, signal.SIGSTOP)
        if not results.exists(f"celery-task-meta-{received[-1]}"):
            return name, received[-1]
        os.killpg(worker.popen.pid, signal.SIGCONT)  # it finished in between: try the next batch
    return None


def test_verify_worker_killed_mid_batch_of_a_train_job(api, procfile, db, tiny_model, redis_server):
    # Short verify clocks: the job asks again for a batch that has not come back within the hard
    # time limit, and Redis hands the dead worker's unacked message to the other worker once the
    # visibility timeout has passed.
    clocks = {
        "VERIFY_CONCURRENCY": "1",
        "RLVR_VERIFY_HARD_SECONDS": "10",
        "RLVR_VERIFY_SOFT_SECONDS": "8",
        "RLVR_VISIBILITY_TIMEOUT": "12",
    }
    procfile("train", **clocks)
    workers = {
        name: procfile("verify", args=f"-n {name}@%h", **clocks)
        for name in ("verify-a", "verify-b")
    }
    steps, prompts = 8, 4  # one batch of 16 programs a step
    job_id = run_job(api, code_spec(TINY, steps, prompts))
    results = redis.Redis.from_url(redis_server.url)
    victim, task_id = wait_until(
        lambda: _freeze_mid_batch(workers, results), 240, "a verify worker mid-batch", every=0.02
    )
    workers[victim].kill()  # SIGKILL to the worker and its pool process alike
    survivor = next(name for name in workers if name != victim)

    job = wait_for(api, job_id, "succeeded", "failed", timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert rows_per_step(db, job_id, ExperienceRow) == dict.fromkeys(
        range(1, steps + 1), prompts * GROUP
    )
    rows = verified_rows(db, job_id)
    assert all(reward is not None for reward, _ in rows), "a batch was left unjudged"
    assert survivor in {worker for _, worker in rows}
    # The killed batch's own message was redelivered and judged to the end by the survivor.
    stored = wait_until(
        lambda: results.get(f"celery-task-meta-{task_id}"), 60, "the killed batch to be redelivered"
    )
    meta = json.loads(stored)
    assert meta["status"] == "SUCCESS" and {
        v["verified_by"].split("@")[0] for v in meta["result"]
    } == {survivor}

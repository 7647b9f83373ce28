"""Jobs through the whole stack: the API in-process, real Celery worker processes started
from Procfile, the sandbox under nsjail, Redis and the database."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from support import TINY, timeline, train_spec, wait_for, wait_until

from service.db import JobEvent, VerdictRow

CORRECT = ("def add(a, b):\n    return a + b", ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"])
WRONG = ("def add(a, b):\n    return abs(a) + b", CORRECT[1])  # passes one of two
RAISES = ("def add(a, b):\n    raise ValueError('no')", CORRECT[1])


def request(program: str, tests: list[str], **limits) -> dict:
    return {"program": program, "tests": {"kind": "function", "tests": tests}, "limits": limits}


def slow(seconds: float) -> dict:
    """A correct program that takes `seconds` to import."""
    return request(
        f"import time\ntime.sleep({seconds})\n" + CORRECT[0], CORRECT[1], wall_seconds=30
    )


def submit(api, requests: list[dict]) -> int:
    response = api.post("/jobs", json={"kind": "verify", "spec": {"requests": requests}})
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_verify_job_runs_to_success(api, procfile):
    procfile("coordinate")
    procfile("verify")
    job_id = submit(api, [request(*CORRECT)] * 4 + [request(*WRONG), request(*RAISES)])
    job = wait_for(api, job_id, "succeeded", "failed")
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == {"done": 6, "total": 6, "fraction": 1.0}
    assert job["result"]["programs"] == 6 and job["result"]["all_passed"] == 4
    # The two failing programs fail as `ok` runs; a machine under heavy load may turn one into
    # a `timeout`, which is the sandbox's call, so only the total is pinned here.
    assert sum(job["result"]["by_status"].values()) == 6, job["result"]
    assert timeline(api, job_id) == ["queued", "running", "succeeded"]
    assert api.get("/stats").json["verified_programs"] >= 6
    page = api.get(f"/jobs/{job_id}/verdicts?limit=4&offset=2").json
    assert page["total"] == 6 and [v["index"] for v in page["verdicts"]] == [2, 3, 4, 5]
    assert [v["verdict"]["passed"] for v in page["verdicts"]][:2] == [2, 2]
    assert (
        page["verdicts"][2]["verdict"]["tests"][1]["outcome"] == "wrong"
    )  # WRONG fails its second test


def test_cancel_a_running_job(api, procfile):
    procfile("coordinate")
    procfile("verify", VERIFY_CONCURRENCY="1")
    job_id = submit(api, [slow(1.0)] * 12)
    wait_for(api, job_id, "running")
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 202
    job = wait_for(api, job_id, "cancelled")
    assert job["progress"]["done"] < 12
    assert timeline(api, job_id) == ["queued", "running", "cancelling", "cancelled"]


def verify_call(api, requests: list[dict], timeout: float = 60) -> dict:
    """`POST /verify`, then its ticket polled until it is no longer pending."""
    response = api.post("/verify", json={"requests": requests})
    assert response.status_code == 202 and response.json["status"] == "pending", response.json
    ticket = response.json["id"]
    assert response.headers["Location"].endswith(f"/api/v1/verify/{ticket}")

    def judged():
        found = api.get(f"/verify/{ticket}").json
        return found if found["status"] != "pending" else None

    return wait_until(judged, timeout, f"verify call {ticket}", every=0.2)


def test_sync_verify_endpoint(api, procfile, stack_settings):
    procfile("verify")
    answer = verify_call(api, [request(*CORRECT), request(*WRONG)])
    assert answer["status"] == "done", answer
    verdicts = answer["verdicts"]
    assert [(v["status"], v["passed"], v["total"]) for v in verdicts] == [
        ("ok", 2, 2),
        ("ok", 1, 2),
    ], verdicts
    too_many = [request(*CORRECT)] * (stack_settings.sync_verify_max_programs + 1)
    assert api.post("/verify", json={"requests": too_many}).status_code == 413
    assert api.post("/verify", json={"requests": [{"program": "x"}]}).status_code == 400


@pytest.mark.parametrize(
    "database_url", ["sqlite"], indirect=True
)  # a queue property; one backend will do
def test_sync_verify_goes_ahead_of_a_big_jobs_batches(api, procfile, redis_server):
    procfile("coordinate")
    procfile("verify", VERIFY_CONCURRENCY="1")
    job_id = submit(api, [slow(0.5)] * 24)  # six batches of four, one at a time
    wait_until(
        lambda: api.get("/stats").json["queues"]["verify"] >= 3, 30, "batches waiting in the queue"
    )
    answer = verify_call(api, [request(*CORRECT)])
    assert answer["status"] == "done" and answer["verdicts"][0]["passed"] == 2
    assert api.get("/stats").json["queues"]["verify"] >= 1, (
        "the sync request waited for the whole job"
    )
    assert wait_for(api, job_id, "succeeded", "failed")["status"] == "succeeded"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_verify_worker_killed_mid_job_loses_and_duplicates_nothing(api, procfile, db):
    # A visibility timeout above the hard limit but short, so Redis hands the killed
    # worker's unacked batch to the new worker within seconds.
    clocks = {
        "VERIFY_CONCURRENCY": "1",
        "RLVR_VERIFY_HARD_SECONDS": "10",
        "RLVR_VERIFY_SOFT_SECONDS": "8",
        "RLVR_VISIBILITY_TIMEOUT": "12",
    }
    procfile("coordinate")
    verify = procfile("verify", **clocks)
    job_id = submit(api, [slow(0.4)] * 16)
    wait_until(
        lambda: api.get(f"/jobs/{job_id}").json["progress"]["done"] >= 4, 60, "a first batch"
    )
    verify.kill()
    assert api.get(f"/jobs/{job_id}").json["progress"]["done"] < 16
    procfile("verify", **clocks)
    job = wait_for(api, job_id, "succeeded", "failed", timeout=120)
    assert job["status"] == "succeeded" and job["result"]["all_passed"] == 16, job["result"]
    with db.read() as s:
        indices = s.scalars(select(VerdictRow.index).where(VerdictRow.job_id == job_id)).all()
    assert sorted(indices) == list(range(16))


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_coordinator_killed_is_reaped_and_requeued(api, procfile, db):
    procfile("verify")
    procfile("beat")
    coordinator = procfile("coordinate")
    job_id = submit(api, [slow(0.5)] * 8)
    wait_for(api, job_id, "running")
    coordinator.kill()
    wait_until(lambda: "crashed" in timeline(api, job_id), 30, "the reaper to mark the job crashed")
    procfile("coordinate")
    job = wait_for(api, job_id, "succeeded", "failed", timeout=120)
    assert job["status"] == "succeeded" and job["attempt"] == 2
    assert timeline(api, job_id) == [
        "queued",
        "running",
        "crashed",
        "queued",
        "running",
        "succeeded",
    ]
    with db.read() as s:
        messages = s.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id)).all()
    assert any(m and m.startswith("requeued for attempt 2") for m in messages)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_redis_restarted_while_jobs_are_queued_loses_nothing(api, procfile, redis_server):
    job_ids = [submit(api, [request(*CORRECT)] * 2) for _ in range(3)]
    redis_server.restart()  # no persistence: every message and marker is gone
    procfile("verify")
    procfile("coordinate")
    procfile("beat")
    for job_id in job_ids:
        assert wait_for(api, job_id, "succeeded", "failed")["status"] == "succeeded"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_verify_job_finishes_while_the_only_train_worker_is_busy(api, procfile, tiny_model):
    procfile("train")
    procfile("verify")
    procfile("coordinate")
    long_job = submit_train(api, train_spec(TINY, steps=10_000))
    wait_for(api, long_job, "running")
    job_id = submit(api, [request(*CORRECT), request(*WRONG)])
    job = wait_for(api, job_id, "succeeded", "failed", timeout=60)
    assert job["status"] == "succeeded" and job["result"]["all_passed"] == 1, job
    claimed_by = [
        e["message"]
        for e in api.get(f"/jobs/{job_id}/events").json["events"]
        if e["status"] == "running"
    ]
    assert claimed_by[0].startswith("claimed by coordinate@"), claimed_by
    assert api.get(f"/jobs/{long_job}").json["status"] == "running", (
        "the train job should still hold its worker"
    )
    api.post(f"/jobs/{long_job}/cancel")
    assert wait_for(api, long_job, "cancelled")["status"] == "cancelled"


def submit_train(api, spec: dict) -> int:
    response = api.post("/jobs", json={"kind": "train", "spec": spec})
    assert response.status_code == 201, response.json
    return response.json["id"]

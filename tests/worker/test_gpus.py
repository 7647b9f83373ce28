"""One GPU per job: the pool's GPUs at start-up, the job process's own CUDA_VISIBLE_DEVICES,
and a real train worker with two pool processes whose jobs report the GPU they saw."""

from __future__ import annotations

import os

import pytest
from support import TINY, train_spec, wait_for, wait_until

from service.db import Job, jobs
from service.queues import make_services
from worker import gpus, runners


@pytest.fixture
def services(stack_settings):
    svc = make_services(stack_settings)
    yield svc
    svc.db.dispose()


@pytest.mark.parametrize(
    ("owned", "concurrency", "line"),
    [
        ([0, 1], 2, "owns GPUs 0,1: pool process 1 -> GPU 0, 2 -> GPU 1"),
        ([2, 5, 6], 2, "owns GPUs 2,5,6: pool process 1 -> GPU 2, 2 -> GPU 5"),
        (None, 4, "owns no GPU list (RLVR_GPUS unset): jobs see every GPU this worker sees"),
    ],
)
def test_the_start_up_line_says_which_process_takes_which_gpu(
    owned, concurrency, line, monkeypatch
):
    monkeypatch.setattr(gpus, "_owned", None)
    monkeypatch.setattr(gpus, "_plan", None)
    assert gpus.take(owned, concurrency) == line == gpus.plan()
    assert gpus.owned() == owned


def test_a_pool_larger_than_its_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(gpus, "_owned", None)
    monkeypatch.setattr(gpus, "_plan", None)
    with pytest.raises(
        gpus.GpuPoolError, match=r"names 1 GPU\(s\) \(3\) but the pool has 2 processes"
    ):
        gpus.take([3], 2)
    assert gpus.owned() is None


def test_each_pool_process_takes_the_gpu_at_its_index(monkeypatch):
    monkeypatch.setattr(gpus, "_owned", [4, 7])
    monkeypatch.setattr(gpus, "current_process_index", lambda base: 1)
    assert gpus.assign() == 7 and gpus.assigned() == 7
    monkeypatch.setattr(gpus, "current_process_index", lambda base: None)  # a solo pool's process
    assert gpus.assign() == 4


def _report_environment(services, job: Job, cancelled) -> tuple[str, dict]:
    return "succeeded", {"seen": os.environ.get("CUDA_VISIBLE_DEVICES")}


def test_the_job_process_sees_only_its_gpu(services, make_user, monkeypatch):
    """The job's own process writes what it saw into its result; the pool process is untouched."""
    monkeypatch.setitem(runners.RUNNERS, "verify", _report_environment)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    user_id, _ = make_user()
    results = {}
    for gpu in (3, None):
        with services.db.begin() as s:
            job, _ = jobs.submit(
                s, user_id=user_id, kind="verify", spec={"requests": []}, total=0, max_attempts=1
            )
        assert runners.run_job_in_fresh_process(services, job.id, "test", gpu=gpu) == 0
        with services.db.read() as s:
            results[gpu] = s.get(Job, job.id).result
    assert results[3] == {"seen": "3", "cuda_visible_devices": "3"}
    assert results[None] == {"seen": None}  # no GPU given, nothing set, nothing reported
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_two_process_train_worker_runs_each_job_on_its_own_gpu(api, client, procfile, tiny_model):
    worker = procfile("train", TRAIN_CONCURRENCY="2", RLVR_GPUS="4,7")
    wait_until(
        lambda: "owns GPUs 4,7: pool process 1 -> GPU 4, 2 -> GPU 7" in worker.output(),
        30,
        "the worker to say which GPUs it owns",
    )
    wait_until(
        lambda: all(
            f"takes GPU {g}: its jobs run with CUDA_VISIBLE_DEVICES={g}" in worker.output()
            for g in (4, 7)
        ),
        30,
        "both pool processes to say which GPU they took",
    )
    health = client.get("/api/v1/health").json
    assert health["workers"]["train"] == 1 and list(health["gpus"].values()) == [[4, 7]]

    # Submitted together, the second job arrives while the first still loads its model, so
    # the two run at once, one in each pool process.
    job = {"kind": "train", "spec": train_spec(TINY, steps=2)}
    ids = [api.post("/jobs", json=job).json["id"] for _ in range(2)]
    finished = [wait_for(api, job_id, "succeeded", "failed", timeout=240) for job_id in ids]
    errors = [job["error"] for job in finished]
    assert [job["status"] for job in finished] == ["succeeded"] * 2, errors
    assert sorted(job["result"]["cuda_visible_devices"] for job in finished) == ["4", "7"]

"""Fair claiming on a real train worker: a user who queued first and most does not hold the
queue; the next user's job runs as soon as a slot frees, and every job runs once."""

from __future__ import annotations

import pytest
from support import TINY, train_spec, wait_for

from service.db import Job


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_later_user_runs_before_an_earlier_users_backlog(api, as_user, procfile, db, tiny_model):
    procfile("beat")  # the reaper runs: the marker passed on must keep it from re-sending
    flooder, other = api, as_user()
    flood = [
        flooder.post("/jobs", json={"kind": "train", "spec": train_spec(TINY, 1)}).json["id"]
        for _ in range(3)
    ]
    late = other.post("/jobs", json={"kind": "train", "spec": train_spec(TINY, 1)}).json["id"]
    procfile("train")  # one worker, started once everything is queued: FIFO would run `late` last
    for job_id in flood:
        assert (
            wait_for(flooder, job_id, "succeeded", "failed", timeout=240)["status"] == "succeeded"
        )
    assert wait_for(other, late, "succeeded", "failed", timeout=60)["status"] == "succeeded"

    with db.read() as s:
        started = sorted((s.get(Job, job_id).started_at, job_id) for job_id in [*flood, late])
        attempts = {job_id: s.get(Job, job_id).attempt for job_id in [*flood, late]}
    order = [job_id for _, job_id in started]
    assert order == [flood[0], late, flood[1], flood[2]], order
    assert set(attempts.values()) == {1}, attempts  # each ran once

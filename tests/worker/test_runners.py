"""The verify runners in-process, against the test's database and Redis (no Celery worker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import exc

from service import queues
from service.db import Job, jobs, verdicts
from service.queues import make_services
from worker import runners

PROGRAMS = [
    {"program": f"x = {i}", "tests": {"kind": "function", "tests": [f"assert x == {i % 2}"]}}
    for i in range(3)
]


@pytest.fixture
def services(stack_settings):
    svc = make_services(stack_settings)
    yield svc
    svc.db.dispose()


@pytest.fixture
def running_job(services, make_user):
    user_id, _ = make_user()
    with services.db.begin() as s:
        job, _ = jobs.submit(
            s, user_id=user_id, kind="verify", spec={"requests": PROGRAMS}, total=3, max_attempts=1
        )
    with services.db.begin() as s:
        jobs.claim(s, job.id, "test")
    return job.id


def test_a_batch_stores_one_verdict_per_program_and_skips_judged_ones(services, running_job):
    runners.verify_batch(services, running_job, range(2))
    runners.verify_batch(services, running_job, range(3))  # a redelivery that overlaps
    with services.db.read() as s:
        assert verdicts.count(s, running_job) == 3
        assert verdicts.summary(s, running_job)["all_passed"] == 2  # x = 2 fails x == 0


def test_a_batch_over_its_redelivery_cap_gives_up_with_sandbox_errors(services, running_job):
    services.redis.set(queues.batch_marker(running_job, 0), 1)
    runners.verify_batch(services, running_job, range(3), give_up="gave up after 3 deliveries")
    with services.db.read() as s:
        summary = verdicts.summary(s, running_job)
    assert summary["by_status"] == {"sandbox_error": 3} and summary["pass_rate"] is None
    assert not services.redis.exists(queues.batch_marker(running_job, 0))


def test_a_batch_of_a_finished_job_does_nothing(services, running_job):
    with services.db.begin() as s:
        jobs.cancel(s, running_job)
        jobs.finish(s, running_job, "cancelled")
    runners.verify_batch(services, running_job, range(3))
    with services.db.read() as s:
        assert verdicts.count(s, running_job) == 0


@pytest.fixture
def queued_job(services, make_user):
    """A verify job as `queues.send_job` leaves it: queued, its marker in Redis."""
    user_id, _ = make_user()
    with services.db.begin() as s:
        job, _ = jobs.submit(
            s, user_id=user_id, kind="verify", spec={"requests": PROGRAMS}, total=3, max_attempts=2
        )
    services.redis.set(queues.job_marker(job.id), 1)
    return job.id


def database_down(*_args, **_kwargs):
    raise exc.OperationalError("UPDATE jobs ...", {}, Exception("connection refused"))


def status(services, job_id: int) -> str:
    with services.db.read() as s:
        return s.get(Job, job_id).status


def test_a_message_whose_claim_fails_leaves_a_queued_job_without_a_marker(
    services, queued_job, monkeypatch
):
    # The message was acked on receipt; with the marker gone too, the reaper sees the job as
    # lost and sends it again, instead of waiting for ever on a marker with no message.
    monkeypatch.setattr(runners.jobs, "claim", database_down)
    with pytest.raises(exc.OperationalError):
        runners.run_job(services, queued_job, "test")
    assert status(services, queued_job) == "queued"
    assert queues.unmarked(services, [queues.job_marker(queued_job)]) == [
        queues.job_marker(queued_job)
    ]


def test_an_outage_in_a_job_is_left_to_the_reaper_and_a_bug_fails_it(
    services, queued_job, monkeypatch
):
    monkeypatch.setitem(runners.RUNNERS, "verify", lambda *_: database_down())
    with pytest.raises(exc.OperationalError):
        runners.run_job(services, queued_job, "test")
    assert status(services, queued_job) == "running"  # no end recorded: its heartbeat will go stale
    with services.db.begin() as s:
        jobs.reap(s, stale_after=timedelta(0))  # what the reaper does once it has
    assert status(services, queued_job) == "queued"

    def bug(*_):
        raise ValueError("a bug")

    monkeypatch.setitem(runners.RUNNERS, "verify", bug)
    runners.run_job(services, queued_job, "test")
    assert status(services, queued_job) == "failed"

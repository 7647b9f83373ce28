"""The verify runners in-process, against the test's database and Redis (no Celery worker)."""

from __future__ import annotations

import pytest

from service.db import jobs, verdicts
from service import queues
from worker import runners
from service.queues import make_services

PROGRAMS = [{"program": f"x = {i}", "tests": {"kind": "function", "tests": [f"assert x == {i % 2}"]}}
            for i in range(3)]


@pytest.fixture
def services(stack_settings):
    svc = make_services(stack_settings)
    yield svc
    svc.db.dispose()


@pytest.fixture
def running_job(services, make_user):
    user_id, _ = make_user()
    with services.db.begin() as s:
        job, _ = jobs.submit(s, user_id=user_id, kind="verify", spec={"requests": PROGRAMS}, total=3,
                             max_attempts=1)
    with services.db.begin() as s:
        jobs.claim(s, job.id, "test")
    return job.id


def test_a_batch_stores_one_verdict_per_program_and_skips_judged_ones(services, running_job):
    runners.verify_batch(services, running_job, range(0, 2))
    runners.verify_batch(services, running_job, range(0, 3))  # a redelivery that overlaps
    with services.db.read() as s:
        assert verdicts.count(s, running_job) == 3
        assert verdicts.summary(s, running_job)["all_passed"] == 2  # x = 2 fails x == 0


def test_a_batch_over_its_redelivery_cap_gives_up_with_sandbox_errors(services, running_job):
    services.redis.set(queues.batch_marker(running_job, 0), 1)
    runners.verify_batch(services, running_job, range(0, 3), give_up="gave up after 3 deliveries")
    with services.db.read() as s:
        summary = verdicts.summary(s, running_job)
    assert summary["by_status"] == {"sandbox_error": 3} and summary["pass_rate"] is None
    assert not services.redis.exists(queues.batch_marker(running_job, 0))


def test_a_batch_of_a_finished_job_does_nothing(services, running_job):
    with services.db.begin() as s:
        jobs.cancel(s, running_job)
        jobs.finish(s, running_job, "cancelled")
    runners.verify_batch(services, running_job, range(0, 3))
    with services.db.read() as s:
        assert verdicts.count(s, running_job) == 0

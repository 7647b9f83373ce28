"""Putting work on the queues, and remembering in Redis that it is there.

Postgres is the truth and Redis only carries messages, so a Redis that restarts empty
loses messages but no job. Every message we send leaves a marker key beside it in Redis:
markers and messages live and die together, so "the job is queued in the database but its
marker is gone" means "Redis lost the message", and the reaper sends it again. A duplicate
message is harmless (claims are guarded, verdict rows unique), a lost one is not.
"""

from __future__ import annotations

from collections.abc import Iterable

from rlvr.db import jobs
from worker.services import BATCH_PRIORITY, Services


def job_marker(job_id: int) -> str:
    return f"rlvr:sent:job:{job_id}"


def batch_marker(job_id: int, start: int) -> str:
    return f"rlvr:sent:batch:{job_id}:{start}"


# A short retry: a Redis that is down fails the send fast; the reaper sends again later.
SEND_OPTIONS = dict(ignore_result=True, retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2})


def send_job(services: Services, job_id: int) -> None:
    """Sends a committed queued job to the `train` queue (whole jobs run there, one per process)."""
    services.celery.send_task("worker.tasks.run_job", args=[job_id], queue="train", **SEND_OPTIONS)
    services.redis.set(job_marker(job_id), 1)
    with services.db.begin() as session:
        jobs.mark_sent(session, job_id)


def send_batch(services: Services, job_id: int, batch: range) -> None:
    services.celery.send_task("worker.tasks.verify_batch", args=[job_id, batch.start, batch.stop], queue="verify",
                              priority=BATCH_PRIORITY, **SEND_OPTIONS)
    services.redis.set(batch_marker(job_id, batch.start), 1)


def forget(services: Services, marker: str) -> None:
    services.redis.delete(marker)


def unmarked(services: Services, markers: Iterable[str]) -> list[str]:
    """The markers among `markers` that Redis does not hold."""
    markers = list(markers)
    if not markers:
        return []
    with services.redis.pipeline(transaction=False) as pipe:
        for marker in markers:
            pipe.exists(marker)
        present = pipe.execute()
    return [m for m, here in zip(markers, present) if not here]

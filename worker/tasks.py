"""Celery tasks: each takes ids, calls `worker.runners`, and keeps no state of its own.

`run_job` (queue `train`) is acked on receipt and runs a job in a fresh child process: a
job can run for hours, so its liveness is the row's heartbeat, watched by its worker (which
kills a wedged child) and by `reap`, never Redis's visibility timeout. The job it runs is the
fair share's next (`jobs.claim_next`), not necessarily the message's. `coordinate_job`
(queue `coordinate`, a pool of threads on the CPU machines) is the same for the jobs that
need no GPU and mostly wait: it runs the job in its own thread, with the same claim,
heartbeat and reaper. Verify tasks are short and idempotent, so they are acked late,
rejected back to the queue when their process dies, capped in redeliveries, and time-limited.
"""

from __future__ import annotations

from datetime import timedelta

from celery.utils.log import get_task_logger

from sandbox import VerifyRequest
from service import queues, telemetry
from service.db import jobs
from service.db.models import utcnow
from worker import gpus, runners
from worker.app import app, services, settings

log = get_task_logger(__name__)

VERIFY_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "soft_time_limit": settings.verify_soft_seconds,
    "time_limit": settings.verify_hard_seconds,
}


@app.task(name=queues.RUN_JOB, acks_late=False, bind=True)
def run_job(self, job_id: int) -> None:
    worker_name = self.request.hostname or "worker"
    code = runners.run_job_in_fresh_process(
        services(), job_id, worker_name, gpus.assigned(), fair=True
    )
    if code != 0:
        log.error(
            "job %s: its process exited with %s; the reaper will requeue it if it is still running",
            job_id,
            code,
        )


@app.task(name=queues.COORDINATE_JOB, acks_late=False, bind=True)
def coordinate_job(self, job_id: int) -> None:
    # No fresh process: the pool is threads (forking one would copy the others' held locks),
    # and a coordinator loads nothing that must die with it.
    runners.run_job(services(), job_id, self.request.hostname or "worker")


@app.task(name=queues.VERIFY_BATCH, bind=True, **VERIFY_OPTIONS)
def verify_batch(self, job_id: int, start: int, stop: int) -> None:
    deliveries = _count_delivery(job_id, start)
    give_up = None
    if deliveries > settings.verify_max_deliveries:
        give_up = f"gave up on this batch after {deliveries - 1} deliveries"
        log.error("job %s batch %s: %s", job_id, start, give_up)
    try:
        runners.verify_batch(
            services(), job_id, range(start, stop), give_up=give_up, queue=_queue(self)
        )
    except Exception:
        # Celery acks a failed task's message: dropping the marker lets the job's coordinator
        # see the batch as lost and send it again.
        queues.forget(services(), queues.batch_marker(job_id, start))
        raise


@app.task(name=queues.VERIFY_REQUESTS, ignore_result=False, bind=True, **VERIFY_OPTIONS)
def verify_requests(self, requests: list[dict], source: str = "api") -> list[dict]:
    """A small batch judged and handed back (the synchronous `POST /verify`, a job's code
    rewards: `source` says which), each verdict naming the worker that ran it."""
    verdicts = runners.run_sandbox([VerifyRequest.model_validate(r) for r in requests])
    telemetry.count_verified(services().redis, _queue(self), source, verdicts)
    return [{**verdict, "verified_by": self.request.hostname} for verdict in verdicts]


def _queue(task) -> str:
    return (task.request.delivery_info or {}).get("routing_key") or "verify"


@app.task(name=queues.REAP)
def reap() -> None:
    """Requeues jobs whose worker vanished and re-sends queued jobs whose message Redis lost."""
    svc = services()
    with svc.db.begin() as session:
        requeued = jobs.reap(session, stale_after=timedelta(seconds=settings.stale_after_seconds))
        waiting = jobs.unsent_since(
            session, utcnow() - timedelta(seconds=settings.resend_after_seconds)
        )
    unmarked = set(queues.unmarked(svc, [queues.job_marker(j) for j in waiting]))
    lost = [j for j in waiting if queues.job_marker(j) in unmarked]
    if lost:  # re-read: a worker drops the marker just before it claims, and may have claimed since
        with svc.db.read() as session:
            lost = jobs.still_queued(session, lost)
    for job_id in requeued + lost:
        queues.send_job(svc, job_id)
    if requeued or lost:
        log.warning("reaper: requeued %s, re-sent lost %s", requeued, lost)
    queues.mark_seen(svc, queues.REAPER_SEEN)


def _count_delivery(job_id: int, start: int) -> int:
    """Deliveries of one batch, counting Redis redeliveries and re-sends alike."""
    key = f"rlvr:deliveries:{job_id}:{start}"
    redis = services().redis
    count = redis.incr(key)
    redis.expire(key, 86400)
    return count

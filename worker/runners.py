"""What a worker does with a job once its message arrives, kind by kind.

Owns: the run of one job (claim, heartbeat, runner, finish) and the verify kind's two
halves: the coordinator that fans a job's programs out in batches and waits for their
verdicts, and the batch work itself. Tasks in `worker.tasks` only call in here.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time

from celery.exceptions import SoftTimeLimitExceeded

from sandbox import Sandbox, Verdict, VerifyRequest, verify
from service import queues, telemetry, tenancy
from service.db import Job, jobs, verdicts
from service.kinds import VerifyJobSpec
from service.outages import outage
from service.queues import Services
from worker import training
from worker.heartbeat import Heartbeat

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


def run_job_in_fresh_process(
    services: Services, job_id: int, worker_name: str, gpu: int | None = None
) -> int:
    """Forks a child that runs the job with its own connections, waits, returns its exit status.

    Whatever a job loads (a model, CUDA state, leaked memory) dies with its child, while the
    pool process that consumes the queue stays up, so the next job starts in milliseconds.
    A child killed mid-job leaves the job `running` with a stale heartbeat: the reaper's case.
    With `gpu` (the pool process's own, `worker.gpus`) the child sees that GPU alone: CUDA
    reads `CUDA_VISIBLE_DEVICES` when the child first touches it, which is after this.
    """
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            if gpu is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
            services.db.engine.dispose(
                close=False
            )  # the parent's pooled connections stay the parent's
            run_job(services, job_id, worker_name)
            status = 0
        except BaseException:
            log.exception("job %s: its process failed", job_id)
        finally:
            os._exit(status)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def run_job(services: Services, job_id: int, worker_name: str) -> None:
    """Claims the job (once, however often its message arrives), runs it, records the end.

    The message was acked on receipt, so its marker goes first: whatever stops the claim (the
    database is down, this process is killed) leaves a queued job without a marker, which
    the reaper sends again. Once claimed, an outage (`service.outages`) is not the job's
    fault: it propagates, this process ends with no end recorded, and the reaper requeues
    the job when its heartbeat goes stale.
    """
    queues.forget(services, queues.job_marker(job_id))
    with services.db.begin() as session:
        claimed = jobs.claim(session, job_id, worker_name)
    if not claimed:
        log.info("job %s is not queued any more; message dropped", job_id)
        return
    with services.db.read() as session:
        job = session.get(Job, job_id)
    with Heartbeat(services.db, job_id, services.settings.heartbeat_seconds) as heartbeat:
        try:
            status, result = RUNNERS[job.kind](services, job, heartbeat.cancelled)
            error = None
        except Exception as exc:
            if outage(exc):
                raise
            log.exception(
                "job %s failed", job_id
            )  # the operator's log keeps the paths; the user's row does not
            status, result, error = (
                "failed",
                None,
                tenancy.without_paths(f"{type(exc).__name__}: {exc}"),
            )
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if result is not None and devices is not None:  # the GPUs this job's process saw, in its words
        result = {**result, "cuda_visible_devices": devices}
    with services.db.begin() as session:
        jobs.finish(session, job_id, status, result=result, error=error)


def run_verify_job(services: Services, job: Job, cancelled: threading.Event) -> tuple[str, dict]:
    """Sends the job's missing batches to the verify queue, then follows its verdict count.

    When progress stalls, a batch whose Redis marker is gone (Redis lost the message, or its
    task failed) is sent again; a dead verify worker's batch comes back through Redis
    redelivery instead, and after `silent_limit` every unfinished batch is sent again.
    """
    spec = VerifyJobSpec.model_validate(job.spec)
    batches = spec.batches(services.settings.verify_batch_size)
    total = len(spec.requests)
    _send_missing(services, job.id, batches, lost_only=False)
    settings = services.settings
    # No verdict for longer than any batch may live means every unfinished batch died without
    # a trace (a hard time limit acks its message): send them all again.
    silent_limit = settings.verify_hard_seconds + settings.resend_after_seconds
    seen, last_verdict, last_check = -1, time.monotonic(), time.monotonic()
    while not cancelled.wait(POLL_SECONDS):
        with services.db.begin() as session:
            done = verdicts.count(session, job.id)
            if done != seen:
                jobs.set_progress(session, job.id, done)
        if done >= total:
            break
        now = time.monotonic()
        if done != seen:
            seen, last_verdict, last_check = done, now, now
        elif now - last_verdict > silent_limit:
            _send_missing(services, job.id, batches, lost_only=False)
            last_verdict = last_check = now
        elif now - last_check > settings.resend_after_seconds:
            _send_missing(services, job.id, batches, lost_only=True)
            last_check = now
    with services.db.read() as session:
        summary = verdicts.summary(session, job.id)
    return ("succeeded" if summary["programs"] >= total else "cancelled"), summary


def _send_missing(
    services: Services, job_id: int, batches: list[range], *, lost_only: bool
) -> None:
    with services.db.read() as session:
        todo = set(verdicts.missing(session, job_id, range(batches[0].start, batches[-1].stop)))
    unfinished = [b for b in batches if todo.intersection(b)]
    if lost_only:
        lost = set(
            queues.unmarked(services, [queues.batch_marker(job_id, b.start) for b in unfinished])
        )
        unfinished = [b for b in unfinished if queues.batch_marker(job_id, b.start) in lost]
    for batch in unfinished:
        queues.send_batch(services, job_id, batch)
    if lost_only and unfinished:
        log.warning("job %s: re-sent %d batches Redis lost", job_id, len(unfinished))


def verify_batch(
    services: Services,
    job_id: int,
    batch: range,
    *,
    give_up: str | None = None,
    queue: str = "verify",
) -> None:
    """Judges the programs of `batch` that have no verdict yet and stores their verdicts.

    `give_up` (the redelivery cap was hit) stores `sandbox_error` verdicts instead, so a
    program that kills its worker every time cannot stall the job forever.
    """
    with services.db.read() as session:
        job = session.get(Job, job_id)
        if job is None or job.status not in jobs.ACTIVE:
            return
        todo = verdicts.missing(session, job_id, batch)
    requests = [
        VerifyRequest.model_validate(job.spec["requests"][i]) for i in todo
    ]  # this batch only
    results = [_sandbox_error(r, give_up) for r in requests] if give_up else run_sandbox(requests)
    with services.db.begin() as session:
        verdicts.save(session, job_id, dict(zip(todo, results)))
    queues.forget(services, queues.batch_marker(job_id, batch.start))
    telemetry.count_verified(services.redis, queue, "verify_job", results)


def run_sandbox(requests: list[VerifyRequest]) -> list[dict]:
    """Verdicts as JSON dicts; a batch cut short by its soft time limit yields `sandbox_error`
    verdicts (the trainer then scores them None, never 0)."""
    try:
        return [v.model_dump(mode="json") for v in verify(requests, sandbox=sandbox())]
    except SoftTimeLimitExceeded:
        return [_sandbox_error(r, "the verify task hit its soft time limit") for r in requests]


def _sandbox_error(request: VerifyRequest, reason: str) -> dict:
    return Verdict(
        id=request.id,
        status="sandbox_error",
        passed=0,
        total=0,
        tests=[],
        wall_seconds=0.0,
        cpu_seconds=0.0,
        error=reason,
    ).model_dump(mode="json")


@functools.cache
def sandbox() -> Sandbox:
    return Sandbox()


RUNNERS = {
    "verify": run_verify_job,
    "train": training.run_train_job,
    "sft": training.run_sft_job,
    "eval": training.run_eval_job,
}

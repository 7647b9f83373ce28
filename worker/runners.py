"""What a worker does with a job once its message arrives, kind by kind.

Owns: the run of one job (claim, heartbeat, runner, finish) and the verify kind's two
halves: the coordinator that fans a job's programs out in batches and waits for their
verdicts, and the batch work itself. Tasks in `worker.tasks` only call in here.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError
from sqlalchemy import select

from sandbox import Sandbox, Verdict, VerifyRequest, verify
from service import limits, queues, telemetry, tenancy
from service.db import Job, jobs, verdicts
from service.kinds import KINDS, VerifyJobSpec
from service.outages import outage
from service.queues import Services
from worker import training
from worker.heartbeat import Heartbeat

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


TRAIN_KINDS = tuple(kind for kind in KINDS if queues.job_queue(kind) == "train")
"""The kinds whose whole jobs run on the `train` pool: train, SFT and eval."""


def run_job_in_fresh_process(
    services: Services, job_id: int, worker_name: str, gpu: int | None = None, *, fair=False
) -> int:
    """Claims a job, runs it in a forked child with its own connections, and watches the child
    until it exits; returns its exit status.

    With `fair` (the train queue's messages) the message's job is not necessarily the one
    claimed: the worker takes the oldest queued job of the user with the fewest running jobs
    (`jobs.claim_next`). Messages and queued jobs stay one for one, so every job still gets
    one, and the marker of the job taken passes to the message's job (below).

    Whatever a job loads (a model, CUDA state, leaked memory) dies with its child, while the
    pool process that consumes the queue stays up, so the next job starts in milliseconds.
    The pool process watches the child (`_watch`): one that stops heart-beating or outlives
    its cancel by a grace period is killed, and its job ends with an error that says why,
    so a wedged step never holds the worker. A child killed from outside (with its worker)
    leaves the job `running` with a stale heartbeat: the reaper's case. With `gpu` (the pool
    process's own, `worker.gpus`) the child sees that GPU alone: CUDA reads
    `CUDA_VISIBLE_DEVICES` when the child first touches it, which is after this.
    """
    queues.forget(services, queues.job_marker(job_id))  # first: see `run_job`
    with services.db.begin() as session:
        if fair:
            claimed = jobs.claim_next(
                session,
                worker_name,
                kinds=TRAIN_KINDS,
                max_running=services.settings.user_max_running,
            )
        else:
            claimed = job_id if jobs.claim(session, job_id, worker_name) else None
        attempt = claimed and session.scalar(select(Job.attempt).where(Job.id == claimed))
    if claimed is None:
        log.info("job %s: nothing to claim for its message; dropped", job_id)
        return 0
    if claimed != job_id and services.redis.delete(queues.job_marker(claimed)):
        # The claimed job's own message is still in Redis and will claim some other job, maybe
        # this one: mark this one sent, or the reaper would send it a second message.
        services.redis.set(queues.job_marker(job_id), 1)
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            if gpu is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
            services.db.engine.dispose(
                close=False
            )  # the parent's pooled connections stay the parent's
            run_claimed(services, claimed)
            status = 0
        except BaseException:
            log.exception("job %s: its process failed", claimed)
        finally:
            os._exit(status)
    log.info("job %s (attempt %s) runs in process %s", claimed, attempt, pid)
    return _watch(services, pid, claimed, worker_name, attempt)


def _watch(services: Services, pid: int, job_id: int, worker_name: str, attempt: int) -> int:
    """Waits for the job's process; kills it when its job row says it is wedged or not its own.

    - its heartbeat has not moved for `RLVR_KILL_GRACE_SECONDS` (a step holds the GIL, as a
      backtracking regex did, so the heartbeat thread cannot run): the job fails;
    - it is `cancelling` for longer than `RLVR_CANCEL_GRACE_SECONDS` (a step that never
      reaches the cooperative check): the job is cancelled;
    - the job ended, or was reaped and requeued (another attempt), for `RLVR_KILL_GRACE_SECONDS`
      while this process still runs: killed, nothing recorded (the row is not this attempt's).

    Silence is timed on this process's monotonic clock from what it reads, not from the row's
    timestamps, and a read that fails (the database is down) restarts the clock: an outage is
    the reaper's call, never a reason to kill.
    """
    settings = services.settings
    every = min(1.0, settings.heartbeat_seconds)
    last_beat, beat_moved = None, time.monotonic()
    cancel_seen = gone_since = None
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(wait_status)
        time.sleep(every)
        now = time.monotonic()
        try:
            with services.db.read() as session:
                row = session.execute(
                    select(Job.status, Job.heartbeat_at, Job.worker, Job.attempt).where(
                        Job.id == job_id
                    )
                ).one_or_none()
        except Exception as exc:  # the database is down, or worse: this is no reason to kill
            if not outage(exc):
                log.exception("job %s: its watchdog could not read the row", job_id)
            beat_moved = now
            continue
        ours = (
            row is not None
            and row.status in jobs.ACTIVE
            and (row.worker, row.attempt) == (worker_name, attempt)
        )
        if not ours:
            gone_since = gone_since or now
            if now - gone_since > settings.kill_grace_seconds:
                _kill(pid, job_id, "its job ended or was taken from it")
                return _exit_code(pid)
            continue
        if row.heartbeat_at != last_beat:
            last_beat, beat_moved = row.heartbeat_at, now
        if row.status == "cancelling":
            cancel_seen = cancel_seen or now
        if now - beat_moved > settings.kill_grace_seconds:
            end = "cancelled" if row.status == "cancelling" else "failed"
            why = (
                f"killed by its worker: its process sent no heartbeat for "
                f"{settings.kill_grace_seconds:g}s (a step held it; RLVR_KILL_GRACE_SECONDS)"
            )
        elif cancel_seen is not None and now - cancel_seen > settings.cancel_grace_seconds:
            end = "cancelled"
            why = (
                f"killed by its worker: still running {settings.cancel_grace_seconds:g}s after "
                "its cancel (RLVR_CANCEL_GRACE_SECONDS)"
            )
        else:
            continue
        _kill(pid, job_id, why)
        code = _exit_code(pid)
        with services.db.begin() as session:
            jobs.finish(
                session,
                job_id,
                end,
                error=why,
                where=(Job.worker == worker_name, Job.attempt == attempt),
            )
        return code


def _kill(pid: int, job_id: int, why: str) -> None:
    """SIGKILL to the job's process and every process it started (a vLLM engine's workers, a
    data loader's), so none is left holding a GPU or a core. The tree is stopped first, then
    read again, so a process forked while it was read is not missed. ``pid`` is this worker's
    unreaped child, so it cannot have been reused."""
    log.error("job %s: killing its process %s: %s", job_id, pid, why)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for target in [pid, *_descendants(pid)]:
            try:
                os.kill(target, sig)
            except ProcessLookupError:
                pass


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # ended while the table was read
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def _exit_code(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def run_job(services: Services, job_id: int, worker_name: str) -> None:
    """Claims the job (once, however often its message arrives), runs it, records the end.

    The message was acked on receipt, so its marker goes first: whatever stops the claim (the
    database is down, this process is killed) leaves a queued job without a marker, which
    the reaper sends again.
    """
    queues.forget(services, queues.job_marker(job_id))
    with services.db.begin() as session:
        claimed = jobs.claim(session, job_id, worker_name)
    if not claimed:
        log.info("job %s is not queued any more; message dropped", job_id)
        return
    run_claimed(services, job_id)


def run_claimed(services: Services, job_id: int) -> None:
    """Runs a job this process claimed, with its heartbeat, and records its end.

    The spec meets the operator's ceilings again (`service.limits`), so one stored before them
    fails naming its fields instead of running. Once claimed, an outage
    (`service.outages`) is not the job's fault: it propagates, this process ends with no end
    recorded, and the reaper requeues the job when its heartbeat goes stale.
    """
    with services.db.read() as session:
        job = session.get(Job, job_id)
    with Heartbeat(services.db, job_id, services.settings.heartbeat_seconds) as heartbeat:
        try:
            _within_limits(services, job)
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


def _within_limits(services: Services, job: Job) -> None:
    """Raises `tenancy.Refused` (its message names each field) when the job's spec asks more
    than the operator's ceilings allow now. A spec that is not valid at all is left to its
    runner, which reports it as it always did."""
    try:
        spec = KINDS[job.kind].spec.model_validate(job.spec)
    except ValidationError:
        return
    if problems := limits.refusals(spec, services.settings):
        raise tenancy.Refused(problems)


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

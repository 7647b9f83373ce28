"""The queues: the handles a process needs to reach the stack, every Celery task name, and
putting work on the queues while remembering in Redis that it is there.

The web app and each worker process build one `Services`; the web app's Celery instance
only sends messages (by the task names below), so importing this never imports task code.
`worker.tasks` registers its tasks under these same names.

Postgres is the truth and Redis only carries messages, so a Redis that restarts empty
loses messages but no job. Every message we send leaves a marker key beside it in Redis:
markers and messages live and die together, so "the job is queued in the database but its
marker is gone" means "Redis lost the message", and the reaper sends it again. A duplicate
message is harmless (claims are guarded, verdict rows unique), a lost one is not. A train
message is acked on receipt, so its worker drops the marker on receipt too, before it claims
the job: a message taken but never claimed also reads as lost.

Beat and the reaper leave keys here too (`mark_seen`), which `/health` reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from celery import Celery
from kombu import Queue

from service.db import Database, jobs
from service.settings import Settings

# The pools, each a queue of its own: `train` runs whole GPU jobs, one per process;
# `verify` judges programs in nsjail; `coordinate` runs the whole jobs that need no GPU
# and mostly wait (a verify job fans its programs out to `verify` and follows them), in
# threads on the CPU machines, so such a job never holds a train worker.
QUEUES = ("train", "verify", "coordinate")
JOB_QUEUES = {"verify": "coordinate"}
"""Where each kind's whole jobs run; a kind not named here runs on `train`."""

# Every Celery task name, here and nowhere else.
RUN_JOB = "worker.tasks.run_job"
COORDINATE_JOB = "worker.tasks.coordinate_job"
JOB_TASKS = {"train": RUN_JOB, "coordinate": COORDINATE_JOB}
VERIFY_BATCH = "worker.tasks.verify_batch"
VERIFY_REQUESTS = "worker.tasks.verify_requests"
REAP = "worker.tasks.reap"
# The remote-control command a train worker answers with the GPUs it owns (/health asks it).
GPUS_COMMAND = "rlvr_gpus"
# On Redis a message's priority picks one of these lists per queue, and a worker drains
# lower numbers first: a synchronous `POST /verify` (0) never waits behind a big job's
# batches (BATCH_PRIORITY).
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"
BATCH_PRIORITY = 6


def job_queue(kind: str) -> str:
    return JOB_QUEUES.get(kind, "train")


def queue_keys(queue: str) -> list[str]:
    """The Redis lists that hold `queue`'s messages, one per priority step."""
    return [queue] + [f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS[1:]]


def make_celery(settings: Settings) -> Celery:
    app = Celery(
        "rlvr", broker=settings.redis_url, backend=settings.redis_url, include=["worker.tasks"]
    )
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="verify",
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # job state lives in the database; only sync verify keeps a result
        result_expires=600,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # Train messages are acked on receipt, so this only bounds how long Redis waits to hand
        # an unacked verify message (its worker died) to another worker.
        # A sweep for such messages runs every `unacked_restore_interval` seconds (not kombu's
        # default of every tenth 10 s tick), so a dead verify worker's batch returns promptly.
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "priority_steps": list(PRIORITY_STEPS),
            "sep": PRIORITY_SEP,
            "unacked_restore_interval": max(1, min(10, int(settings.visibility_timeout / 4))),
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        beat_schedule={
            "reap": {
                "task": REAP,
                "schedule": settings.reaper_seconds,
                "options": {"queue": "verify", "expires": settings.reaper_seconds},
            }
        },
        worker_send_task_events=False,
    )
    return app


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: redis.Redis
    celery: Celery


def make_services(settings: Settings, celery: Celery | None = None) -> Services:
    return Services(
        settings=settings,
        db=Database(settings.database_url),
        redis=redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2),
        celery=celery or make_celery(settings),
    )


def job_marker(job_id: int) -> str:
    return f"rlvr:sent:job:{job_id}"


def batch_marker(job_id: int, start: int) -> str:
    return f"rlvr:sent:batch:{job_id}:{start}"


# A short retry: a Redis that is down fails the send fast; the reaper sends again later.
SEND_OPTIONS = {
    "ignore_result": True,
    "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
}


def send_job(services: Services, job_id: int) -> None:
    """Sends a committed queued job to its kind's queue (`job_queue`)."""
    with services.db.read() as session:
        queue = job_queue(jobs.kind_of(session, job_id))
    services.celery.send_task(JOB_TASKS[queue], args=[job_id], queue=queue, **SEND_OPTIONS)
    services.redis.set(job_marker(job_id), 1)
    with services.db.begin() as session:
        jobs.mark_sent(session, job_id)


def send_batch(services: Services, job_id: int, batch: range) -> None:
    services.celery.send_task(
        VERIFY_BATCH,
        args=[job_id, batch.start, batch.stop],
        queue="verify",
        priority=BATCH_PRIORITY,
        **SEND_OPTIONS,
    )
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


# Beat marks itself seen each time it sends the reaper, and the reaper each time it finishes a
# run. The keys expire, on Redis's clock, after `seen_window`: a missing key means beat or the
# reaper has not been seen lately, which /health reports.
BEAT_SEEN = "rlvr:seen:beat"
REAPER_SEEN = "rlvr:seen:reaper"


def seen_window(settings: Settings) -> float:
    """Seconds beat or the reaper may go unseen: three reaper periods, and slack for a reaper
    message that waits behind a batch on a busy verify pool."""
    return 3 * settings.reaper_seconds + 5


def mark_seen(services: Services, key: str) -> None:
    services.redis.set(key, f"{time.time():.3f}", px=int(seen_window(services.settings) * 1000))


def last_seen(services: Services, key: str) -> float | None:
    """The Unix time `key` was last marked, if within the window."""
    value = services.redis.get(key)
    return float(value) if value is not None else None


def send_requests(
    services: Services, requests: list[dict], source: str = "api", task_id: str | None = None
):
    """Sends programs to be judged now and handed back; returns the Celery result to wait on
    (`task_id` names it: a `POST /verify` ticket). `source` is who asks, as the
    verified-programs metric counts it: `api` (`POST /verify`) or `rewards` (the code rewards
    of a train, eval or SFT job)."""
    return services.celery.send_task(
        VERIFY_REQUESTS,
        args=[requests],
        kwargs={"source": source},
        queue="verify",
        task_id=task_id,
    )

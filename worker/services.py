"""The handles a process needs to talk to the rest of the stack, built from settings.

The web app and each worker process build one `Services`; the web app's Celery instance
only sends messages (by task name), so importing it never imports task code.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from kombu import Queue

from rlvr.db import Database, Settings

QUEUES = ("train", "verify")
# On Redis a message's priority picks one of these lists per queue, and a worker drains
# lower numbers first: a synchronous `POST /verify` (0) never waits behind a big job's
# batches (BATCH_PRIORITY).
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"
BATCH_PRIORITY = 6


def queue_keys(queue: str) -> list[str]:
    """The Redis lists that hold `queue`'s messages, one per priority step."""
    return [queue] + [f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS[1:]]


def make_celery(settings: Settings) -> Celery:
    app = Celery("rlvr", broker=settings.redis_url, backend=settings.redis_url, include=["worker.tasks"])
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
        broker_transport_options={"visibility_timeout": settings.visibility_timeout,
                                  "priority_steps": list(PRIORITY_STEPS), "sep": PRIORITY_SEP,
                                  "unacked_restore_interval": max(1, min(10, int(settings.visibility_timeout / 4))),
                                  "unacked_restore_throttle": 1},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        beat_schedule={"reap": {"task": "worker.tasks.reap", "schedule": settings.reaper_seconds,
                                "options": {"queue": "verify", "expires": settings.reaper_seconds}}},
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

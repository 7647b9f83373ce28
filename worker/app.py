"""The Celery app the worker and beat processes load: `celery -A worker.app worker ...`.

The main process builds its `Services` at start-up without connecting (so drivers are
imported once, not per job); each forked child drops the pooled connections it inherited
and opens its own. A train worker imports torch and rlvr's loops at start-up too, so each
job's fresh process is forked with them loaded. A verify worker refuses to start
when the sandbox cannot run, naming what is missing. A train worker with `RLVR_GPUS` logs
which GPU each pool process gives its jobs, and refuses to start with more pool processes
than GPUs (`worker.gpus`); the `rlvr_gpus` inspect command tells /health the same.
Beat sends the reaper once as it starts, then every `RLVR_REAPER_SECONDS`, and marks itself
seen in Redis with each send.
"""

from __future__ import annotations

import functools
import logging

from celery.signals import (
    beat_init,
    before_task_publish,
    worker_init,
    worker_process_init,
    worker_ready,
)
from celery.worker.control import inspect_command

from service import queues
from service.queues import GPUS_COMMAND, Services, make_celery, make_services
from service.settings import load_settings
from worker import gpus

log = logging.getLogger(__name__)
settings = load_settings()
settings.data_dir.mkdir(parents=True, exist_ok=True)  # beat keeps its schedule file there
app = make_celery(settings)


@functools.cache
def services() -> Services:
    return make_services(settings, celery=app)


@worker_process_init.connect
def _fresh_connections_in_child(**_) -> None:
    services().db.engine.dispose(close=False)
    gpus.assign()


@worker_init.connect
def _start(sender=None, **_) -> None:
    services()
    consumed = {q.name for q in sender.app.amqp.queues.consume_from.values()} if sender else set()
    if "verify" in consumed:
        from sandbox import Sandbox

        # Raises SandboxUnavailable naming what is missing. Closed at once: each forked child
        # starts warm jails of its own on its first batch (worker.runners.sandbox).
        Sandbox().close()
    if "train" in consumed:
        from worker.training import preload

        gpus.take(
            settings.gpus, sender.concurrency
        )  # raises before the pool starts if it is too big
        preload()


@worker_ready.connect
def _say_which_gpus(sender=None, **_) -> None:
    if (
        gpus.plan() is not None
    ):  # logged here: at worker_init the worker's logging is not set up yet
        log.info("train worker %s %s", sender.hostname, gpus.plan())


@inspect_command(name=GPUS_COMMAND)
def _gpus(state) -> dict:
    """`celery -A worker.app inspect rlvr_gpus`: the GPUs this worker took (null: no list)."""
    return {"gpus": gpus.owned()}


@beat_init.connect
def _reap_at_start(**_) -> None:
    # The schedule's first run comes a whole period after start; a beat restarted to recover
    # from an outage should not wait for it, and /health sees beat at once.
    app.send_task(queues.REAP, queue="verify", expires=settings.reaper_seconds)


@before_task_publish.connect(sender=queues.REAP)
def _beat_seen(**_) -> None:
    queues.mark_seen(services(), queues.BEAT_SEEN)

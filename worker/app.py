"""The Celery app the worker and beat processes load: `celery -A worker.app worker ...`.

The main process builds its `Services` at start-up without connecting (so drivers are
imported once, not per job); each forked child drops the pooled connections it inherited
and opens its own. A train worker imports torch and rlvr's loops at start-up too, so each
job's fresh process is forked with them loaded. A verify worker refuses to start
when the sandbox cannot run, naming what is missing. Beat sends the reaper once as it
starts, then every `RLVR_REAPER_SECONDS`, and marks itself seen in Redis with each send.
"""

from __future__ import annotations

import functools

from celery.signals import beat_init, before_task_publish, worker_init, worker_process_init

from service import queues
from service.settings import load_settings
from service.queues import Services, make_celery, make_services

settings = load_settings()
settings.data_dir.mkdir(parents=True, exist_ok=True)  # beat keeps its schedule file there
app = make_celery(settings)


@functools.cache
def services() -> Services:
    return make_services(settings, celery=app)


@worker_process_init.connect
def _fresh_connections_in_child(**_) -> None:
    services().db.engine.dispose(close=False)


@worker_init.connect
def _start(sender=None, **_) -> None:
    services()
    consumed = {q.name for q in sender.app.amqp.queues.consume_from.values()} if sender else set()
    if "verify" in consumed:
        from worker.runners import sandbox

        sandbox().check()  # raises SandboxUnavailable naming what is missing
    if "train" in consumed:
        from worker.training import preload

        preload()


@beat_init.connect
def _reap_at_start(**_) -> None:
    # The schedule's first run comes a whole period after start; a beat restarted to recover
    # from an outage should not wait for it, and /health sees beat at once.
    app.send_task(queues.REAP, queue="verify", expires=settings.reaper_seconds)


@before_task_publish.connect(sender=queues.REAP)
def _beat_seen(**_) -> None:
    queues.mark_seen(services(), queues.BEAT_SEEN)

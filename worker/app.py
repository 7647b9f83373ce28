"""The Celery app the worker and beat processes load: `celery -A worker.app worker ...`.

The main process builds its `Services` at start-up without connecting (so drivers are
imported once, not per job); each forked child drops the pooled connections it inherited
and opens its own. A train worker imports torch and rlvr's loops at start-up too, so each
job's fresh process is forked with them loaded. A verify worker refuses to start
when the sandbox cannot run, naming what is missing.
"""

from __future__ import annotations

import functools

from celery.signals import worker_init, worker_process_init

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
    queues = {q.name for q in sender.app.amqp.queues.consume_from.values()} if sender else set()
    if "verify" in queues:
        from sandbox import Sandbox

        # Raises SandboxUnavailable naming what is missing. Closed at once: each forked child
        # starts warm jails of its own on its first batch (worker.runners.sandbox).
        Sandbox().close()
    if "train" in queues:
        from worker.training import preload

        preload()

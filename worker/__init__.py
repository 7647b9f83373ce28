"""Celery workers: the app, thin tasks, and what each job kind runs.

Owns: the Celery app, its tasks (registered under the names `service.queues` owns) and the
job runners. Does not own: the schema and transitions (`service.db`), sending work to the
queues (`service.queues`) or judging code (`sandbox`).
"""

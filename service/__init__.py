"""What the web app and the workers share: the database (`service.db`: models, sessions, job
lifecycle, accounts; migrations in `service/migrations`), the settings, the job kinds and
their specs, and the queues (`service.queues`: every Celery task name and every send).

Imports neither Flask, torch nor task code: `web` and `worker` import this, never the
other way round, and it reaches `rlvr` only for the job specs.
"""

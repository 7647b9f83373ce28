"""The service's store: SQLAlchemy models, sessions, job lifecycle and accounts.

Imports neither Flask, Celery nor torch, so the web app, the workers and the CLI share it.
"""

from service.db.models import ApiToken, Job, JobEvent, User, VerdictRow
from service.db.session import Database

__all__ = ["ApiToken", "Database", "Job", "JobEvent", "User", "VerdictRow"]

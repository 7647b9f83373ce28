"""The service's store: settings, SQLAlchemy models, sessions, job lifecycle and accounts.

Imports neither Flask, Celery nor torch, so the web app, the workers and the CLI share it.
"""

from rlvr.db.models import ApiToken, Job, JobEvent, User, VerdictRow
from rlvr.db.session import Database
from rlvr.db.settings import Settings, load_settings

__all__ = ["ApiToken", "Database", "Job", "JobEvent", "Settings", "User", "VerdictRow", "load_settings"]

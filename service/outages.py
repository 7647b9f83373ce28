"""Which errors mean that the database or Redis cannot be reached for now, as opposed to a
bug or a bad request: refused connections, a server restarting or shutting down, a
connection it dropped, a full pool, a busy SQLite file, a broker that does not answer.

The web app answers them with 503 and Retry-After (`web.errors`); a job's process that
meets one stops without recording an end, so its heartbeat goes stale and the reaper
requeues the job as it would for a lost worker (`worker.runners.run_job`). Neither is the
job's fault, so neither may mark it failed.
"""

from __future__ import annotations

import sqlite3

import redis
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import exc as sa

# sqlite3 files nearly every error under OperationalError, a missing table or a syntax error
# too; only these mean the file is busy or out of reach.
_SQLITE_OUTAGES = ("database is locked", "unable to open database file", "disk i/o error")


def outage(exc: BaseException) -> str | None:
    """ "database" or "redis" when `exc`, or an exception it was raised from, is an outage."""
    seen = 0
    while exc is not None and seen < 8:
        if _database_down(exc):
            return "database"
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError | BrokerError):
            return "redis"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _database_down(exc: BaseException) -> bool:
    if isinstance(exc, sa.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(exc, sa.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.Error):
        return any(text in str(exc.orig).lower() for text in _SQLITE_OUTAGES)
    return True

"""service.outages: which errors mean the database or Redis is out of reach for now."""

from __future__ import annotations

import sqlite3

import pytest
import redis
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import create_engine, exc, text
from support import free_port

from service.outages import outage


def sqlite_error(message: str) -> exc.OperationalError:
    return exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))


def raised_from(cause: BaseException) -> RuntimeError:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("a callback failed") from inner
    except RuntimeError as outer:
        return outer


def refused() -> exc.OperationalError:
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/rlvr")
    with pytest.raises(exc.OperationalError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return caught.value


@pytest.mark.parametrize(
    "error, down",
    [
        (refused, "database"),  # made when the test runs: it connects
        (sqlite_error("database is locked"), "database"),
        (sqlite_error("no such table: jobs"), None),  # a bug, not an outage
        (exc.DataError("SELECT 1", {}, ValueError("integer out of range")), None),
        (exc.TimeoutError("QueuePool limit reached"), "database"),
        (redis.ConnectionError("Connection refused"), "redis"),
        (redis.TimeoutError("Timeout reading from socket"), "redis"),
        (BrokerError("Error 111 connecting to localhost:6379"), "redis"),
        (raised_from(sqlite_error("database is locked")), "database"),
        (ValueError("bad"), None),
    ],
)
def test_outage(error, down):
    assert outage(error() if callable(error) else error) == down

"""Engines and sessions: one `Database` per process, sessions opened at the edges.

Owns: connection set-up for SQLite and Postgres. SQLite is tuned so that several processes
(gunicorn workers, Celery workers, beat) can share one file: WAL, a busy timeout, and write
transactions that take the write lock up front (`BEGIN IMMEDIATE`), because a deferred
transaction that later writes fails at once instead of waiting when another process won
the lock in between. Read-only sessions run in autocommit mode instead.

After a Postgres restart every pooled connection is dead. Each is dropped when it is next
checked out, if the server had closed it (`_drop_closed`); one that died silently fails its
first statement, and SQLAlchemy then replaces the whole pool. Either way the next request
reconnects, and the failing one is a 503 (`service.outages`), not a 500.
"""

from __future__ import annotations

import select
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Select, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping: its round trip doubled the cost of a status poll. `_drop_closed` costs a
        # system call and no round trip.
        engine = create_engine(url, pool_recycle=3600)
        event.listen(engine, "checkout", _drop_closed)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if not conn.get_execution_options().get("readonly"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _drop_closed(dbapi_connection, _record, _proxy) -> None:
    """Refuses a pooled connection that the server has closed, so the pool opens a new one.

    An idle connection has nothing to read. A server that shut down or restarted sent its
    last message and closed the socket, so the socket reads as ready (poll with no wait;
    poll, not select, which fails on descriptors past 1023); raising DisconnectionError here
    makes the pool discard it and connect afresh.
    """
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed this pooled connection")


class Database:
    """The engine and session factory of one database URL."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._prepared: dict[int, PreparedRead] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A transaction that may write: committed on exit, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    @property
    def _read_options(self) -> dict:
        options = {"readonly": True}
        if self.dialect != "sqlite":
            options["isolation_level"] = "AUTOCOMMIT"
        return options

    def read_session(self) -> Session:
        """A session that only reads, in autocommit mode: each statement sees the latest
        committed rows, takes no write lock (SQLite), and costs no BEGIN/ROLLBACK round trips
        (Postgres). Objects loaded in it stay readable after it is closed."""
        session = self._sessions()
        session.connection(execution_options=self._read_options)
        return session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.read_session() as session:
            yield session

    def prepare(self, statement: Select) -> PreparedRead:
        """The statement compiled for this database, once per process (keyed by identity: pass
        a statement built once at import, with `bindparam`s for its values)."""
        if (
            prepared := self._prepared.get(id(statement))
        ) is None or prepared.statement is not statement:
            prepared = self._prepared[id(statement)] = PreparedRead(self.engine, statement)
        return prepared

    def dispose(self) -> None:
        self.engine.dispose()


class PreparedRead:
    """A Core SELECT compiled once and run on the driver's own connection, for the few reads
    hot enough that SQLAlchemy's per-execution work costs more than the query: a client
    polling a job's status. (Measured on SQLite: 200 us through a `Connection`, 25 us here.)

    Rows come back as named tuples whose values went through each column type's own result
    processor, so they equal what `Connection.execute` returns. On Postgres the connection
    is switched to autocommit for the one statement, so no transaction is opened and
    returning it to the pool costs no ROLLBACK round trip; SQLite connections are in the
    driver's autocommit mode already (see `make_engine`).
    """

    def __init__(self, engine: Engine, statement: Select):
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        self.statement, self._engine = statement, engine
        self._sql = str(compiled)
        self._order = compiled.positiontup  # parameter names in order, for positional paramstyles
        columns = list(statement.selected_columns)
        self._processors = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]
        self._row = namedtuple("PreparedRow", [c.key for c in columns])
        self._toggle_autocommit = dialect.name != "sqlite"

    def one_or_none(self, **params: Any) -> tuple | None:
        try:
            raw = self._engine.raw_connection()
        except (
            self._engine.dialect.loaded_dbapi.Error
        ) as exc:  # the pool does not wrap a failed connect
            raise self._wrapped(exc, None, params) from exc
        try:
            driver = raw.driver_connection
            if self._toggle_autocommit:
                driver.autocommit = True
            try:
                cursor = raw.cursor()
                cursor.execute(
                    self._sql,
                    tuple(params[name] for name in self._order) if self._order else params,
                )
                found = cursor.fetchone()
                cursor.close()
            finally:
                if self._toggle_autocommit and not driver.closed:
                    driver.autocommit = False
        except self._engine.dialect.loaded_dbapi.Error as exc:
            raise self._wrapped(exc, raw, params) from exc
        finally:
            raw.close()
        if found is None:
            return None
        return self._row(
            *(
                value if process is None else process(value)
                for process, value in zip(self._processors, found)
            )
        )

    def _wrapped(self, exc: Exception, raw, params: dict) -> DBAPIError:
        """The driver's error as SQLAlchemy raises it from a `Connection` (so callers and
        `service.outages` see one kind), the connection dropped from the pool if it is dead."""
        dialect = self._engine.dialect
        lost = raw is not None and dialect.is_disconnect(exc, raw.dbapi_connection, None)
        if lost:
            raw.invalidate(exc)
        return DBAPIError.instance(
            self._sql,
            params,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        )

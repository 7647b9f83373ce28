"""The tables: users, their API tokens, page sessions and data files, jobs, the job timeline,
and verify verdicts.

Owns: the schema (SQLAlchemy 2.0 typed models; Alembic migrations in `service/migrations/` must
agree, a test checks). Does not own: what a transition means (`service.db.jobs`) or how a
token is made (`service.db.accounts`).

A job's `spec` is the validated JSON of its kind's spec model, so new kinds (`train`,
`eval`, `sft`) need no new columns; `result` is the small summary the API shows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JOB_STATES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled", "crashed")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


JSONDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONDoc}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, so a leaked table leaks no token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(
        doc="After this the token is refused; null: never."
    )


class WebSession(Base):
    """A page session signed in with a token. The cookie carries a random key and this row its
    SHA-256, so a session ends for good when the row goes (logout, or its token revoked): a
    copy of the cookie kept elsewhere is worth nothing after that."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class DataFile(Base):
    """A JSON Lines file a user uploaded for the jsonl task (`file:<id>` in a spec). Its bytes
    live at `<data dir>/files/<user_id>/<id>.jsonl`; `name` is the upload's label only."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int]
    rows: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_jobs_user_idempotency_key"),
        Index("ix_jobs_status_heartbeat_at", "status", "heartbeat_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    spec: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempt: Mapped[int] = mapped_column(default=0, doc="Runs started so far; a claim adds one.")
    max_attempts: Mapped[int] = mapped_column(default=3)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200), doc="What its owner calls it.")
    tags: Mapped[list[str]] = mapped_column(
        JSONDoc, default=list, doc="Its owner's labels, for filtering (`web.schemas.Tag`)."
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    worker: Mapped[str | None] = mapped_column(
        String(200), doc="Hostname of the worker running it."
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(
        doc="When its message last went to the broker."
    )
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]


class JobEvent(Base):
    """One row per status change (and a few notable non-changes), the job's timeline."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)


class VerdictRow(Base):
    """The sandbox's verdict on program `index` of a verify job; unique, so a redelivered
    batch can never add a second row."""

    __tablename__ = "verdicts"
    __table_args__ = (UniqueConstraint("job_id", "index", name="uq_verdicts_job_id_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    passed: Mapped[int]
    total: Mapped[int]
    wall_seconds: Mapped[float] = mapped_column(Float)
    verdict: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MetricRow(Base):
    """One scalar of one step of a train, eval or SFT job (`reward`, `kl`, `eval/...`)."""

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("job_id", "step", "name", name="uq_metrics_job_id_step_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int]
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)


class ExperienceRow(Base):
    """One rollout of a training step: the experience buffer. Keyed by (job, step, prompt,
    sample), so a step replayed after a crash cannot add a second copy."""

    __tablename__ = "experiences"
    __table_args__ = (
        UniqueConstraint(
            "job_id", "step", "prompt_index", "sample_index", name="uq_experiences_key"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    step: Mapped[int]
    prompt_index: Mapped[int]
    sample_index: Mapped[int]
    problem_id: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    completion: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    truncated: Mapped[bool]
    reward: Mapped[float | None] = mapped_column(Float)
    reward_components: Mapped[dict[str, Any]]
    verdict: Mapped[str] = mapped_column(String(32))
    advantage: Mapped[float] = mapped_column(Float)
    logprob_mean: Mapped[float] = mapped_column(Float)
    extra: Mapped[dict[str, Any]]


class ArtifactRow(Base):
    """A file or directory a job wrote under the artifacts directory: checkpoints, the final
    adapter or weights, reports. `path` is relative to the artifacts directory."""

    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint("job_id", "kind", "path", name="uq_artifacts_job_id_kind_path"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    step: Mapped[int | None]
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

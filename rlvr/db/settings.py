"""Service settings, read from the environment in this one place.

Owns: every environment variable the web app, the workers, the reaper and the demo read,
but `RLVR_DATASETS_ROOT`, which `rlvr.tasks.sources` reads because the CLI runs tasks too.
Does not own: per-job configuration (that is the job's spec, stored on its row).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    database_url: str
    """`DATABASE_URL`: SQLAlchemy URL; a SQLite file under the data dir unless it names a Postgres."""
    redis_url: str
    """`REDIS_URL`: the Celery broker, the sync-verify result store and the queue markers."""
    data_dir: Path
    """`RLVR_DATA_DIR`: where the SQLite file and logs live (`.data/` in the project)."""
    web_bind: str
    """`RLVR_BIND`: host:port gunicorn listens on."""
    web_workers: int
    """`WEB_CONCURRENCY`: gunicorn worker processes."""
    web_threads: int
    """`RLVR_WEB_THREADS`: threads per gunicorn worker (a sync `POST /verify` holds one)."""
    secret_key: str
    """`SECRET_KEY`: signs the web session cookie and CSRF tokens."""
    max_body_bytes: int
    """`RLVR_MAX_BODY_BYTES`: larger request bodies get 413."""
    max_attempts: int
    """`RLVR_MAX_ATTEMPTS`: runs a job gets before a crash is final."""
    heartbeat_seconds: float
    """`RLVR_HEARTBEAT_SECONDS`: how often a running job touches its row."""
    stale_after_seconds: float
    """`RLVR_STALE_AFTER_SECONDS`: a running job silent this long is `crashed`."""
    reaper_seconds: float
    """`RLVR_REAPER_SECONDS`: how often beat runs the reaper."""
    resend_after_seconds: float
    """`RLVR_RESEND_AFTER_SECONDS`: a queued job or verify batch with no sign of its message
    in Redis for this long is sent again."""
    verify_batch_size: int
    """`RLVR_VERIFY_BATCH_SIZE`: programs per task on the verify queue (a spec may override)."""
    verify_soft_seconds: float
    """`RLVR_VERIFY_SOFT_SECONDS`: soft time limit of one verify task."""
    verify_hard_seconds: float
    """`RLVR_VERIFY_HARD_SECONDS`: hard time limit of one verify task (the process is killed)."""
    verify_max_deliveries: int
    """`RLVR_VERIFY_MAX_DELIVERIES`: a verify task delivered more often than this gives up."""
    visibility_timeout: float
    """`RLVR_VISIBILITY_TIMEOUT`: seconds before Redis hands an unacked verify message to
    another worker. Must exceed the hard limit; train messages are acked early and never wait on it."""
    sync_verify_max_programs: int
    """`RLVR_SYNC_VERIFY_MAX`: most programs one `POST /verify` may carry."""
    sync_verify_timeout: float
    """`RLVR_SYNC_VERIFY_TIMEOUT`: seconds `POST /verify` waits before answering 504."""


def _data_dir(env) -> Path:
    return Path(env.get("RLVR_DATA_DIR") or PROJECT_ROOT / ".data")


def sqlalchemy_url(url: str) -> str:
    """Points plain `postgres://` and `postgresql://` URLs at psycopg 3, the driver we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def load_settings(env=None) -> Settings:
    env = os.environ if env is None else env
    data_dir = _data_dir(env)
    hard = float(env.get("RLVR_VERIFY_HARD_SECONDS", 300))
    return Settings(
        database_url=sqlalchemy_url(env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'rlvr.sqlite3'}"),
        redis_url=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        data_dir=data_dir,
        web_bind=env.get("RLVR_BIND", "127.0.0.1:8000"),
        web_workers=int(env.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1))),
        web_threads=int(env.get("RLVR_WEB_THREADS", 4)),
        secret_key=env.get("SECRET_KEY", "dev-only-not-secret"),
        max_body_bytes=int(env.get("RLVR_MAX_BODY_BYTES", 8 << 20)),
        max_attempts=int(env.get("RLVR_MAX_ATTEMPTS", 3)),
        heartbeat_seconds=float(env.get("RLVR_HEARTBEAT_SECONDS", 5)),
        stale_after_seconds=float(env.get("RLVR_STALE_AFTER_SECONDS", 60)),
        reaper_seconds=float(env.get("RLVR_REAPER_SECONDS", 10)),
        resend_after_seconds=float(env.get("RLVR_RESEND_AFTER_SECONDS", 30)),
        verify_batch_size=int(env.get("RLVR_VERIFY_BATCH_SIZE", 16)),
        verify_soft_seconds=float(env.get("RLVR_VERIFY_SOFT_SECONDS", hard * 0.8)),
        verify_hard_seconds=hard,
        verify_max_deliveries=int(env.get("RLVR_VERIFY_MAX_DELIVERIES", 3)),
        visibility_timeout=float(env.get("RLVR_VISIBILITY_TIMEOUT", hard * 2)),
        sync_verify_max_programs=int(env.get("RLVR_SYNC_VERIFY_MAX", 32)),
        sync_verify_timeout=float(env.get("RLVR_SYNC_VERIFY_TIMEOUT", 60)),
    )


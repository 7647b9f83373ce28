"""Service settings: one typed object, read from the environment (and a `.env` file) here only.

Owns: every environment variable the web app, the workers, the reaper and the demo read,
but `RLVR_DATASETS_ROOT`, which `rlvr.tasks.sources` reads because the CLI runs tasks too.
Does not own: per-job configuration (that is the job's spec, stored on its row).

pydantic-settings does the parsing, so a bad value (`RLVR_MAX_ATTEMPTS=three`) stops the
process at start-up with the variable named, instead of failing later inside a request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rlvr.rewards.llm import JudgeEndpoint

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _env(name: str, default, description: str, **bounds):
    """A field read from the environment variable `name` (its own name is the attribute's)."""
    return Field(default, validation_alias=AliasChoices(name), description=description, **bounds)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, populate_by_name=False
    )

    data_dir: Path = _env(
        "RLVR_DATA_DIR",
        PROJECT_ROOT / ".data",
        "Where the SQLite file, beat schedule and logs live.",
    )
    database_url: str = _env(
        "DATABASE_URL",
        "",
        "SQLAlchemy URL; a SQLite file under the data dir unless it names a Postgres.",
    )
    redis_url: str = _env(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "The Celery broker, sync-verify results and queue markers.",
    )
    web_bind: str = _env("RLVR_BIND", "127.0.0.1:8000", "host:port gunicorn listens on.")
    web_workers: int = _env(
        "WEB_CONCURRENCY", 2 * (os.cpu_count() or 1), "gunicorn worker processes.", ge=1
    )
    web_threads: int = _env("RLVR_WEB_THREADS", 4, "Threads per gunicorn worker.", ge=1)
    secret_key: SecretStr = _env(
        "SECRET_KEY",
        "",
        "Signs the session cookie and CSRF tokens; unset, the web app makes one and keeps it "
        "in the data dir (`secret_key`, mode 0600), so every process of one machine shares it.",
    )
    secure_cookies: bool = _env(
        "RLVR_SECURE_COOKIES",
        False,
        "Mark the session cookie Secure on every response, not only on HTTPS requests.",
    )
    proxy_hops: int = _env(
        "RLVR_PROXY_HOPS",
        0,
        "Reverse proxies in front of the web app whose X-Forwarded-* headers are trusted "
        "(so a request that came in over HTTPS is known to be secure).",
        ge=0,
        le=5,
    )
    session_hours: float = _env(
        "RLVR_SESSION_HOURS",
        12.0,
        "A page session ends this long after sign-in (sooner at logout, or when "
        "the token it signed in with expires or is revoked).",
        gt=0,
    )
    metrics_token: SecretStr = _env(
        "RLVR_METRICS_TOKEN",
        "",
        "A bearer token that lets a scraper see the per-job `rlvr_train_*` gauges "
        "of /metrics (an admin's API token does too); without it /metrics has only aggregates.",
    )
    models_dir: Path | None = _env(
        "RLVR_MODELS_DIR",
        None,
        "The operator's models: `registered:<name>` in a spec is the folder <name> "
        "here. Default: `models` under the data dir.",
    )
    judge_endpoints: dict[str, JudgeEndpoint] = _env(
        "RLVR_JUDGE_ENDPOINTS",
        {},
        "The `llm_judge` endpoints a spec may name, as JSON: "
        '`{"name": {"url": "https://.../v1", "model": "...", "api_key": "..."}}`.',
    )
    max_file_bytes: int = _env(
        "RLVR_MAX_FILE_BYTES", 64 << 20, "Largest data file one upload may carry.", ge=1024
    )
    max_body_bytes: int = _env(
        "RLVR_MAX_BODY_BYTES", 8 << 20, "Larger request bodies get 413.", ge=1024
    )
    max_attempts: int = _env(
        "RLVR_MAX_ATTEMPTS", 3, "Runs a job gets before a crash is final.", ge=1
    )
    heartbeat_seconds: float = _env(
        "RLVR_HEARTBEAT_SECONDS", 5.0, "How often a running job touches its row.", gt=0
    )
    stale_after_seconds: float = _env(
        "RLVR_STALE_AFTER_SECONDS", 60.0, "A running job silent this long is `crashed`.", gt=0
    )
    reaper_seconds: float = _env(
        "RLVR_REAPER_SECONDS", 10.0, "How often beat runs the reaper.", gt=0
    )
    resend_after_seconds: float = _env(
        "RLVR_RESEND_AFTER_SECONDS",
        30.0,
        "A queued job or verify batch with no sign of its message in Redis for this long is sent again.",
        ge=0,
    )
    verify_batch_size: int = _env(
        "RLVR_VERIFY_BATCH_SIZE",
        16,
        "Programs per task on the verify queue (a spec may override).",
        ge=1,
    )
    verify_hard_seconds: float = _env(
        "RLVR_VERIFY_HARD_SECONDS",
        300.0,
        "Hard time limit of one verify task (the process is killed).",
        gt=0,
    )
    verify_soft_seconds: float | None = _env(
        "RLVR_VERIFY_SOFT_SECONDS",
        None,
        "Soft time limit of one verify task; default 0.8 x the hard one.",
        gt=0,
    )
    verify_max_deliveries: int = _env(
        "RLVR_VERIFY_MAX_DELIVERIES",
        3,
        "A verify task delivered more often than this gives up.",
        ge=1,
    )
    visibility_timeout: float | None = _env(
        "RLVR_VISIBILITY_TIMEOUT",
        None,
        "Seconds before Redis hands an unacked verify message to another worker; default 2 x the hard "
        "limit. Must exceed it; train messages are acked early and never wait on it.",
        gt=0,
    )
    sync_verify_max_programs: int = _env(
        "RLVR_SYNC_VERIFY_MAX", 32, "Most programs one `POST /verify` carries.", ge=1
    )
    sync_verify_timeout: float = _env(
        "RLVR_SYNC_VERIFY_TIMEOUT",
        60.0,
        "Seconds a `POST /verify` ticket waits for its verdicts before it reads `timeout`.",
        gt=0,
    )
    # Ceilings on what one spec may ask for (`service.limits`): each bounds a job's memory or time on
    # a shared pool, so a value past it is a 400 at submit and a refusal on the worker.
    max_steps: int = _env(
        "RLVR_MAX_STEPS", 10_000, "Most optimizer steps of a train or SFT job.", ge=1
    )
    max_samples_per_step: int = _env(
        "RLVR_MAX_SAMPLES_PER_STEP",
        1024,
        "Most completions one step generates: prompts_per_step x group_size of a train job, "
        "batch_size of an SFT job, batch_size and num_samples of an eval job.",
        ge=1,
    )
    max_new_tokens: int = _env(
        "RLVR_MAX_NEW_TOKENS", 4096, "Longest completion a spec may ask for.", ge=1
    )
    max_eval_problems: int = _env(
        "RLVR_MAX_EVAL_PROBLEMS",
        10_000,
        "Most held-out problems one eval (eval_size, num_problems) may judge.",
        ge=1,
    )
    max_passes_per_step: int = _env(
        "RLVR_MAX_PASSES_PER_STEP",
        16,
        "Most passes one train step makes: PPO epochs over its rollouts (algorithm.ppo_epochs), "
        "and extra rollout rounds of dynamic sampling (data.max_refills).",
        ge=1,
    )
    sandbox_max_seconds: float = _env(
        "RLVR_SANDBOX_MAX_SECONDS",
        60.0,
        "Most wall or CPU seconds one jail may be given (a request's limits.wall_seconds, cpu_seconds, "
        "test_seconds).",
        gt=0,
    )
    sandbox_max_memory_mb: int = _env(
        "RLVR_SANDBOX_MAX_MEMORY_MB", 2048, "Most memory one jail may be given, MB.", ge=32
    )
    sandbox_max_output_bytes: int = _env(
        "RLVR_SANDBOX_MAX_OUTPUT_BYTES",
        4 << 20,
        "Most output one jail may be given (limits.output_bytes).",
        ge=1024,
    )
    sandbox_max_pids: int = _env(
        "RLVR_SANDBOX_MAX_PIDS", 64, "Most processes and threads one jail may be given.", ge=2
    )
    sandbox_max_tmpfs_mb: int = _env(
        "RLVR_SANDBOX_MAX_TMPFS_MB", 64, "Largest /tmp one jail may be given, MB.", ge=1
    )
    user_max_queued: int = _env(
        "RLVR_USER_MAX_QUEUED",
        100,
        "Most queued jobs one user may have; a submit beyond is a 429 with Retry-After.",
        ge=1,
    )
    user_max_running: int = _env(
        "RLVR_USER_MAX_RUNNING",
        4,
        "Most train-pool jobs (train, SFT, eval) of one user running at once; a train worker skips "
        "the user's queued jobs while they are at it.",
        ge=1,
    )
    user_max_verify_calls: int = _env(
        "RLVR_USER_MAX_VERIFY_CALLS",
        4,
        "Most `POST /verify` tickets of one user being judged at once; beyond, a 429.",
        ge=1,
    )
    cancel_grace_seconds: float = _env(
        "RLVR_CANCEL_GRACE_SECONDS",
        120.0,
        "A job still running this long after its cancel was asked is killed by its worker.",
        gt=0,
    )
    kill_grace_seconds: float | None = _env(
        "RLVR_KILL_GRACE_SECONDS",
        None,
        "A job process whose heartbeat is silent this long is killed by its worker, and its job "
        "fails; default 3/4 of RLVR_STALE_AFTER_SECONDS, so the worker acts before the reaper "
        "requeues the job (a wedged step would wedge again).",
        gt=0,
    )
    # NoDecode: the variable is `0,1`, not the JSON list pydantic-settings would expect.
    gpus: Annotated[list[Annotated[int, Field(ge=0)]] | None, NoDecode] = _env(
        "RLVR_GPUS",
        None,
        "GPU indices a train worker owns, comma-separated (`0,1`): its pool process i runs each job with "
        "CUDA_VISIBLE_DEVICES set to the i-th alone, so `-c` may not exceed their number. Unset: jobs "
        "see whatever GPUs the worker sees.",
    )

    @field_validator("gpus", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()] or None
        return value

    @field_validator("gpus")
    @classmethod
    def _distinct(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"names a GPU twice: {value}; two pool processes would share it")
        return value

    @field_validator("judge_endpoints", mode="before")
    @classmethod
    def _parse_json(cls, value):
        # The environment's JSON is decoded by pydantic-settings; `load_settings(env)` passes text.
        return json.loads(value) if isinstance(value, str) else value

    mlflow_uris: str = _env(
        "RLVR_MLFLOW_URIS",
        "",
        "Comma-separated MLflow tracking URIs that a job's spec may name (the first is the default); "
        "empty: no job logs to MLflow. A spec's URI is an outbound request from a train worker, so it "
        "must be one of these, exactly.",
    )

    def mlflow_uri(self, requested: str | None) -> str:
        """The tracking URI a job logs to: `requested` if the operator allows it, else ValueError."""
        allowed = [uri.strip().rstrip("/") for uri in self.mlflow_uris.split(",") if uri.strip()]
        if not allowed:
            raise ValueError(
                "this service logs to no MLflow server (its operator has not set RLVR_MLFLOW_URIS)"
            )
        if requested is None:
            return allowed[0]
        if requested.rstrip("/") not in allowed:
            raise ValueError(
                f"{requested} is not an MLflow server this service logs to; allowed: {', '.join(allowed)}"
            )
        return requested.rstrip("/")

    @model_validator(mode="after")
    def _derived_defaults(self) -> Settings:
        # Defaults that depend on other settings; frozen models are filled in through __dict__.
        derived = {
            "database_url": sqlalchemy_url(
                self.database_url or f"sqlite:///{self.data_dir / 'rlvr.sqlite3'}"
            ),
            "verify_soft_seconds": self.verify_soft_seconds or self.verify_hard_seconds * 0.8,
            "visibility_timeout": self.visibility_timeout or self.verify_hard_seconds * 2,
            "models_dir": self.models_dir or self.data_dir / "models",
            "kill_grace_seconds": self.kill_grace_seconds or self.stale_after_seconds * 0.75,
        }
        self.__dict__.update(derived)
        return self


def sqlalchemy_url(url: str) -> str:
    """Points plain `postgres://` and `postgresql://` URLs at psycopg 3, the driver we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from the process environment and `.env`, or from `env` alone when given
    (tests and the demo build the environment of processes they start)."""
    if env is None:
        return Settings()
    names = {field.validation_alias.choices[0] for field in Settings.model_fields.values()}
    return Settings.model_validate({name: value for name, value in env.items() if name in names})

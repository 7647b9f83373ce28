"""What train, eval and SFT jobs write: step metrics, the experience buffer, artifacts.

Owns: the `metrics`, `experiences` and `artifacts` rows. Writes are idempotent (unique keys,
first row kept), and a resumed job first drops what it wrote after its last checkpoint, so
the rows always describe the run the model went through. On Postgres experiences go in with
COPY into a temporary table and one `INSERT ... ON CONFLICT DO NOTHING`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db.models import ArtifactRow, ExperienceRow, Job, MetricRow

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
EXPERIENCE_COLUMNS = (
    "job_id",
    "step",
    "prompt_index",
    "sample_index",
    "problem_id",
    "prompt",
    "completion",
    "prompt_tokens",
    "completion_tokens",
    "truncated",
    "reward",
    "reward_components",
    "verdict",
    "advantage",
    "logprob_mean",
    "extra",
)
_JSON_COLUMNS = {"reward_components", "extra"}


def save_metrics(session: Session, job_id: int, step: int, metrics: dict[str, float]) -> None:
    rows = [
        {"job_id": job_id, "step": step, "name": name, "value": float(value)}
        for name, value in metrics.items()
        if value is not None and value == value
    ]  # NaN: not stored
    if rows:
        insert = _INSERTS[session.get_bind().dialect.name]
        session.execute(
            insert(MetricRow)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["job_id", "step", "name"])
        )


def save_experiences(session: Session, job_id: int, records: Iterable[dict[str, Any]]) -> int:
    """Stores experience records (the dicts of `rlvr.callbacks.Experience`); returns how many."""
    rows = [_experience_row(job_id, r) for r in records]
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        _copy_experiences(session, rows)
    else:
        session.execute(
            sqlite.insert(ExperienceRow)
            .values(rows)
            .on_conflict_do_nothing(
                index_elements=["job_id", "step", "prompt_index", "sample_index"]
            )
        )
    return len(rows)


def _experience_row(job_id: int, record: dict[str, Any]) -> dict[str, Any]:
    row = {name: _text(record.get(name)) for name in EXPERIENCE_COLUMNS}
    row["job_id"] = job_id
    row["reward_components"] = _json(record.get("reward_components") or {})
    row["extra"] = _json(
        {
            **(record.get("extra") or {}),
            "logprob_sum": record.get("logprob_sum"),
            "temperature": record.get("temperature"),
        }
    )
    row["verdict"] = _text(str(record.get("verdict", "")))[:32]
    return row


def _text(value: Any) -> Any:
    # A model can generate NUL, which Postgres refuses in text and JSON; SQLite would keep it.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value).replace("\\u0000", "\\ufffd"))


def _copy_experiences(session: Session, rows: list[dict[str, Any]]) -> None:
    cursor = session.connection().connection.cursor()
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS experiences_in (LIKE experiences INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    columns = ", ".join(EXPERIENCE_COLUMNS)
    with cursor.copy(f"COPY experiences_in ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [json.dumps(row[c]) if c in _JSON_COLUMNS else row[c] for c in EXPERIENCE_COLUMNS]
            )
    cursor.execute(
        f"INSERT INTO experiences ({columns}) SELECT {columns} FROM experiences_in "
        "ON CONFLICT (job_id, step, prompt_index, sample_index) DO NOTHING"
    )
    cursor.execute("TRUNCATE experiences_in")


def drop_after(session: Session, job_id: int, step: int) -> None:
    """Forget metrics and experiences past `step`: a resumed job replays those steps."""
    for table in (MetricRow, ExperienceRow):
        session.execute(delete(table).where(table.job_id == job_id, table.step > step))


def series(
    session: Session, job_id: int, names: list[str] | None = None, after: int | None = None
) -> dict[str, list[list[float]]]:
    """`{name: [[step, value], ...]}` in step order; only steps past `after` when given."""
    query = select(MetricRow.name, MetricRow.step, MetricRow.value).where(
        MetricRow.job_id == job_id
    )
    if names:
        query = query.where(MetricRow.name.in_(names))
    if after is not None:
        query = query.where(MetricRow.step > after)
    out: dict[str, list[list[float]]] = {}
    for name, step, value in session.execute(query.order_by(MetricRow.step)):
        out.setdefault(name, []).append([step, value])
    return out


def by_step(
    session: Session, job_id: int, names: list[str] | None = None
) -> Iterator[dict[str, float]]:
    """`{"step": 3, "reward": 0.5, ...}` per step, in step order: a job's metrics as table rows."""
    query = select(MetricRow.step, MetricRow.name, MetricRow.value).where(
        MetricRow.job_id == job_id
    )
    if names:
        query = query.where(MetricRow.name.in_(names))
    row: dict[str, float] = {}
    for step, name, value in session.execute(query.order_by(MetricRow.step, MetricRow.name)):
        if row and row["step"] != step:
            yield row
            row = {}
        row.setdefault("step", step)
        row[name] = value
    if row:
        yield row


def latest_values(
    session: Session, job_ids: list[int], names: Iterable[str]
) -> dict[int, dict[str, float]]:
    """Per job, each of the named metrics at the latest step that has it."""
    latest = (
        select(MetricRow.job_id, MetricRow.name, func.max(MetricRow.step).label("step"))
        .where(MetricRow.job_id.in_(job_ids), MetricRow.name.in_(list(names)))
        .group_by(MetricRow.job_id, MetricRow.name)
        .subquery()
    )
    rows = session.execute(
        select(MetricRow.job_id, MetricRow.name, MetricRow.value).join(
            latest,
            and_(
                MetricRow.job_id == latest.c.job_id,
                MetricRow.name == latest.c.name,
                MetricRow.step == latest.c.step,
            ),
        )
    )
    out: dict[int, dict[str, float]] = {job_id: {} for job_id in job_ids}
    for job_id, name, value in rows:
        out[job_id][name] = value
    return out


def recent_step_seconds(
    session: Session, job_ids: list[int], last: int = 10
) -> dict[int, list[float]]:
    """Per job, the `step_time` the loop measured over its last `last` steps (by its progress)."""
    rows = session.execute(
        select(MetricRow.job_id, MetricRow.value)
        .join(Job, Job.id == MetricRow.job_id)
        .where(
            MetricRow.job_id.in_(job_ids),
            MetricRow.name == "step_time",
            MetricRow.step > Job.progress_done - last,
        )
    )
    out: dict[int, list[float]] = {job_id: [] for job_id in job_ids}
    for job_id, seconds in rows:
        out[job_id].append(seconds)
    return out


def unverified_rewards(session: Session, job_ids: list[int]) -> dict[int, int]:
    """Per job, its experiences whose reward is None (the verifier could not judge them)."""
    rows = session.execute(
        select(ExperienceRow.job_id, func.count())
        .where(ExperienceRow.job_id.in_(job_ids), ExperienceRow.reward.is_(None))
        .group_by(ExperienceRow.job_id)
    )
    return dict.fromkeys(job_ids, 0) | dict(rows.all())


def outcomes(session: Session, job_id: int, chunk: int = 2000) -> Iterator[dict[str, Any]]:
    """Step, reward, verdict and extra of each experience, without the texts: what
    `rlvr.analysis.error_patterns` reads. Read `chunk` rows at a time (a long job has many;
    keyset pages, since read sessions autocommit and cannot hold a server-side cursor)."""
    columns = (
        ExperienceRow.id,
        ExperienceRow.step,
        ExperienceRow.reward,
        ExperienceRow.verdict,
        ExperienceRow.extra,
    )
    last = 0
    while (
        rows := session.execute(
            select(*columns)
            .where(ExperienceRow.job_id == job_id, ExperienceRow.id > last)
            .order_by(ExperienceRow.id)
            .limit(chunk)
        )
        .mappings()
        .all()
    ):
        last = rows[-1]["id"]
        yield from (dict(row) for row in rows)


def experiences(
    session: Session,
    job_id: int,
    *,
    step: int | None = None,
    verdict: str | None = None,
    min_reward: float | None = None,
    max_reward: float | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[ExperienceRow]]:
    """(total matching, one page of rows) in (step, prompt, sample) order."""
    where = [ExperienceRow.job_id == job_id]
    if step is not None:
        where.append(ExperienceRow.step == step)
    if verdict is not None:
        where.append(ExperienceRow.verdict == verdict)
    if min_reward is not None:
        where.append(ExperienceRow.reward >= min_reward)
    if max_reward is not None:
        where.append(ExperienceRow.reward <= max_reward)
    total = session.scalar(select(func.count()).select_from(ExperienceRow).where(*where))
    rows = session.scalars(
        select(ExperienceRow)
        .where(*where)
        .order_by(ExperienceRow.step, ExperienceRow.prompt_index, ExperienceRow.sample_index)
        .limit(limit)
        .offset(offset)
    )
    return total, list(rows)


def count_experiences(session: Session, job_id: int) -> int:
    return session.scalar(select(func.count()).where(ExperienceRow.job_id == job_id))


def save_artifact(
    session: Session, job_id: int, kind: str, path: str, step: int | None = None
) -> None:
    insert = _INSERTS[session.get_bind().dialect.name]
    session.execute(
        insert(ArtifactRow)
        .values(job_id=job_id, kind=kind, path=path, step=step)
        .on_conflict_do_nothing(index_elements=["job_id", "kind", "path"])
    )


def artifacts(session: Session, job_id: int, kind: str | None = None) -> list[ArtifactRow]:
    query = select(ArtifactRow).where(ArtifactRow.job_id == job_id)
    if kind:
        query = query.where(ArtifactRow.kind == kind)
    return list(session.scalars(query.order_by(ArtifactRow.id)))

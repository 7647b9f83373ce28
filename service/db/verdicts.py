"""Verify verdicts of a job: idempotent writes and the summaries the API shows.

Owns: the `verdicts` rows. A row is keyed by (job, index); writing it twice keeps the first,
so a redelivered verify batch adds nothing. Verdicts arrive here as plain dicts (the
sandbox's `Verdict.model_dump(mode="json")`), which keeps this package free of `sandbox`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db.models import VerdictRow

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def save(session: Session, job_id: int, verdicts: dict[int, dict[str, Any]]) -> None:
    """Stores verdicts by program index, keeping the first row for an index already stored."""
    if not verdicts:
        return
    insert = _INSERTS[session.get_bind().dialect.name]
    rows = [
        {
            "job_id": job_id,
            "index": i,
            "status": v["status"],
            "passed": v["passed"],
            "total": v["total"],
            "wall_seconds": v["wall_seconds"],
            "verdict": v,
        }
        for i, v in verdicts.items()
    ]
    session.execute(
        insert(VerdictRow).values(rows).on_conflict_do_nothing(index_elements=["job_id", "index"])
    )


def count(session: Session, job_id: int) -> int:
    return session.scalar(select(func.count()).where(VerdictRow.job_id == job_id))


def missing(session: Session, job_id: int, indices: range) -> list[int]:
    have = set(
        session.scalars(
            select(VerdictRow.index).where(
                VerdictRow.job_id == job_id,
                VerdictRow.index >= indices.start,
                VerdictRow.index < indices.stop,
            )
        )
    )
    return [i for i in indices if i not in have]


def summary(session: Session, job_id: int) -> dict[str, Any]:
    """Counts by verdict status, programs that passed all their tests, and the pass rate among
    programs the sandbox could judge (a `sandbox_error` is not a failure)."""
    by_status = dict(
        session.execute(
            select(VerdictRow.status, func.count())
            .where(VerdictRow.job_id == job_id)
            .group_by(VerdictRow.status)
        ).all()
    )
    all_passed = session.scalar(
        select(func.count()).where(
            VerdictRow.job_id == job_id,
            VerdictRow.status == "ok",
            VerdictRow.total > 0,
            VerdictRow.passed == VerdictRow.total,
        )
    )
    judged = sum(by_status.values()) - by_status.get("sandbox_error", 0)
    return {
        "programs": sum(by_status.values()),
        "all_passed": all_passed,
        "pass_rate": round(all_passed / judged, 4) if judged else None,
        "by_status": by_status,
    }


def latency_histogram(session: Session) -> tuple[list[tuple[float, int]], int, float]:
    """Cumulative (le, count) buckets of per-program sandbox wall time, the count and the sum."""
    columns = [
        func.sum(case((VerdictRow.wall_seconds <= le, 1), else_=0)) for le in LATENCY_BUCKETS
    ]
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(VerdictRow.wall_seconds), 0.0), *columns)
    ).one()
    count, total, *cumulative = row
    return (
        [(le, int(c or 0)) for le, c in zip(LATENCY_BUCKETS, cumulative)],
        int(count),
        float(total),
    )

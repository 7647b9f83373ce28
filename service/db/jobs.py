"""The job lifecycle: every status change is a guarded UPDATE plus a `job_events` row.

Owns: which transitions exist and what they write. A transition names the states it may
start from; the UPDATE's `WHERE status IN (...)` makes it happen at most once however many
processes race for it, which is what lets a redelivered message or a second reaper run
harmlessly. Does not own: sending messages (the worker and web layers do that after commit).

    queued -> running -> succeeded | failed | cancelled
    queued -> cancelled;  running -> cancelling -> cancelled
    running | cancelling -> crashed -> queued (attempts left) | cancelled (cancel was asked)
    failed | cancelled | crashed -> queued (resumed by its owner: the same job, from its checkpoint)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.models import Job, JobEvent, utcnow

ACTIVE = ("running", "cancelling")
TERMINAL = ("succeeded", "failed", "cancelled", "crashed")
RESUMABLE = ("failed", "cancelled", "crashed")


def transition(
    session: Session,
    job_id: int,
    to: str,
    *,
    from_: tuple[str, ...],
    where=(),
    message: str | None = None,
    **values,
) -> bool:
    """Moves the job to `to` if its status is in `from_` (and `where` holds); True if it moved."""
    now = utcnow()
    moved = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(from_), *where)
        .values(status=to, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved:
        session.add(JobEvent(job_id=job_id, status=to, message=message, at=now))
    return bool(moved)


def submit(
    session: Session,
    *,
    user_id: int,
    kind: str,
    spec: dict[str, Any],
    total: int,
    max_attempts: int,
    idempotency_key: str | None = None,
    parent_id: int | None = None,
    message: str | None = None,
) -> tuple[Job, bool]:
    """Adds a queued job, or returns the user's job with the same idempotency key (False).
    `message` is its first event's text (default: "submitted", or "retry of job N")."""
    if idempotency_key is not None and (existing := by_key(session, user_id, idempotency_key)):
        return existing, False
    job = Job(
        user_id=user_id,
        kind=kind,
        spec=spec,
        progress_total=total,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        parent_id=parent_id,
        status="queued",
    )
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        if idempotency_key is None:
            raise
        return by_key(session, user_id, idempotency_key), False  # a concurrent submit won the race
    message = message or (f"retry of job {parent_id}" if parent_id else "submitted")
    session.add(JobEvent(job_id=job.id, status="queued", message=message, at=job.created_at))
    return job, True


def by_key(session: Session, user_id: int, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.user_id == user_id, Job.idempotency_key == key))


def queued_count(session: Session, user_id: int) -> int:
    """The user's queued jobs, of every kind (what `RLVR_USER_MAX_QUEUED` caps)."""
    return session.scalar(
        select(func.count()).where(Job.user_id == user_id, Job.status == "queued")
    )


def kind_of(session: Session, job_id: int) -> str:
    return session.scalar(select(Job.kind).where(Job.id == job_id))


def mark_sent(session: Session, job_id: int) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(sent_at=utcnow()))


def claim(session: Session, job_id: int, worker: str) -> bool:
    """queued -> running for exactly one caller; counts the attempt and starts the heartbeat."""
    now = utcnow()
    return transition(
        session,
        job_id,
        "running",
        from_=("queued",),
        message=f"claimed by {worker}",
        attempt=Job.attempt + 1,
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        error=None,
    )


def claim_next(
    session: Session, worker: str, *, kinds: tuple[str, ...], max_running: int
) -> int | None:
    """Claims, for `worker`, the oldest queued job (of `kinds`) of the user with the fewest
    running ones, skipping users who already run `max_running`; returns its id, or None.

    Fair share instead of FIFO: one user's thousand queued jobs wait behind each other user's
    next one, not in front of it (issue 14). Users running as many break the tie by who was
    served longest ago (their latest start), so on a single worker the users take turns. A
    few candidates are tried in turn, since another worker may claim the first one between
    the SELECT and the guarded UPDATE.
    """
    running = (
        select(Job.user_id, func.count().label("jobs"))
        .where(Job.status.in_(ACTIVE), Job.kind.in_(kinds))
        .group_by(Job.user_id)
        .subquery()
    )
    served = (
        select(Job.user_id, func.max(Job.started_at).label("last"))
        .where(Job.kind.in_(kinds), Job.started_at.is_not(None))
        .group_by(Job.user_id)
        .subquery()
    )
    load = func.coalesce(running.c.jobs, 0)
    candidates = session.scalars(
        select(Job.id)
        .outerjoin(running, running.c.user_id == Job.user_id)
        .outerjoin(served, served.c.user_id == Job.user_id)
        .where(Job.status == "queued", Job.kind.in_(kinds), load < max_running)
        .order_by(load, served.c.last.asc().nulls_first(), Job.id)
        .limit(8)
    ).all()
    for job_id in candidates:
        if claim(session, job_id, worker):
            return job_id
    return None


def beat(session: Session, job_id: int) -> str | None:
    """Touches the heartbeat of an active job; returns its status (`cancelling` means stop)."""
    return session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(heartbeat_at=utcnow())
        .returning(Job.status)
    ).scalar_one_or_none()


def set_progress(session: Session, job_id: int, done: int) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(progress_done=done))


def finish(
    session: Session,
    job_id: int,
    status: str,
    *,
    result=None,
    error: str | None = None,
    where=(),
) -> bool:
    return transition(
        session,
        job_id,
        status,
        from_=ACTIVE,
        where=where,
        message=error,
        result=result,
        error=error,
        finished_at=utcnow(),
    )


def cancel(session: Session, job_id: int) -> bool:
    """A queued job is cancelled at once; a running one is asked to wind down."""
    if transition(
        session,
        job_id,
        "cancelled",
        from_=("queued",),
        message="cancelled before it ran",
        finished_at=utcnow(),
    ):
        return True
    return transition(session, job_id, "cancelling", from_=("running",), message="cancel requested")


def resume(session: Session, job_id: int, *, kinds: tuple[str, ...], attempts: int) -> bool:
    """A stopped job (cancelled, crashed or failed) of one of `kinds` goes back to the queue as
    the same job; its worker picks up from the last checkpoint in its run directory. The
    next claim counts its attempt, and it gets `attempts` more runs before a crash is final."""
    job = session.get(Job, job_id)
    if job is None:
        return False
    return transition(
        session,
        job_id,
        "queued",
        from_=RESUMABLE,
        where=(Job.kind.in_(kinds),),
        message=f"resumed by its owner for attempt {job.attempt + 1}",
        max_attempts=Job.attempt + attempts,
        error=None,
        result=None,
        finished_at=None,
    )


def reap(session: Session, *, stale_after: timedelta, now: datetime | None = None) -> list[int]:
    """Marks active jobs with a stale heartbeat `crashed`; returns the ids requeued for a retry."""
    cutoff = (now or utcnow()) - stale_after
    stale = session.execute(
        select(Job.id, Job.status).where(Job.status.in_(ACTIVE), Job.heartbeat_at < cutoff)
    ).all()
    requeued = []
    for job_id, status in stale:
        # Guarded on the heartbeat too: a job that beat since the SELECT is alive after all.
        if not transition(
            session,
            job_id,
            "crashed",
            from_=(status,),
            where=(Job.heartbeat_at < cutoff,),
            message=f"no heartbeat since {cutoff:%H:%M:%S} UTC",
        ):
            continue
        job = session.get(Job, job_id, populate_existing=True)
        if status == "cancelling":
            transition(
                session,
                job_id,
                "cancelled",
                from_=("crashed",),
                message="worker lost while cancelling",
                finished_at=utcnow(),
            )
        elif job.attempt < job.max_attempts:
            transition(
                session,
                job_id,
                "queued",
                from_=("crashed",),
                message=f"requeued for attempt {job.attempt + 1} of {job.max_attempts}",
            )
            requeued.append(job_id)
        else:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    error=f"worker lost on each of {job.attempt} attempts", finished_at=utcnow()
                )
            )
    return requeued


def unsent_since(session: Session, before: datetime) -> list[int]:
    """Queued jobs whose message was last sent before `before` (or never)."""
    return list(
        session.scalars(
            select(Job.id).where(
                Job.status == "queued", (Job.sent_at.is_(None)) | (Job.sent_at < before)
            )
        )
    )


def still_queued(session: Session, job_ids: list[int]) -> list[int]:
    return list(session.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.status == "queued")))

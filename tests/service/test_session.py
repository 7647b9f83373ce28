"""`Database.prepare`: the hot-path reads on the driver's connection give what SQLAlchemy gives."""

from sqlalchemy import bindparam, select, update

from service.db import Job, jobs
from service.db.models import utcnow

_jobs = Job.__table__
STATUS = select(*[c for c in _jobs.c if c.name != "spec"]).where(_jobs.c.id == bindparam("job_id"))


def test_a_prepared_read_returns_what_a_connection_returns(db, make_user):
    user_id, _ = make_user()
    with db.begin() as session:
        job, _ = jobs.submit(
            session, user_id=user_id, kind="verify", spec={"requests": []}, total=3, max_attempts=2
        )
    with (
        db.begin() as session
    ):  # a JSON result, timestamps and NULLs: the types with result processors
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(result={"passed": 2, "nested": [1, None]}, started_at=utcnow(), error="é\n")
        )
    with db.engine.connect() as conn:
        expected = conn.execute(STATUS, {"job_id": job.id}).one()
    row = db.prepare(STATUS).one_or_none(job_id=job.id)
    assert row == tuple(expected)
    assert row._asdict() == expected._asdict()
    assert row.result == {"passed": 2, "nested": [1, None]} and row.finished_at is None
    assert db.prepare(STATUS).one_or_none(job_id=job.id + 1000) is None


def test_a_prepared_read_leaves_no_transaction_open_and_sees_new_commits(db, make_user):
    user_id, _ = make_user()
    with db.begin() as session:
        job, _ = jobs.submit(
            session, user_id=user_id, kind="verify", spec={"requests": []}, total=3, max_attempts=2
        )
    prepared = db.prepare(STATUS)
    assert db.prepare(STATUS) is prepared  # compiled once
    assert prepared.one_or_none(job_id=job.id).status == "queued"
    with db.begin() as session:  # a writer is not blocked by the read, and the next read sees it
        assert jobs.claim(session, job.id, "w1")
    assert prepared.one_or_none(job_id=job.id).status == "running"
    if db.dialect == "postgresql":  # the pooled connection went back in its transactional mode
        with db.begin() as session:
            assert session.connection().connection.driver_connection.autocommit is False

"""The JSON API under /api/v1. Each view: authenticate, validate, call, shape the reply."""

from __future__ import annotations

from celery.exceptions import TimeoutError as CeleryTimeout
from flask import Blueprint, Response, g, jsonify, request, url_for
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from service import queues
from service.db import Job, JobEvent, VerdictRow
from web import actions, monitoring, reader, services
from web.auth import find_job_row, job_or_404, token_required, visible_jobs
from web.errors import ApiError, field_errors
from web.openapi import openapi_document
from web.replies import reply
from web.schemas import (EventList, EventOut, Health, IndexedVerdict, JobOut, JobPage, JobQuery, JobSubmission,
                         PageQuery, Stats, VerdictPage, VerifyBody)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid request", "the body must be a JSON object")
    return data


@bp.post("/jobs")
@token_required
def submit_job():
    submission = JobSubmission.model_validate(body())
    try:
        job, created = actions.submit(g.user, submission.kind, submission.spec,
                                      idempotency_key=request.headers.get("Idempotency-Key"))
    except ValidationError as exc:
        raise ApiError(400, "invalid spec", field_errors(exc, prefix=("spec",))) from None
    return reply(JobOut.of(job), 201 if created else 200, Location=url_for("api.get_job", job_id=job.id))


@bp.get("/jobs")
@token_required
def list_jobs():
    query = JobQuery.model_validate(request.args.to_dict())
    jobs = visible_jobs(g.user).options(defer(Job.spec))  # specs can be megabytes each
    if query.status:
        jobs = jobs.where(Job.status == query.status)
    if query.kind:
        jobs = jobs.where(Job.kind == query.kind)
    total = reader().scalar(select(func.count()).select_from(jobs.subquery()))
    page = reader().scalars(jobs.order_by(Job.id.desc()).limit(query.limit).offset(query.offset))
    items = [JobOut.of(job) for job in page]
    return reply(JobPage(jobs=items, total=total, limit=query.limit, offset=query.offset))


@bp.get("/jobs/<int:job_id>")
@token_required
def get_job(job_id: int):
    job = find_job_row(g.user, job_id)
    if job is None:
        raise ApiError(404, "not found", f"no job {job_id}")
    return reply(JobOut.of(job))


@bp.get("/jobs/<int:job_id>/events")
@token_required
def job_events(job_id: int):
    job_or_404(job_id)
    events = reader().scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
    return reply(EventList(events=[EventOut.model_validate(e) for e in events]))


@bp.get("/jobs/<int:job_id>/verdicts")
@token_required
def job_verdicts(job_id: int):
    """A verify job's verdicts by program index, as far as they have come in."""
    query = PageQuery.model_validate(request.args.to_dict())
    job_or_404(job_id)
    rows = reader().scalars(select(VerdictRow).where(VerdictRow.job_id == job_id).order_by(VerdictRow.index)
                            .limit(query.limit).offset(query.offset))
    items = [IndexedVerdict(index=row.index, verdict=row.verdict) for row in rows]
    total = reader().scalar(select(func.count()).where(VerdictRow.job_id == job_id))
    return reply(VerdictPage(verdicts=items, total=total, limit=query.limit, offset=query.offset))


@bp.post("/jobs/<int:job_id>/cancel")
@token_required
def cancel_job(job_id: int):
    job = job_or_404(job_id)
    actions.cancel(job)
    reader().refresh(job)
    return reply(JobOut.of(job), 202)


@bp.post("/jobs/<int:job_id>/retry")
@token_required
def retry_job(job_id: int):
    new = actions.retry(g.user, job_or_404(job_id))
    return reply(JobOut.of(new), 201, Location=url_for("api.get_job", job_id=new.id))


@bp.post("/verify")
@token_required
def verify_now():
    """Judges a small batch synchronously on the verify pool, for trainers outside the service."""
    settings = services().settings
    requests = VerifyBody.model_validate(body()).requests
    if len(requests) > settings.sync_verify_max_programs:
        raise ApiError(413, "too many programs", f"at most {settings.sync_verify_max_programs} per call; "
                                                 "submit a verify job for more")
    message = queues.send_requests(services(), [r.model_dump(mode="json") for r in requests])
    try:
        verdicts = message.get(timeout=settings.sync_verify_timeout)
    except CeleryTimeout:
        message.revoke()
        raise ApiError(504, "timeout", f"no verdicts within {settings.sync_verify_timeout:g}s") from None
    return jsonify(verdicts=verdicts)


@bp.get("/health")
def health():
    report = Health.model_validate(monitoring.health(services()))
    return reply(report, 200 if report.status == "ok" else 503)


@bp.get("/metrics")
def metrics():
    return Response(monitoring.metrics_text(services()), mimetype="text/plain; version=0.0.4")


@bp.get("/stats")
@token_required
def stats():
    return reply(Stats.model_validate(monitoring.stats(services(), owner=None if g.user.is_admin else g.user.id)))


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())

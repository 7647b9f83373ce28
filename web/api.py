"""The JSON API under /api/v1. Each view: `token_required` authenticates, `web.openapi.operation`
documents it and validates the query and body its signature names, the view calls and shapes the reply."""

from __future__ import annotations

import uuid

from flask import Blueprint, g, jsonify, url_for
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from service import limits, verify_calls
from service.db import Job, JobEvent, VerdictRow
from service.kinds import VerifyJobSpec
from web import actions, listing, monitoring, scrape
from web.auth import find_job_row, job_or_404, token_required
from web.context import reader, services
from web.errors import ApiError, field_errors, invalid, spec_errors
from web.openapi import document, operation
from web.replies import reply
from web.schemas import (
    EventList,
    EventOut,
    Health,
    IndexedVerdict,
    JobDetail,
    JobDetailQuery,
    JobLabelsPatch,
    JobOut,
    JobPage,
    JobQuery,
    JobSubmission,
    PageQuery,
    Stats,
    SubmitHeaders,
    VerdictPage,
    VerifyBody,
    VerifyTicket,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.post("/jobs")
@token_required
@operation(
    "jobs",
    {201: (JobOut, "Created"), 200: (JobOut, "A retried submit: the job its Idempotency-Key made")},
    errors=[413, 429],
)
def submit_job(json: JobSubmission, headers: SubmitHeaders):
    """Submit a job

    `kind` picks the model `spec` must match; `name` and `tags` are optional. The job is
    queued; poll it, or follow its events. Besides each field's own bounds, the operator's
    ceilings apply (a 400 naming the field): `RLVR_MAX_STEPS`, `RLVR_MAX_SAMPLES_PER_STEP`
    (prompts_per_step x group_size, batch_size, num_samples), `RLVR_MAX_NEW_TOKENS`,
    `RLVR_MAX_EVAL_PROBLEMS`, `RLVR_SANDBOX_MAX_*` (a jail's limits); a reward's `pattern`
    must be a regex RE2 accepts. A user with `RLVR_USER_MAX_QUEUED` jobs queued gets a 429
    with Retry-After.
    """
    submission = json.root
    with spec_errors():
        job, created = actions.submit(
            g.user,
            submission.kind,
            submission.spec,
            idempotency_key=headers.idempotency_key,
            labels=submission,
        )
    return reply(
        JobOut.of(job), 201 if created else 200, Location=url_for("api.get_job", job_id=job.id)
    )


@bp.get("/jobs")
@token_required
@operation("jobs", {200: JobPage})
def list_jobs(query: JobQuery):
    """Your jobs, newest first (an admin's: everyone's), by state, kind, tag or a word of the name"""
    jobs = listing.filtered(g.user, query.status, query.kind, query.tag, query.q)
    jobs = jobs.options(defer(Job.spec))  # specs can be megabytes each
    total = reader().scalar(select(func.count()).select_from(jobs.subquery()))
    page = reader().scalars(jobs.order_by(Job.id.desc()).limit(query.limit).offset(query.offset))
    items = [JobOut.of(job) for job in page]
    return reply(JobPage(jobs=items, total=total, limit=query.limit, offset=query.offset))


@bp.get("/jobs/<int:job_id>")
@token_required
@operation("jobs", {200: JobDetail}, errors=[404])
def get_job(job_id: int, query: JobDetailQuery):
    """A job's spec, name, tags, status, progress, attempts and result

    `spec=false` leaves the spec out (it can be megabytes), as the job page does while it polls.
    """
    job = find_job_row(g.user, job_id)
    if job is None:
        raise ApiError(404, "not found", f"no job {job_id}")
    spec = reader().scalar(select(Job.spec).where(Job.id == job_id)) if query.spec else None
    return reply(JobDetail(**JobOut.of(job).model_dump(), spec=spec))


@bp.patch("/jobs/<int:job_id>")
@token_required
@operation("jobs", {200: JobOut}, errors=[403, 404])
def relabel_job(job_id: int, json: JobLabelsPatch):
    """Rename or retag a job

    Only its owner may (403 for an admin looking at someone else's). Fields left out keep
    their value; `tags` replaces the whole list.
    """
    return reply(JobOut.of(actions.relabel(g.user, job_or_404(job_id), json)))


@bp.get("/jobs/<int:job_id>/events")
@token_required
@operation("jobs", {200: EventList}, errors=[404])
def job_events(job_id: int):
    """A job's timeline"""
    job_or_404(job_id)
    events = reader().scalars(
        select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
    )
    return reply(EventList(events=[EventOut.model_validate(e) for e in events]))


@bp.get("/jobs/<int:job_id>/verdicts")
@token_required
@operation("jobs", {200: VerdictPage}, errors=[404])
def job_verdicts(job_id: int, query: PageQuery):
    """A verify job's verdicts by program index, as far as they have come in"""
    job_or_404(job_id)
    rows = reader().scalars(
        select(VerdictRow)
        .where(VerdictRow.job_id == job_id)
        .order_by(VerdictRow.index)
        .limit(query.limit)
        .offset(query.offset)
    )
    items = [IndexedVerdict(index=row.index, verdict=row.verdict) for row in rows]
    total = reader().scalar(select(func.count()).where(VerdictRow.job_id == job_id))
    return reply(VerdictPage(verdicts=items, total=total, limit=query.limit, offset=query.offset))


@bp.post("/jobs/<int:job_id>/cancel")
@token_required
@operation("jobs", {202: JobOut}, errors=[404, 409])
def cancel_job(job_id: int):
    """Cancel a queued job at once, a running one at its next step (`cancelling`)"""
    job = job_or_404(job_id)
    actions.cancel(job)
    reader().refresh(job)
    return reply(JobOut.of(job), 202)


@bp.post("/jobs/<int:job_id>/retry")
@token_required
@operation("jobs", {201: JobOut}, errors=[404, 409, 429])
def retry_job(job_id: int):
    """Run a finished job again as a new job, its `parent_id` set

    409 also when the job's spec names what its user may not name any more (a path, another
    user's file), each such field listed as `spec.<path>`.
    """
    try:
        new = actions.retry(g.user, job_or_404(job_id))
    except ValidationError as exc:  # a spec stored before a rule existed meets it now
        raise ApiError(409, "conflict", field_errors(exc, prefix=("spec",))) from None
    return reply(JobOut.of(new), 201, Location=url_for("api.get_job", job_id=new.id))


@bp.post("/verify")
@token_required
@operation("verify", {202: VerifyTicket}, errors=[413, 429])
def verify_now(json: VerifyBody):
    """Judge a small batch, ahead of queued job batches

    On the verify pool, for trainers outside the service: 202 with a ticket at once; poll
    `GET /verify/<id>` for the verdicts. At most `RLVR_SYNC_VERIFY_MAX` programs, each within
    the operator's sandbox ceilings (`RLVR_SANDBOX_MAX_*`, a 400 naming the field), and at most
    `RLVR_USER_MAX_VERIFY_CALLS` tickets of yours being judged at once (429 with Retry-After).
    """
    svc = services()
    settings = svc.settings
    requests = json.requests
    if len(requests) > settings.sync_verify_max_programs:
        raise ApiError(
            413,
            "too many programs",
            f"at most {settings.sync_verify_max_programs} per call; submit a verify job for more",
        )
    try:
        limits.check(VerifyJobSpec(requests=requests), settings, title="VerifyBody")
    except ValidationError as exc:
        raise invalid(field_errors(exc)) from None
    try:
        ticket = verify_calls.open_ticket(
            svc, g.user.id, [r.model_dump(mode="json") for r in requests]
        )
    except verify_calls.Busy as busy:
        raise ApiError(
            429,
            "too many verify calls",
            f"{busy.open_tickets} of your verify calls are being judged, the most one user may "
            "(RLVR_USER_MAX_VERIFY_CALLS); read their verdicts first",
            headers={"Retry-After": str(VERIFY_RETRY_AFTER_SECONDS)},
        ) from None
    return reply(
        VerifyTicket(id=ticket, status="pending"),
        202,
        Location=url_for("api.verify_ticket", ticket=uuid.UUID(ticket)),
    )


VERIFY_RETRY_AFTER_SECONDS = 2
"""What a 429 for too many verify calls asks a client to wait: about one small batch's run."""


@bp.get("/verify/<uuid:ticket>")
@token_required
@operation("verify", {200: VerifyTicket}, errors=[404])
def verify_ticket(ticket: uuid.UUID):
    """A verify call's verdicts, once judged

    `pending` until the verify pool has judged every program; `timeout` after
    `RLVR_SYNC_VERIFY_TIMEOUT` seconds without verdicts. Someone else's ticket is a 404.
    """
    found = verify_calls.read_ticket(services(), g.user.id, str(ticket))
    if found is None:
        raise ApiError(404, "not found", f"no verify call {ticket}")
    return reply(VerifyTicket.model_validate(found))


@bp.get("/health")
@operation("monitoring", {200: (Health, "Healthy"), 503: (Health, "Degraded: a probe failed")})
def health():
    """Database, Redis and live workers per queue"""
    report = Health.model_validate(monitoring.health(services()))
    return reply(report, 200 if report.status == "ok" else 503)


@bp.get("/metrics")
@operation("monitoring", {200: ("text/plain", "Prometheus text format 0.0.4")})
def metrics():
    """Prometheus metrics

    Jobs by state, queue depths and verify latency for anyone; the `rlvr_train_*` gauges of
    running train/SFT jobs by `job_id` only with `Authorization: Bearer` and the operator's
    `RLVR_METRICS_TOKEN` or an admin's token.
    """
    return scrape.metrics_reply()


@bp.get("/stats")
@token_required
@operation("monitoring", {200: Stats})
def stats():
    """Counts of your jobs (an admin's: all), queues and verified programs; your running train/SFT jobs' progress"""
    return reply(
        Stats.model_validate(
            monitoring.stats(services(), owner=None if g.user.is_admin else g.user.id)
        )
    )


@bp.get("/openapi.json")
@operation("docs", {200: ("application/json", "OpenAPI 3.1")})
def openapi():
    """This document"""
    return jsonify(document())

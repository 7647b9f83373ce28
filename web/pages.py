"""HTML pages: sign in with a token, the job list, a submit form per kind, the job page, a
training job's rollout browser and the compare page.

The job and compare pages draw their live parts (status, progress, timeline, metric
charts) with small scripts in web/static that read the JSON API with the session cookie;
everything else is rendered here and works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import defer

from rlvr.verifier import CodeGrade, TestResult
from service.db import Job, JobEvent, VerdictRow, accounts, jobs, training
from service.db.models import JOB_STATES
from service.kinds import KINDS
from web import actions
from web.auth import find_job, login_required, visible_jobs
from web.context import services
from web.errors import ApiError
from web.forms import JobForm, SpecForm, form_for
from web.security import safe_next
from web.training_api import ExperienceQuery

bp = Blueprint("pages", __name__)

CHART_METRICS = (
    "reward",
    "pass_rate",
    "kl",
    "entropy",
    "completions/mean_length",
    "loss",
    "eval/greedy/pass_rate",
    "verify_time",
    "verify_wait_time",
)
CLONABLE_KINDS = ("train", "sft", "eval")
ROLLOUTS_PER_PAGE = 20
VERDICTS = ("pass", "fail", "error")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        svc = services()
        with svc.db.begin() as s:
            found = accounts.credential_for_token(s, request.form.get("token", "").strip())
            key = found and accounts.start_session(
                s, found, timedelta(hours=svc.settings.session_hours)
            )
        if found is not None:
            session.clear()  # a fresh cookie: nothing from before sign-in carries over
            session["sid"] = key
            return redirect(safe_next(request.args.get("next")) or url_for(".jobs_list"))
        flash("Unknown token (or it expired, or was revoked).")
    return render_template("login.html")


@bp.post("/logout")
def logout():
    if isinstance(key := session.get("sid"), str):
        with services().db.begin() as s:
            accounts.end_session(s, key)
    session.clear()
    return redirect(url_for(".login"))


@bp.get("/")
@bp.get("/jobs")
@login_required
def jobs_list():
    status, kind = request.args.get("status") or None, request.args.get("kind") or None
    query = visible_jobs(g.user).options(defer(Job.spec))  # specs can be megabytes each
    if status in JOB_STATES:
        query = query.where(Job.status == status)
    if kind in KINDS:
        query = query.where(Job.kind == kind)
    with services().db.read() as s:
        rows = s.scalars(query.order_by(Job.id.desc()).limit(100)).all()
    moving = any(job.status not in jobs.TERMINAL for job in rows)
    return render_template(
        "jobs.html",
        jobs=rows,
        states=JOB_STATES,
        kinds=KINDS,
        status=status,
        kind=kind,
        refresh=moving,
    )


@bp.route("/jobs/new/<kind>", methods=["GET", "POST"])
@login_required
def submit(kind: str):
    if kind not in KINDS:
        abort(404)
    return _form_page(form_for(kind), kind, lambda spec: actions.submit(g.user, kind, spec)[0])


@bp.route("/jobs/<int:job_id>/clone", methods=["GET", "POST"])
@login_required
def clone(job_id: int):
    """A new job from this one's spec as YAML, edited; a field deleted keeps this job's value."""
    with services().db.read() as s:
        job = find_job(s, g.user, job_id) or abort(404)
    if job.kind not in CLONABLE_KINDS:
        abort(404)
    return _form_page(
        SpecForm.filled(job.spec),
        job.kind,
        lambda spec: actions.clone(g.user, job, spec),
        heading=f"Clone job #{job.id} with edits",
    )


def _form_page(form: JobForm, kind: str, create: Callable[[dict], Job], heading: str | None = None):
    """The form; a valid POST calls `create(spec)` and goes to the new job's page."""
    if form.validate_on_submit():
        try:
            return redirect(url_for(".job_page", job_id=create(form.to_spec()).id))
        except ValidationError as exc:
            form.place_errors(exc)
    status = 200 if request.method == "GET" else 400
    return render_template("submit.html", form=form, kind=kind, heading=heading), status


@bp.get("/jobs/<int:job_id>")
@login_required
def job_page(job_id: int):
    with services().db.read() as s:
        job = find_job(s, g.user, job_id, defer(Job.spec)) or abort(404)
        events = s.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ).all()
        verdicts = s.scalars(
            select(VerdictRow)
            .where(VerdictRow.job_id == job_id)
            .order_by(VerdictRow.index)
            .limit(50)
        ).all()
    return render_template(
        "job.html",
        job=job,
        events=events,
        verdicts=verdicts,
        chart_metrics=CHART_METRICS if job.kind != "verify" else (),
        terminal=jobs.TERMINAL,
        resumable=job.kind in actions.RESUMABLE_KINDS and job.status in jobs.RESUMABLE,
        clonable=job.kind in CLONABLE_KINDS,
    )


@bp.post("/jobs/<int:job_id>/<any(cancel, retry, resume):action>")
@login_required
def job_action(job_id: int, action: str):
    with services().db.read() as s:
        job = find_job(s, g.user, job_id) or abort(404)
    try:
        if action == "cancel":
            actions.cancel(job)
        elif action == "resume":
            actions.resume(job)
        else:
            job = actions.retry(g.user, job)
    except ApiError as exc:
        flash(exc.detail)
    except ValidationError as exc:  # a spec stored before a rule existed meets it now
        flash(
            "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
            )
        )
    return redirect(url_for(".job_page", job_id=job.id))


@bp.get("/jobs/<int:job_id>/rollouts")
@login_required
def rollouts(job_id: int):
    """The experience buffer of a train job, a page of rollouts at a time, with the API's filters."""
    filters = {
        k: v
        for k, v in request.args.items()
        if k in ("step", "verdict", "min_reward", "max_reward") and v
    }
    page = max(request.args.get("page", 1, type=int), 1)
    errors = []
    try:
        query = ExperienceQuery(
            **filters, limit=ROLLOUTS_PER_PAGE, offset=(page - 1) * ROLLOUTS_PER_PAGE
        )
    except ValidationError as exc:
        errors = [f"{e['loc'][0]}: {e['msg']}" for e in exc.errors(include_url=False)]
        query = ExperienceQuery(limit=ROLLOUTS_PER_PAGE)
    with services().db.read() as s:
        job = find_job(s, g.user, job_id, defer(Job.spec)) or abort(404)
        total, rows = training.experiences(s, job_id, **query.model_dump())
    pages = max((total + ROLLOUTS_PER_PAGE - 1) // ROLLOUTS_PER_PAGE, 1)
    return render_template(
        "rollouts.html",
        job=job,
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        filters=filters,
        errors=errors,
        verdicts=VERDICTS,
    ), 400 if errors else 200


@bp.get("/compare")
@login_required
def compare():
    """Curves of several training jobs on one chart per metric; the script draws them."""
    chosen = request.args.getlist("jobs", type=int)
    query = visible_jobs(g.user).options(defer(Job.spec)).where(Job.kind != "verify")
    with services().db.read() as s:
        candidates = s.scalars(query.order_by(Job.id.desc()).limit(100)).all()
    known = {job.id for job in candidates}
    return render_template(
        "compare.html",
        candidates=candidates,
        chosen=[j for j in chosen if j in known],
        chart_metrics=CHART_METRICS,
    )


@bp.app_template_filter("code_feedback")
def code_feedback(extra: dict) -> str | None:
    """The one line that says why a program failed, from an experience's `extra.code`."""
    code = extra.get("code")
    if not code:
        return None
    tests = [TestResult(**test) for test in code.get("tests", [])]
    grade = CodeGrade(code["status"], code["passed"], code["total"], tests, code.get("error"))
    return None if grade == "pass" else grade.feedback()

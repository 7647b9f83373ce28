"""HTML pages: sign in with a token, the job list, a submit form per kind, the job page.

Pages refresh themselves with a meta tag while something is still moving; no JavaScript.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import defer

from rlvr.db import Job, JobEvent, VerdictRow, accounts, jobs, training
from rlvr.db.models import JOB_STATES
from web import actions, services
from web.auth import find_job, login_required, visible_jobs
from web.charts import CHART_METRICS
from web.charts import charts as draw_charts
from web.errors import ApiError
from web.forms import FORMS
from worker.kinds import KINDS

bp = Blueprint("pages", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        with services().db.read() as s:
            user = accounts.user_for_token(s, request.form.get("token", "").strip())
        if user is not None:
            session["user_id"] = user.id
            target = request.args.get("next", "")
            safe = target.startswith("/") and not target.startswith("//")  # never off-site
            return redirect(target if safe else url_for(".jobs_list"))
        flash("Unknown token.")
    return render_template("login.html")


@bp.post("/logout")
def logout():
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
    return render_template("jobs.html", jobs=rows, states=JOB_STATES, kinds=KINDS, status=status, kind=kind,
                           refresh=moving)


@bp.route("/jobs/new/<kind>", methods=["GET", "POST"])
@login_required
def submit(kind: str):
    if kind not in FORMS:
        abort(404)
    form = FORMS[kind]()
    if form.validate_on_submit():
        try:
            job, _ = actions.submit(g.user, kind, form.to_spec())
            return redirect(url_for(".job_page", job_id=job.id))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                field = form.field_for(error["loc"])
                (getattr(form, field).errors if field else form.form_errors).append(error["msg"])
    return render_template("submit.html", form=form, kind=kind), 200 if request.method == "GET" else 400


@bp.get("/jobs/<int:job_id>")
@login_required
def job_page(job_id: int):
    with services().db.read() as s:
        job = find_job(s, g.user, job_id, defer(Job.spec)) or abort(404)
        events = s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
        verdicts = s.scalars(select(VerdictRow).where(VerdictRow.job_id == job_id)
                             .order_by(VerdictRow.index).limit(50)).all()
        charts = [] if job.kind == "verify" else draw_charts(training.series(s, job_id, list(CHART_METRICS)))
    return render_template("job.html", job=job, events=events, verdicts=verdicts, charts=charts,
                           refresh=job.status not in jobs.TERMINAL, terminal=jobs.TERMINAL)


@bp.post("/jobs/<int:job_id>/<any(cancel, retry):action>")
@login_required
def job_action(job_id: int, action: str):
    with services().db.read() as s:
        job = find_job(s, g.user, job_id) or abort(404)
    try:
        if action == "cancel":
            actions.cancel(job)
        else:
            job = actions.retry(g.user, job)
    except ApiError as exc:
        flash(exc.detail)
    return redirect(url_for(".job_page", job_id=job.id))

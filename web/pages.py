"""HTML pages: sign in with a token, the job list, a submit form per kind, the job page, a
training job's rollout browser, the compare page and the workers page.

The job and compare pages draw their live parts (status, progress, timeline, metric
charts) with small scripts in web/static that read the JSON API with the session cookie;
everything else is rendered here and works without JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from rlvr.verifier import CodeGrade, TestResult
from service.db import Job, JobEvent, VerdictRow, accounts, jobs, training
from service.db.models import JOB_STATES
from service.kinds import KINDS
from service.queues import QUEUES
from web import actions, listing, monitoring
from web.auth import find_job, login_required, visible_jobs
from web.context import services
from web.errors import ApiError
from web.flat import differences, flatten
from web.forms import JobForm, SpecForm, form_for
from web.inputs import MAX_OFFSET
from web.schemas import JobLabels, JobLabelsPatch
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
# The number a finished run is judged by, the first of these its result or metrics have.
FINAL_METRICS = ("pass_rate", "eval/pass@1", "eval/greedy/pass_rate", "reward", "loss")
JOBS_PER_PAGE = 50
LOG_TAIL_EVENTS = 10
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
    """Newest first, a page at a time, filtered by status, kind, tag and a word of the name."""
    filters = {
        k: v for k in ("status", "kind", "tag", "q") if (v := request.args.get(k, "").strip())
    }
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_OFFSET // JOBS_PER_PAGE)
    query = listing.filtered(
        g.user,
        filters.get("status") if filters.get("status") in JOB_STATES else None,
        filters.get("kind") if filters.get("kind") in KINDS else None,
        filters.get("tag"),
        filters.get("q"),
    )
    columns = (Job.spec["model"]["name"].as_string(), Job.spec["task"]["name"].as_string())
    with services().db.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        rows = s.execute(
            query.options(defer(Job.spec))  # specs can be megabytes each; two fields come alone
            .add_columns(*columns)
            .order_by(Job.id.desc())
            .limit(JOBS_PER_PAGE)
            .offset((page - 1) * JOBS_PER_PAGE)
        ).all()
        latest = training.latest_values(
            s, [job.id for job, *_ in rows if job.kind != "verify"], FINAL_METRICS
        )
    moving = any(job.status not in jobs.TERMINAL for job, *_ in rows)
    return render_template(
        "jobs.html",
        rows=[
            (job, model, task, final_metric(job, latest.get(job.id, {})))
            for job, model, task in rows
        ],
        total=total,
        page=page,
        pages=max((total + JOBS_PER_PAGE - 1) // JOBS_PER_PAGE, 1),
        states=JOB_STATES,
        kinds=KINDS,
        filters=filters,
        refresh=moving,
        refresh_seconds=5,
    )


def final_metric(job: Job, latest: dict[str, float]) -> tuple[str, float] | None:
    """The headline number of a job: from its result when it finished, else its latest metrics."""
    found = {
        **latest,
        **{k: v for k, v in (job.result or {}).items() if isinstance(v, int | float)},
    }
    return next(
        ((name, found[name]) for name in FINAL_METRICS if found.get(name) is not None), None
    )


@bp.app_template_filter("duration")
def duration(job: Job) -> str:
    """How long it ran (or has run so far); empty before it started."""
    if job.started_at is None:
        return ""
    seconds = int(((job.finished_at or datetime.now(UTC)) - job.started_at).total_seconds())
    h, m, s = seconds // 3600, seconds % 3600 // 60, seconds % 60
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


@bp.route("/jobs/new/<kind>", methods=["GET", "POST"])
@login_required
def submit(kind: str):
    if kind not in KINDS:
        abort(404)
    return _form_page(
        form_for(kind),
        kind,
        lambda spec, labels: actions.submit(g.user, kind, spec, labels=labels)[0],
    )


@bp.route("/jobs/<int:job_id>/clone", methods=["GET", "POST"])
@login_required
def clone(job_id: int):
    """A new job from this one's spec as YAML, edited; a field deleted keeps this job's value."""
    with services().db.read() as s:
        job = find_job(s, g.user, job_id) or abort(404)
    if job.kind not in CLONABLE_KINDS:
        abort(404)
    return _form_page(
        SpecForm.of_kind(job.kind).filled(job.spec, JobLabels(tags=job.tags)),
        job.kind,
        lambda spec, labels: actions.clone(g.user, job, spec, labels=labels),
        heading=f"Clone job #{job.id} with edits",
    )


def _form_page(
    form: JobForm,
    kind: str,
    create: Callable[[dict, JobLabels], Job],
    heading: str | None = None,
):
    """The form; a valid POST calls `create(spec, labels)` and goes to the new job's page."""
    if form.validate_on_submit():
        try:
            return redirect(url_for(".job_page", job_id=create(form.to_spec(), form.labels()).id))
        except ValidationError as exc:
            form.place_errors(exc)
    status = 200 if request.method == "GET" else 400
    return render_template("submit.html", form=form, kind=kind, heading=heading), status


@bp.get("/jobs/<int:job_id>")
@login_required
def job_page(job_id: int):
    with services().db.read() as s:
        job = find_job(s, g.user, job_id, defer(Job.spec)) or abort(404)
        # a verify job's spec is its programs, maybe megabytes: its verdicts below show them
        spec = None if job.kind == "verify" else s.scalar(select(Job.spec).where(Job.id == job_id))
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
        settings=flatten(spec) if spec else {},
        events=events,
        log_tail=[e for e in events if e.message][-LOG_TAIL_EVENTS:],
        verdicts=verdicts,
        chart_metrics=CHART_METRICS if job.kind != "verify" else (),
        terminal=jobs.TERMINAL,
        owner=job.user_id == g.user.id,
        resumable=job.kind in actions.RESUMABLE_KINDS and job.status in jobs.RESUMABLE,
        clonable=job.kind in CLONABLE_KINDS,
    )


@bp.post("/jobs/<int:job_id>/labels")
@login_required
def relabel(job_id: int):
    """The job page's name and tags form; the owner's only, as with PATCH on the API."""
    with services().db.read() as s:
        job = find_job(s, g.user, job_id, defer(Job.spec)) or abort(404)
    try:
        tags = request.form.get("tags", "").replace(",", " ").split()
        patch = JobLabelsPatch(name=request.form.get("name", "").strip() or None, tags=tags)
        actions.relabel(g.user, job, patch)
    except ApiError as exc:
        flash(exc.detail)
    except ValidationError as exc:
        flash("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors(include_url=False)))
    return redirect(url_for(".job_page", job_id=job.id))


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
    """Curves of several training jobs on one chart per metric (the script draws them), under a
    table of the settings in which their specs differ."""
    chosen = request.args.getlist("jobs", type=int)
    query = visible_jobs(g.user).options(defer(Job.spec)).where(Job.kind != "verify")
    with services().db.read() as s:
        candidates = s.scalars(query.order_by(Job.id.desc()).limit(100)).all()
        known = {job.id: job for job in candidates}
        chosen = [j for j in dict.fromkeys(chosen) if j in known]
        specs = dict(s.execute(select(Job.id, Job.spec).where(Job.id.in_(chosen))).all())
    return render_template(
        "compare.html",
        candidates=candidates,
        chosen=[known[j] for j in chosen],
        differing=differences([specs[j] for j in chosen]) if len(chosen) > 1 else {},
        labels=[f"#{j}" + (f" {known[j].name}" if known[j].name else "") for j in chosen],
        chart_metrics=CHART_METRICS,
    )


@bp.get("/workers")
@login_required
def workers():
    """Live workers by the pool (queue) they consume, and the messages waiting in each queue."""
    svc = services()
    consumed_by = monitoring.worker_queues(svc)
    pools = {q: sorted(w for w, qs in consumed_by.items() if q in qs) for q in QUEUES}
    trainers = pools.get("train", [])
    return render_template(
        "workers.html",
        pools=pools,
        depths=monitoring.queue_depths(svc),
        gpus=monitoring.train_gpus(svc, trainers),
        counts=monitoring.jobs_by_state(svc, owner=None if g.user.is_admin else g.user.id),
        states=JOB_STATES,
        refresh=True,
        refresh_seconds=5,
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

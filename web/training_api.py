"""The API of train, eval and SFT jobs: metric series, the experience buffer, artifacts,
analysis, resume, clone and side-by-side comparison.

Lives beside `web.api` under the same /api/v1 prefix; each view authenticates, is documented
and given its validated query or body by `web.openapi.operation`, checks the job is the
caller's, reads through `service.db.training` (or acts through `web.actions`) and shapes the reply.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from typing import Annotated, Any

from flask import Blueprint, Response, g, send_file, url_for
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlvr.analysis import convergence_step, error_patterns
from service import tenancy
from service.db import training
from web import actions
from web.auth import job_or_404, token_required
from web.context import reader, services
from web.errors import ApiError, spec_errors
from web.inputs import MAX_ID, MAX_OFFSET
from web.openapi import operation
from web.replies import reply
from web.schemas import JobOut

bp = Blueprint("training_api", __name__, url_prefix="/api/v1")


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    names: str | None = Field(
        None, description="Comma-separated metric names (reward,kl,...); all when absent."
    )
    after: int | None = Field(
        None, ge=0, le=MAX_ID, description="Only steps after this one (a client following a job)."
    )


class MetricsDownloadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    names: str | None = Field(None, description="Comma-separated metric names; all when absent.")


class MetricSeries(BaseModel):
    job_id: int
    series: dict[str, list[tuple[int, float]]] = Field(
        description="name -> [[step, value], ...] in step order"
    )


class ExperienceQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: int | None = Field(None, ge=0, le=MAX_ID, description="Only this step.")
    verdict: str | None = Field(None, description="Only this verdict: pass, fail, error, ...")
    min_reward: float | None = Field(None, description="Reward at least.")
    max_reward: float | None = Field(None, description="Reward at most.")
    limit: int = Field(50, ge=1, le=500, description="Rollouts per page.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Rollouts to skip.")


class ExperienceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    step: int
    prompt_index: int
    sample_index: int
    problem_id: str
    prompt: str
    completion: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool
    reward: float | None
    reward_components: dict[str, Any]
    verdict: str
    advantage: float
    logprob_mean: float
    extra: dict[str, Any]


class ExperiencePage(BaseModel):
    experiences: list[ExperienceOut]
    total: int
    limit: int
    offset: int


class ArtifactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    kind: str
    step: int | None
    path: str


class ArtifactList(BaseModel):
    artifacts: list[ArtifactOut]


class AnalysisQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str | None = Field(
        None,
        description="Series whose convergence is reported; by default the first "
        "the job has of pass_rate, reward, loss.",
    )
    window: int = Field(
        5, ge=1, le=1000, description="Steps in the trailing mean that smooths the series."
    )
    tolerance: float = Field(
        0.05, gt=0, description="How close to its final value the smoothed series must stay."
    )


class RewardDistribution(BaseModel):
    count: int
    none: int = Field(description="Rewards the verifier could not judge (None, never scored 0).")
    mean: float | None
    min: float | None
    max: float | None
    histogram: dict[str, int] = Field(
        description="bin label ([0.25,0.5), >=1, ...) -> rewards in it"
    )


class FailingTest(BaseModel):
    test: str
    failed: int
    runs: int
    fail_rate: float


class Convergence(BaseModel):
    metric: str | None = Field(
        description="The series used; null when the job has none of the defaults."
    )
    step: int | None = Field(
        description="First step after which the trailing mean of `window` values stays "
        "within `tolerance` of its final value; null if it has not settled."
    )
    window: int
    tolerance: float


class Analysis(BaseModel):
    job_id: int
    samples: int
    verdicts: dict[str, int] = Field(description="verdict (pass, fail, error) -> rollouts")
    programs: int = Field(description="Rollouts judged as code by the sandbox.")
    unjudged: int
    timeouts: int
    statuses: dict[str, int] = Field(description="sandbox status -> programs")
    exception_types: dict[str, int] = Field(
        description="exception type -> programs with a test raising it"
    )
    failing_tests: list[FailingTest]
    reward_by_step: dict[int, RewardDistribution]
    convergence: Convergence


class CloneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any] = Field(
        default_factory=dict,
        description="Partial spec laid over the parent's: objects "
        "merge key by key, other values replace.",
    )


class CompareQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # style=form, explode=false is OpenAPI's name for a comma-separated list: jobs=3,5
    jobs: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        min_length=1,
        max_length=20,
        description="Comma-separated job ids.",
        json_schema_extra={"style": "form", "explode": False},
    )
    names: str | None = Field(None, description="Comma-separated metric names; all when absent.")

    @field_validator("jobs", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [part for part in value.split(",") if part] if isinstance(value, str) else value


class ComparedJob(BaseModel):
    id: int
    kind: str
    status: str
    series: dict[str, list[tuple[int, float]]] = Field(
        description="name -> [[step, value], ...] in step order"
    )


class Comparison(BaseModel):
    jobs: list[ComparedJob]


CONVERGENCE_METRICS = ("pass_rate", "reward", "loss")


def _names(names: str | None) -> list[str] | None:
    return [n for n in (names or "").split(",") if n] or None


@bp.get("/jobs/<int:job_id>/metrics")
@token_required
@operation("training", {200: MetricSeries}, errors=[404])
def job_metrics(job_id: int, query: MetricsQuery):
    """A train, eval or SFT job's metric series by name"""
    job_or_404(job_id)
    return reply(
        MetricSeries(
            job_id=job_id,
            series=training.series(reader(), job_id, _names(query.names), query.after),
        )
    )


@bp.get("/jobs/<int:job_id>/metrics.jsonl")
@token_required
@operation("training", {200: ("application/x-ndjson", "job-<id>-metrics.jsonl")}, errors=[404])
def job_metrics_jsonl(job_id: int, query: MetricsDownloadQuery):
    """The job's metrics as a JSON Lines file

    One object per step (`{"step": 3, "reward": 0.5, ...}`): `pandas.read_json(url, lines=True)`
    reads it as a table."""
    job_or_404(job_id)
    lines = (
        json.dumps(row) + "\n" for row in training.by_step(reader(), job_id, _names(query.names))
    )
    return Response(
        "".join(lines),
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": f"attachment; filename=job-{job_id}-metrics.jsonl"},
    )


@bp.get("/jobs/<int:job_id>/experiences")
@token_required
@operation("training", {200: ExperiencePage}, errors=[404])
def job_experiences(job_id: int, query: ExperienceQuery):
    """A train job's rollouts, filtered and paginated"""
    job_or_404(job_id)
    total, rows = training.experiences(reader(), job_id, **query.model_dump())
    items = [ExperienceOut.model_validate(row) for row in rows]
    return reply(
        ExperiencePage(experiences=items, total=total, limit=query.limit, offset=query.offset)
    )


@bp.get("/jobs/<int:job_id>/artifacts")
@token_required
@operation("training", {200: ArtifactList}, errors=[404])
def job_artifacts(job_id: int):
    """The checkpoints and final model a job wrote"""
    job_or_404(job_id)
    return reply(
        ArtifactList(
            artifacts=[ArtifactOut.model_validate(a) for a in training.artifacts(reader(), job_id)]
        )
    )


@bp.get("/jobs/<int:job_id>/download")
@token_required
@operation("training", {200: ("application/gzip", "job-<id>-model.tar.gz")}, errors=[404, 409])
def download_model(job_id: int):
    """The job's final model as .tar.gz

    A LoRA adapter or full weights; load it with `PeftModel.from_pretrained` or
    `AutoModelForCausalLM.from_pretrained` once unpacked. An adapter's
    `base_model_name_or_path` is the model as the job's spec named it (`registered:<name>`,
    a hub name, `job:<id>`), never a path on the server.
    """
    job = job_or_404(job_id)
    finals = training.artifacts(reader(), job_id, "final")
    root = services().settings.data_dir / "artifacts"
    folder = root / finals[-1].path if finals else None
    if folder is None or not folder.is_dir():
        raise ApiError(409, "no model", f"job {job_id} has no final model")
    name = f"job-{job_id}-model"
    # The copy on disk keeps the server's base path: `job:<id>` specs are resolved through it.
    public = tenancy.public_adapter_files(folder, (job.spec.get("model") or {}).get("name", ""))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(
            folder,
            arcname=name,
            filter=lambda info: None if info.name.removeprefix(f"{name}/") in public else info,
        )
        for file, data in public.items():
            info = tarfile.TarInfo(f"{name}/{file}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return send_file(
        buffer,
        mimetype="application/gzip",
        as_attachment=True,
        download_name=f"job-{job_id}-model.tar.gz",
    )


@bp.get("/jobs/<int:job_id>/analysis")
@token_required
@operation("training", {200: Analysis}, errors=[404])
def job_analysis(job_id: int, query: AnalysisQuery):
    """Error patterns, reward distribution per step, convergence step

    Over the job's rollouts; and the step at which its pass rate (or reward, or loss) settled.
    """
    job_or_404(job_id)
    patterns = error_patterns(training.outcomes(reader(), job_id))
    candidates = [query.metric] if query.metric else list(CONVERGENCE_METRICS)
    series = training.series(reader(), job_id, candidates)
    metric = next((name for name in candidates if name in series), query.metric)
    step = convergence_step(series.get(metric, []), query.window, query.tolerance)
    convergence = Convergence(
        metric=metric, step=step, window=query.window, tolerance=query.tolerance
    )
    return reply(Analysis(job_id=job_id, **patterns, convergence=convergence))


@bp.post("/jobs/<int:job_id>/resume")
@token_required
@operation("training", {202: JobOut}, errors=[404, 409])
def resume_job(job_id: int):
    """Requeue a stopped train or SFT job from its last checkpoint

    A cancelled, crashed or failed train or SFT job goes back to the queue as the same job.
    """
    job = job_or_404(job_id)
    actions.resume(job)
    reader().refresh(job)
    return reply(JobOut.of(job), 202)


@bp.post("/jobs/<int:job_id>/clone")
@token_required
@operation("training", {201: JobOut}, errors=[404, 429])
def clone_job(job_id: int, json: CloneBody):
    """A new job of the same kind with an edited spec, its `parent_id` set"""
    parent = job_or_404(job_id)
    with spec_errors():
        new = actions.clone(g.user, parent, json.spec)
    return reply(JobOut.of(new), 201, Location=url_for("api.get_job", job_id=new.id))


@bp.get("/compare")
@token_required
@operation("training", {200: Comparison}, errors=[404])
def compare_jobs(query: CompareQuery):
    """The named metric series of several of your jobs, side by side"""
    names = _names(query.names)
    compared = [
        (job, training.series(reader(), job.id, names)) for job in map(job_or_404, query.jobs)
    ]
    return reply(
        Comparison(
            jobs=[
                ComparedJob(id=job.id, kind=job.kind, status=job.status, series=series)
                for job, series in compared
            ]
        )
    )

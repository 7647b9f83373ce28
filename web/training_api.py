"""The API of train, eval and SFT jobs: metric series, the experience buffer, artifacts.

Lives beside `web.api` under the same /api/v1 prefix; each view authenticates, checks the
job is the caller's, reads through `rlvr.db.training` and shapes the reply.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

from flask import Blueprint, Response, request, send_file
from pydantic import BaseModel, ConfigDict, Field

from rlvr.db import training
from web import reader, services
from web.auth import job_or_404, token_required
from web.errors import ApiError

bp = Blueprint("training_api", __name__, url_prefix="/api/v1")


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    names: str | None = Field(None, description="Comma-separated metric names; all when absent.")


class MetricSeries(BaseModel):
    job_id: int
    series: dict[str, list[tuple[int, float]]] = Field(description="name -> [[step, value], ...] in step order")


class ExperienceQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: int | None = Field(None, ge=0)
    verdict: str | None = Field(None, description="pass, fail, error, ...")
    min_reward: float | None = None
    max_reward: float | None = None
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)


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


def _reply(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), mimetype="application/json")


@bp.get("/jobs/<int:job_id>/metrics")
@token_required
def job_metrics(job_id: int):
    query = MetricsQuery.model_validate(request.args.to_dict())
    job_or_404(job_id)
    names = [n for n in (query.names or "").split(",") if n] or None
    return _reply(MetricSeries(job_id=job_id, series=training.series(reader(), job_id, names)))


@bp.get("/jobs/<int:job_id>/experiences")
@token_required
def job_experiences(job_id: int):
    query = ExperienceQuery.model_validate(request.args.to_dict())
    job_or_404(job_id)
    total, rows = training.experiences(reader(), job_id, **query.model_dump())
    items = [ExperienceOut.model_validate(row) for row in rows]
    return _reply(ExperiencePage(experiences=items, total=total, limit=query.limit, offset=query.offset))


@bp.get("/jobs/<int:job_id>/artifacts")
@token_required
def job_artifacts(job_id: int):
    job_or_404(job_id)
    return _reply(ArtifactList(artifacts=[ArtifactOut.model_validate(a) for a in training.artifacts(reader(), job_id)]))


@bp.get("/jobs/<int:job_id>/download")
@token_required
def download_model(job_id: int):
    """The job's final model (a LoRA adapter or full weights) as a .tar.gz; load it with
    `PeftModel.from_pretrained` or `AutoModelForCausalLM.from_pretrained` once unpacked."""
    job_or_404(job_id)
    finals = training.artifacts(reader(), job_id, "final")
    root = services().settings.data_dir / "artifacts"
    if not finals or not (root / finals[-1].path).is_dir():
        raise ApiError(409, "no model", f"job {job_id} has no final model")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(root / finals[-1].path, arcname=f"job-{job_id}-model")
    buffer.seek(0)
    return send_file(buffer, mimetype="application/gzip", as_attachment=True, download_name=f"job-{job_id}-model.tar.gz")


OPENAPI_MODELS = [MetricSeries, ExperiencePage, ArtifactList]

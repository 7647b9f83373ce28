"""The API's request and response bodies as pydantic models: they validate what comes in,
shape what goes out, and are the OpenAPI document's schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, create_model

from sandbox.models import Verdict, VerifyRequest
from service.db.models import JOB_STATES
from service.kinds import KINDS
from web.inputs import MAX_OFFSET

JobKindName = Literal[tuple(KINDS)]
JobStatus = Literal[JOB_STATES]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Tags are matched inside the stored JSON list by `web.listing.filtered` (a LIKE on `"tag"`), so a
# tag holds no quote, backslash or LIKE wildcard of its own; `_` is escaped there.
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/+-]{0,39}$"),
]
JobName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class JobLabels(_In):
    """What a job's owner calls it: a name and tags, set at submit and editable later."""

    name: JobName | None = Field(None, description="A name for people; need not be unique.")
    tags: list[Tag] = Field(
        default_factory=list,
        max_length=20,
        description="Labels to filter by: letters, digits and `_.:/+-`, at most 40 characters.",
    )


class JobLabelsPatch(_In):
    """The labels to change; a field left out keeps its value, `name: null` clears the name."""

    name: JobName | None = Field(None, description="The new name; null clears it.")
    tags: list[Tag] | None = Field(None, max_length=20, description="The new tags, all of them.")


def _submission(kind: str, spec: type[BaseModel]) -> type[_In]:
    return create_model(
        f"{kind.title()}Submission",
        __base__=JobLabels,
        __doc__=f"A `{kind}` job and its {spec.__name__}, with an optional name and tags.",
        kind=(Literal[kind], ...),
        spec=(spec, ...),
    )


class JobSubmission(
    RootModel[
        Annotated[
            # A union built from the registry: the `X | Y` syntax cannot take a computed tuple.
            Union[tuple(_submission(kind, job_kind.spec) for kind, job_kind in KINDS.items())],  # noqa: UP007
            Field(discriminator="kind"),
        ]
    ]
):
    """A job to run: `kind` names one of `service.kinds.KINDS`, and `spec` must match that kind's model."""


class SubmitHeaders(BaseModel):
    idempotency_key: str | None = Field(
        None,
        alias="Idempotency-Key",
        max_length=200,
        description=(
            "A retried submit with the same key returns the job the first one made (200) instead of a new one."
        ),
    )


class JobQuery(_In):
    status: JobStatus | None = Field(None, description="Only jobs in this state.")
    kind: JobKindName | None = Field(None, description="Only jobs of this kind.")
    tag: Tag | None = Field(None, description="Only jobs carrying this tag.")
    q: str | None = Field(
        None, max_length=200, description="Only jobs whose name contains this (any case)."
    )
    limit: int = Field(20, ge=1, le=100, description="Jobs per page.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Jobs to skip.")


class PageQuery(_In):
    limit: int = Field(100, ge=1, le=1000, description="Verdicts per page.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Verdicts to skip.")


class VerifyBody(_In):
    requests: list[VerifyRequest] = Field(min_length=1)


class Progress(BaseModel):
    done: int
    total: int
    fraction: float


class JobOut(BaseModel):
    id: int
    kind: str
    name: str | None
    tags: list[str]
    status: JobStatus
    progress: Progress
    attempt: int
    max_attempts: int
    error: str | None
    result: dict[str, Any] | None
    parent_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, job) -> JobOut:
        total = job.progress_total
        fraction = round(job.progress_done / total, 4) if total else 0.0
        fields = {name: getattr(job, name) for name in cls.model_fields if name != "progress"}
        return cls(
            **fields, progress=Progress(done=job.progress_done, total=total, fraction=fraction)
        )


class JobDetail(JobOut):
    spec: dict[str, Any] | None = Field(
        None,
        description="The validated spec the job runs, every default filled in; "
        "left out (null) when asked with `spec=false`.",
    )


class JobDetailQuery(_In):
    spec: bool = Field(
        True, description="Include the spec; a client polling a job can leave it out."
    )


class JobPage(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    at: datetime
    status: JobStatus
    message: str | None


class EventList(BaseModel):
    events: list[EventOut]


class CalledVerdict(Verdict):
    verified_by: str | None = Field(None, description="The verify worker that judged it.")


class VerifyTicket(BaseModel):
    """A `POST /verify` call: poll `GET /verify/<id>` until `status` is no longer `pending`."""

    id: str = Field(description="The ticket; only its owner can read it, for 10 minutes.")
    status: Literal["pending", "done", "failed", "timeout"] = Field(
        description="done: `verdicts` holds one per program, in order; failed: the verify task "
        "failed; timeout: no verdicts within `RLVR_SYNC_VERIFY_TIMEOUT` seconds (given up)."
    )
    verdicts: list[CalledVerdict] | None = None


class IndexedVerdict(BaseModel):
    index: int = Field(description="Position of the program in the job's spec.")
    verdict: Verdict


class VerdictPage(BaseModel):
    verdicts: list[IndexedVerdict]
    total: int = Field(description="Verdicts stored so far.")
    limit: int
    offset: int


class ErrorOut(BaseModel):
    error: str
    detail: Any = None


class Check(BaseModel):
    ok: bool
    error: str | None = Field(None, description="The probe's exception, when it failed.")


class Seen(Check):
    last_seen: datetime | None = Field(
        None, description="When Redis last saw it, within its window."
    )


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="`ok` when every check below is.")
    database: Check
    redis: Check
    beat: Seen = Field(
        description="Beat sent the reaper within the last three reaper periods (and 5 s)."
    )
    reaper: Seen = Field(description="The reaper finished a run within the same window.")
    workers: dict[str, int] = Field(description="Live worker processes per queue they consume.")
    gpus: dict[str, list[int] | None] = Field(
        default_factory=dict,
        description="The GPUs each live train worker owns (`RLVR_GPUS`), by worker name; its pool process i "
        "runs jobs on the i-th. null: no list, its jobs see every GPU the worker sees.",
    )


class LiveTraining(BaseModel):
    """A running train or SFT job (Prometheus has the same numbers under the names of
    `web.monitoring.TRAINING_METRICS`)."""

    job_id: int
    kind: str
    step: int = Field(description="Latest step of each running train or SFT job.")
    total: int = Field(description="Steps each running train or SFT job will run.")
    reward: float | None = Field(description="Mean reward at the latest step.")
    pass_rate: float | None = Field(description="Pass rate at the latest step.")
    kl: float | None = Field(description="KL to the reference at the latest step.")
    loss: float | None = Field(description="SFT loss at the latest step.")
    steps_per_minute: float | None = Field(
        description="Speed over the last steps, from the loop's own step_time."
    )
    eta_seconds: float | None = Field(description="Seconds left at that speed.")
    unverified_rewards: int = Field(
        description="Rollouts of the job whose reward is None (the verifier could not judge them)."
    )


class Stats(BaseModel):
    jobs: dict[str, int] = Field(description="Your jobs in each state (an admin's: all users').")
    jobs_by_kind: dict[str, int]
    queues: dict[str, int] = Field(description="Messages waiting in each Celery queue.")
    verified_programs: int
    verify_seconds_mean: float | None = Field(
        description="Mean sandbox wall time per verified program."
    )
    training: list[LiveTraining] = Field(
        description="Running train/SFT jobs: yours, or everyone's for an admin."
    )

"""What a user can do to jobs, shared by the API and the pages so both behave alike.

Validation happens here, once, with the kind's spec model, then against the operator's
ceilings (`service.limits`: steps, batch, lengths, sandbox limits, RE2 patterns), then with
what the user may name (`service.tenancy`: models, data files, judge endpoints); the job row
then carries the validated spec. A user with `RLVR_USER_MAX_QUEUED` jobs queued gets a 429.
A message that cannot be sent (Redis down) does not fail the submit: the
job is safe in the database and the reaper sends it when Redis is back.
"""

from __future__ import annotations

import logging

import redis
from kombu.exceptions import OperationalError
from pydantic import BaseModel, ValidationError
from sqlalchemy import update

from service import limits, queues, tenancy
from service.db import Job, User, jobs
from service.kinds import KINDS
from web.context import services
from web.errors import ApiError
from web.schemas import JobLabels, JobLabelsPatch

log = logging.getLogger(__name__)


def submit(
    user: User,
    kind: str,
    spec: dict | BaseModel,
    *,
    idempotency_key: str | None = None,
    parent_id: int | None = None,
    message: str | None = None,
    labels: JobLabels | None = None,
) -> tuple[Job, bool]:
    """Validates `spec` for `kind` and for what `user` may name in it (raises pydantic's
    ValidationError; a spec the API already validated as the kind's model is taken as it is)
    and queues the job.

    The stored spec keeps its nulls: `model.lora: null` (train every weight) is not the
    default, so dropping it would change the job.
    """
    job_kind = KINDS[kind]
    validated = job_kind.spec.model_validate(spec)
    stored = validated.model_dump(mode="json")
    svc = services()
    _check_tracking(validated, svc.settings)
    limits.check(validated, svc.settings, title=job_kind.spec.__name__)
    with svc.db.begin() as s:
        tenancy.check(s, user, stored, svc.settings, title=job_kind.spec.__name__)
        _check_quota(s, user, svc.settings, idempotency_key)
        job, created = jobs.submit(
            s,
            user_id=user.id,
            kind=kind,
            spec=stored,
            total=job_kind.total(validated),
            max_attempts=svc.settings.max_attempts,
            idempotency_key=idempotency_key,
            parent_id=parent_id,
            message=message,
        )
        if created and labels is not None:  # a retried submit keeps the first one's labels
            job.name, job.tags = labels.name, labels.tags
    if created:
        _send(job.id)
    return job, created


def _check_tracking(spec, settings) -> None:
    """A spec's MLflow URI must be one the operator allows: a 400 now, not a failed job later."""
    mlflow = getattr(getattr(spec, "tracking", None), "mlflow", None)
    if mlflow is None:
        return
    try:
        settings.mlflow_uri(mlflow.uri)
    except ValueError as exc:
        raise ValidationError.from_exception_data(
            type(spec).__name__,
            [
                {
                    "type": "value_error",
                    "loc": ("tracking", "mlflow", "uri"),
                    "input": mlflow.uri,
                    "ctx": {"error": exc},
                }
            ],
        ) from None


QUOTA_RETRY_AFTER_SECONDS = 60
"""What a 429 for a full queue asks a client to wait: about one short job's run."""


def _check_quota(s, user: User, settings, idempotency_key: str | None) -> None:
    """A user at `RLVR_USER_MAX_QUEUED` queued jobs is a 429 (a retried submit of a job they
    already have is not a new one). Counted in the submit's transaction: two racing submits
    may both pass by one, which a quota of tens can afford."""
    if idempotency_key is not None and jobs.by_key(s, user.id, idempotency_key) is not None:
        return
    queued = jobs.queued_count(s, user.id)
    if queued >= settings.user_max_queued:
        raise ApiError(
            429,
            "too many queued jobs",
            f"you have {queued} jobs queued, the most one user may (RLVR_USER_MAX_QUEUED); "
            "submit again when some have started",
            headers={"Retry-After": str(QUOTA_RETRY_AFTER_SECONDS)},
        )


def _send(job_id: int) -> None:
    try:
        queues.send_job(services(), job_id)
    except (redis.RedisError, OperationalError):
        log.warning("job %s stays queued until the reaper reaches Redis", job_id, exc_info=True)


def cancel(job: Job) -> None:
    with services().db.begin() as s:
        if not jobs.cancel(s, job.id):
            raise ApiError(
                409, "conflict", f"job {job.id} is {job.status}; only queued or running jobs cancel"
            )


def retry(user: User, job: Job) -> Job:
    """A new job with the same kind and spec, linked to `job` as its parent."""
    if job.status not in jobs.TERMINAL:
        raise ApiError(
            409, "conflict", f"job {job.id} is {job.status}; only finished jobs can be retried"
        )
    labels = JobLabels(name=job.name, tags=job.tags)  # the same run again, under its name
    new, _ = submit(user, job.kind, job.spec, parent_id=job.id, labels=labels)
    return new


RESUMABLE_KINDS = ("train", "sft")


def resume(job: Job) -> None:
    """Puts a stopped train or SFT job back on the queue as the same job (see `jobs.resume`)."""
    if job.kind not in RESUMABLE_KINDS:
        raise ApiError(
            409, "conflict", f"job {job.id} is a {job.kind} job; only train and sft jobs resume"
        )
    svc = services()
    with svc.db.begin() as s:
        if not jobs.resume(s, job.id, kinds=RESUMABLE_KINDS, attempts=svc.settings.max_attempts):
            raise ApiError(
                409,
                "conflict",
                f"job {job.id} is {job.status}; only failed, cancelled or crashed jobs resume",
            )
    _send(job.id)


def clone(user: User, job: Job, overrides: dict, labels: JobLabels | None = None) -> Job:
    """A new job of `job`'s kind and spec with `overrides` deep-merged in, linked to `job`,
    under `labels` (by default `job`'s tags and no name: a variant is a run of its own).
    Raises pydantic's ValidationError when the edited spec is not valid."""
    new, _ = submit(
        user,
        job.kind,
        deep_merge(job.spec, overrides),
        parent_id=job.id,
        message=f"clone of job {job.id}",
        labels=labels or JobLabels(tags=job.tags),
    )
    return new


def relabel(user: User, job: Job, patch: JobLabelsPatch) -> Job:
    """Sets the fields `patch` names of `job`'s name and tags. Only the owner may: an admin
    sees everyone's jobs but does not rename them."""
    if job.user_id != user.id:
        raise ApiError(403, "forbidden", f"only the owner of job {job.id} can rename or tag it")
    changes = patch.model_dump(exclude_unset=True)
    if "tags" in changes:
        changes["tags"] = changes["tags"] or []  # `tags: null` clears them, as `name: null` does
    if changes:
        with services().db.begin() as s:  # an UPDATE: loading the row would load its spec
            s.execute(update(Job).where(Job.id == job.id).values(**changes))
    for field, value in changes.items():
        setattr(job, field, value)
    return job


def deep_merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` laid over it: objects merge key by key, anything else
    (a number, a list, null) replaces what was there.

    >>> deep_merge({"optim": {"seed": 1, "learning_rate": 0.1}, "tags": [1]}, {"optim": {"seed": 2}, "tags": []})
    {'optim': {'seed': 2, 'learning_rate': 0.1}, 'tags': []}
    """
    merged = dict(base)
    for key, value in overrides.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if both else value
    return merged

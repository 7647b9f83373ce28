"""Health, Prometheus metrics and stats: read from Postgres (the truth) and Redis (queues).

Prometheus text is rendered by `prometheus_client` from values gathered at scrape time, so
every gunicorn process answers the same and no state lives in one process's memory: job
counts from the database, queue lengths and live workers from Redis and Celery, and the
counters and histograms that workers add to in Redis (`service.telemetry`). Names follow
Prometheus's conventions, which `promtool check metrics` enforces: base units (seconds),
`_total` on counters and only on counters.

Live training statistics cover the train and SFT jobs running now: their step, latest
headline metrics, unjudged (None) rewards, and a speed and ETA from the `step_time` the loop
itself measured over the last steps (so eval and checkpoint pauses are not in it).

What a caller sees of other users' jobs is decided by the views, passed here as `owner` and
`per_job`: aggregate counts, queue depths and latencies for everyone; a job's own numbers
only for its owner, an admin, or a scraper holding `RLVR_METRICS_TOKEN`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select, text

from service import queues, telemetry
from service.db import Job, jobs, training, verdicts
from service.db.models import JOB_STATES
from service.queues import GPUS_COMMAND, QUEUES, Services, queue_keys


def _check(probe) -> dict:
    try:
        probe()
        return {"ok": True}
    except Exception as exc:  # a health check reports failures, it never raises them
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def worker_queues(svc: Services, timeout: float = 1.0) -> dict[str, list[str]]:
    """The queues each worker answering a broadcast consumes, by worker name."""
    replies = svc.celery.control.inspect(timeout=timeout).active_queues() or {}
    return {worker: [q["name"] for q in queues] for worker, queues in replies.items()}


def live_workers(svc: Services, timeout: float = 1.0) -> dict[str, int]:
    """Worker processes answering a broadcast, counted per queue they consume."""
    counts = Counter(
        queue for consumed in worker_queues(svc, timeout).values() for queue in consumed
    )
    return {queue: counts.get(queue, 0) for queue in QUEUES}


HEALTH_CHECKS = ("database", "redis", "beat", "reaper")


def train_gpus(
    svc: Services, workers: list[str], timeout: float = 1.0
) -> dict[str, list[int] | None]:
    """The GPUs each of these train workers took at start-up (`RLVR_GPUS`; None: no list).
    Asked of those workers only, and answered as soon as each has replied."""
    if not workers:
        return {}
    replies = svc.celery.control.broadcast(
        GPUS_COMMAND, reply=True, timeout=timeout, destination=workers, limit=len(workers)
    )
    return {worker: answer.get("gpus") for reply in replies for worker, answer in reply.items()}


def health(svc: Services) -> dict:
    """Each check, live workers per queue, and `ok` only if every check passed. Beat and the
    reaper are judged by when Redis last saw them (`service.queues.mark_seen`)."""

    def ping_db():
        with svc.db.read() as s:
            s.execute(text("SELECT 1"))

    report = {"database": _check(ping_db), "redis": _check(svc.redis.ping)}
    consumed_by = worker_queues(svc) if report["redis"]["ok"] else {}
    counts = Counter(queue for consumed in consumed_by.values() for queue in consumed)
    report["workers"] = {queue: counts.get(queue, 0) for queue in QUEUES}
    trainers = sorted(worker for worker, consumed in consumed_by.items() if "train" in consumed)
    report["gpus"] = train_gpus(svc, trainers)
    if report["redis"]["ok"]:
        report["beat"] = _seen(svc, queues.BEAT_SEEN, "has not sent the reaper", "is beat running?")
        report["reaper"] = _seen(
            svc,
            queues.REAPER_SEEN,
            "has not finished a run",
            "are beat and a verify worker running, and the database up?",
        )
    else:
        report["beat"] = report["reaper"] = {"ok": False, "error": "unknown while Redis is down"}
    report["status"] = "ok" if all(report[check]["ok"] for check in HEALTH_CHECKS) else "degraded"
    return report


def _seen(svc: Services, key: str, missing: str, hint: str) -> dict:
    at = queues.last_seen(svc, key)
    if at is None:
        return {
            "ok": False,
            "error": f"{missing} in the last {queues.seen_window(svc.settings):g} s: {hint}",
        }
    return {"ok": True, "last_seen": datetime.fromtimestamp(at, UTC)}


def queue_depths(svc: Services) -> dict[str, int]:
    with svc.redis.pipeline(transaction=False) as pipe:
        for queue in QUEUES:
            for key in queue_keys(queue):
                pipe.llen(key)
        lengths = iter(pipe.execute())
    return {queue: sum(next(lengths) for _ in queue_keys(queue)) for queue in QUEUES}


def jobs_by_state(svc: Services, owner: int | None = None) -> dict[tuple[str, str], int]:
    """Job counts by (kind, status): of `owner`'s jobs, or of all when None."""
    query = select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
    if owner is not None:
        query = query.where(Job.user_id == owner)
    with svc.db.read() as s:
        rows = s.execute(query).all()
    return {(kind, status): n for kind, status, n in rows}


TRAINING_KINDS = ("train", "sft")
LIVE_METRICS = ("reward", "pass_rate", "kl", "loss")


def live_training(svc: Services, owner: int | None = None) -> list[dict]:
    """One entry per running train or SFT job (of `owner` only, when given), by id."""
    query = select(Job.id, Job.kind, Job.progress_done, Job.progress_total).where(
        Job.kind.in_(TRAINING_KINDS), Job.status.in_(jobs.ACTIVE)
    )
    if owner is not None:
        query = query.where(Job.user_id == owner)
    with svc.db.read() as s:
        running = s.execute(query.order_by(Job.id)).all()
        ids = [job.id for job in running]
        latest = training.latest_values(s, ids, LIVE_METRICS)
        seconds = training.recent_step_seconds(s, ids)
        unverified = training.unverified_rewards(s, ids)
    return [
        {
            "job_id": job.id,
            "kind": job.kind,
            "step": job.progress_done,
            "total": job.progress_total,
            **{name: latest[job.id].get(name) for name in LIVE_METRICS},
            "unverified_rewards": unverified[job.id],
            **pace(job.progress_done, job.progress_total, seconds[job.id]),
        }
        for job in running
    ]


def pace(step: int, total: int, step_seconds: list[float]) -> dict[str, float | None]:
    """Seconds per step, steps per minute and seconds left, from recent step durations (None
    before any).

    >>> pace(4, 10, [2.0, 4.0])
    {'seconds_per_step': 3.0, 'steps_per_minute': 20.0, 'eta_seconds': 18.0}
    """
    if not step_seconds:
        return {"seconds_per_step": None, "steps_per_minute": None, "eta_seconds": None}
    per_step = sum(step_seconds) / len(step_seconds)
    return {
        "seconds_per_step": per_step,
        "steps_per_minute": round(60 / per_step, 3) if per_step > 0 else None,
        "eta_seconds": round(max(total - step, 0) * per_step, 1),
    }


def stats(svc: Services, owner: int | None = None) -> dict:
    """Counts of `owner`'s jobs and their running training jobs (everyone's when None); queue
    depths and verify latency over everything."""
    states, kinds = Counter(), Counter()
    for (kind, status), n in jobs_by_state(svc, owner).items():
        states[status] += n
        kinds[kind] += n
    with svc.db.read() as s:
        _, programs, seconds = verdicts.latency_histogram(s)
    return {
        "jobs": {status: states[status] for status in JOB_STATES},
        "jobs_by_kind": dict(kinds),
        "queues": queue_depths(svc),
        "verified_programs": programs,
        "verify_seconds_mean": round(seconds / programs, 4) if programs else None,
        "training": live_training(svc, owner),
    }


class _Collector:
    def __init__(self, svc: Services, per_job: bool):
        self.svc, self.per_job = svc, per_job

    def collect(self):
        jobs = GaugeMetricFamily("rlvr_jobs", "Jobs by kind and state.", labels=["kind", "state"])
        for (kind, status), n in sorted(jobs_by_state(self.svc).items()):
            jobs.add_metric([kind, status], n)
        yield jobs
        depth = GaugeMetricFamily(
            "rlvr_queue_depth",
            "Messages waiting in each Celery queue, all priorities.",
            labels=["queue"],
        )
        for queue, n in queue_depths(self.svc).items():
            depth.add_metric([queue], n)
        yield depth
        workers = GaugeMetricFamily(
            "rlvr_workers",
            "Celery workers answering a broadcast, per queue they consume.",
            labels=["queue"],
        )
        for queue, n in live_workers(self.svc).items():
            workers.add_metric([queue], n)
        yield workers
        yield from verify_metrics(self.svc.redis)
        yield _histogram(
            "rlvr_train_step_seconds",
            "Duration of one optimizer step of train and SFT jobs.",
            "kind",
            telemetry.histograms(self.svc.redis, telemetry.STEP_SECONDS, telemetry.STEP_BUCKETS),
        )
        if self.per_job:
            yield from training_metrics(live_training(self.svc))


def verify_metrics(redis):
    verified = CounterMetricFamily(
        "rlvr_verified_programs",
        "Programs judged by the verify pool, by the queue that carried them, who asked "
        "(verify_job, rewards: a job's code rewards, api: POST /verify) and the verdict.",
        labels=["queue", "source", "verdict"],
    )
    for labels, n in sorted(telemetry.counters(redis).items()):
        verified.add_metric(list(labels), n)
    yield verified
    yield _histogram(
        "rlvr_verify_seconds",
        "Sandbox wall time per judged program.",
        "source",
        telemetry.histograms(redis, telemetry.VERIFY_SECONDS, telemetry.VERIFY_BUCKETS),
    )


def _histogram(name: str, documentation: str, label: str, series: dict) -> HistogramMetricFamily:
    histogram = HistogramMetricFamily(name, documentation, labels=[label])
    for value, (buckets, _count, total) in series.items():
        histogram.add_metric([value], buckets, total)
    return histogram


# Per running train or SFT job, labelled {job_id, kind}: (name, field of a live_training()
# entry, Prometheus type, help). The JSON of /stats keeps its own field names; these follow
# Prometheus's: the step budget is not a `_total`, speeds are in seconds.
TRAINING_METRICS = (
    ("rlvr_train_step", "step", "gauge", "Latest step of each running train or SFT job."),
    ("rlvr_train_max_steps", "total", "gauge", "Steps each running train or SFT job runs at most."),
    ("rlvr_train_reward", "reward", "gauge", "Mean reward at the job's latest step."),
    ("rlvr_train_pass_rate", "pass_rate", "gauge", "Pass rate at the job's latest step."),
    ("rlvr_train_kl", "kl", "gauge", "KL to the reference at the job's latest step."),
    ("rlvr_train_loss", "loss", "gauge", "Loss at the job's latest step."),
    (
        "rlvr_train_seconds_per_step",
        "seconds_per_step",
        "gauge",
        "Mean step duration over the job's last 10 steps, from the loop's own step_time.",
    ),
    ("rlvr_train_eta_seconds", "eta_seconds", "gauge", "Seconds the job has left at that pace."),
    (
        "rlvr_train_unverified_rewards",
        "unverified_rewards",
        "counter",
        "Rollouts of the job whose reward is None (the verifier could not judge them).",
    ),
)
_FAMILIES = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily}


def training_metrics(live: list[dict]):
    """One family per row of TRAINING_METRICS, a sample per job where the field has a value."""
    for name, field, kind, documentation in TRAINING_METRICS:
        family = _FAMILIES[kind](name, documentation, labels=["job_id", "kind"])
        for job in live:
            if job[field] is not None:
                family.add_metric([str(job["job_id"]), job["kind"]], job[field])
        yield family


def metrics_text(svc: Services, per_job: bool = False) -> bytes:
    """The Prometheus page: aggregates, and with `per_job` each running job's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(svc, per_job))
    return generate_latest(registry)
